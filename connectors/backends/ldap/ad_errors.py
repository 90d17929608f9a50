"""Active Directory's refusals in words an administrator acts on.

AD answers a refused request with an LDAP result and a diagnostic message that starts
with a Windows error code: ``00002071: samldb: samAccountName 'jsmith' already in
use!`` (Samba), ``00000524: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS), data 0``
(Windows). :func:`explain` reads the code, the message and what the request sent, and
says what is wrong with the object ("sAMAccountName 'jsmith' is already used by
another account in the domain") and whether trying again later can help: a taken
name, a missing OU, a password the policy refuses or missing rights need a person,
so they are permanent — even when AD files them under a result JIM otherwise retries
(Samba answers a move under a missing OU with ``other``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.backends.ldap.transport import (
    ENTRY_ALREADY_EXISTS,
    INSUFFICIENT_ACCESS,
    NO_SUCH_OBJECT,
    Response,
)
from core.dn import DNError, split_dn

#: ``XXXXXXXX: text``: the Windows error code that starts AD's diagnostic messages.
_DIAGNOSTIC_RE = re.compile(r"^\s*([0-9A-Fa-f]{8}):\s*(.*)$", re.DOTALL)
_QUOTED_RE = r"'([^']*)'"

# Windows error codes (MS-ERREF) AD's messages start with.
ERROR_ACCESS_DENIED = 0x5
ERROR_USER_EXISTS = 0x524
ERROR_PASSWORD_RESTRICTION = 0x52D
ERROR_MEMBER_NOT_IN_GROUP = 0x561
ERROR_MEMBER_IN_GROUP = 0x562
ERROR_DS_NO_RIDS_ALLOCATED = 0x2010
ERROR_DS_CANT_ON_NON_LEAF = 0x2015
ERROR_DS_NO_SUCH_OBJECT = 0x2030
ERROR_DS_OBJ_STRING_NAME_EXISTS = 0x2071
ERROR_DS_OBJ_NOT_FOUND = 0x208D
ERROR_DS_INSUFF_ACCESS_RIGHTS = 0x2098
ERROR_DS_UPN_VALUE_NOT_UNIQUE_IN_FOREST = 0x21C8

UNWILLING_TO_PERFORM = 53
NOT_ALLOWED_ON_NON_LEAF = 66


@dataclass(frozen=True)
class Request:
    """What a refused request was: its operation, the DN it named, the DN it would
    have made (an add's, a rename's new one), the values it sent, and who sent it."""

    operation: str  # add, modify, rename, delete
    dn: str
    target_dn: str = ""
    sent: Mapping[str, list[Any]] | None = None
    who: str = ""

    def value(self, attribute: str) -> str:
        """The first value the request sent for ``attribute`` ("" when none)."""
        lowered = attribute.lower()
        for name, values in (self.sent or {}).items():
            if name.lower() == lowered and values:
                first = values[0]
                return first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)
        return ""

    def sends(self, attribute: str) -> bool:
        return any(name.lower() == attribute.lower() for name in self.sent or {})


@dataclass(frozen=True)
class Refusal:
    """Why AD refused, for an administrator, and whether a retry can help."""

    cause: str
    transient: bool = False


@dataclass(frozen=True)
class _Diagnostic:
    result: int
    code: int | None
    text: str

    def says(self, *phrases: str) -> bool:
        lowered = self.text.lower()
        return any(phrase in lowered for phrase in phrases)

    def quoted_after(self, phrase: str) -> str:
        """The quoted value following ``phrase`` in the message ("" when none)."""
        match = re.search(re.escape(phrase) + r"\s*" + _QUOTED_RE, self.text, re.IGNORECASE)
        return match.group(1) if match else ""


def value_conflict(response: Response) -> bool:
    """True when AD refused a modify for adding a value that is there already or
    removing one that is not — which it reports in its own way: ``entryAlreadyExists``
    (Samba: "Attribute member already exists for target GUID …"; Windows:
    ``00000562``) and ``unwillingToPerform`` (Windows: ``00000561``), besides the
    standard ``attributeOrValueExists`` and ``noSuchAttribute``."""
    diagnostic = _diagnostic(response)
    samba = diagnostic.result == ENTRY_ALREADY_EXISTS and diagnostic.says(
        "already exists for target"
    )
    return samba or diagnostic.code in (ERROR_MEMBER_IN_GROUP, ERROR_MEMBER_NOT_IN_GROUP)


def explain(response: Response, request: Request) -> Refusal | None:
    """AD's refusal of ``request`` in words (None when nothing more can be said than
    the result's name and message)."""
    diagnostic = _diagnostic(response)
    for rule in _RULES:
        refusal = rule(diagnostic, request)
        if refusal is not None:
            return refusal
    return None


def _diagnostic(response: Response) -> _Diagnostic:
    match = _DIAGNOSTIC_RE.match(response.message or "")
    if match is None:
        return _Diagnostic(response.code, None, (response.message or "").strip())
    return _Diagnostic(response.code, int(match.group(1), 16), match.group(2).strip())


def _parent(dn: str) -> str:
    try:
        return split_dn(dn)[1]
    except DNError:
        return ""


# --------------------------------------------------------------------------- the rules


def _password(d: _Diagnostic, r: Request) -> Refusal | None:
    if d.code != ERROR_PASSWORD_RESTRICTION and not d.says("check_password_restrictions"):
        return None
    detail = re.split(r"check_password_restrictions:\s*", d.text, maxsplit=1, flags=re.I)
    reason = detail[1].rstrip("!. ") if len(detail) == 2 else ""
    return Refusal(
        "the password does not meet the domain's password policy (length, complexity, "
        "history or minimum age)" + (f": {reason}" if reason else "")
    )


def _sam_account_name_taken(d: _Diagnostic, r: Request) -> Refusal | None:
    taken = d.says("samaccountname") and d.says("already in use")
    windows = d.code == ERROR_USER_EXISTS
    if not (taken or windows):
        return None
    name = d.quoted_after("samAccountName") or r.value("sAMAccountName")
    shown = f"sAMAccountName {name!r}" if name else "the sAMAccountName"
    return Refusal(
        f"{shown} is already used by another account in the domain (it must be unique "
        "among the domain's users, groups and computers)"
    )


def _user_principal_name_taken(d: _Diagnostic, r: Request) -> Refusal | None:
    taken = d.says("userprincipalname") and d.says("already in use")
    if not (taken or d.code == ERROR_DS_UPN_VALUE_NOT_UNIQUE_IN_FOREST):
        return None
    name = d.quoted_after("userPrincipalName") or r.value("userPrincipalName")
    shown = f"userPrincipalName {name!r}" if name else "the userPrincipalName"
    return Refusal(f"{shown} is already used by another account in the forest")


def _invalid_sam_account_name(d: _Diagnostic, r: Request) -> Refusal | None:
    if not (d.says("samaccountname") and d.says("invalid")):
        return None
    character = d.quoted_after("invalid")
    name = r.value("sAMAccountName")
    return Refusal(
        f"sAMAccountName {name!r} contains "
        + (f"the character {character!r}, which" if character else "a character")
        + ' AD forbids in account names (" / \\ [ ] : ; | = , + * ? < > @)'
    )


def _parent_missing(d: _Diagnostic, r: Request) -> Refusal | None:
    missing = d.says("parent does not exist") or (
        r.operation == "add"
        and d.result == NO_SUCH_OBJECT
        and d.code in (ERROR_DS_OBJ_NOT_FOUND, None)
        and not d.says("no such base")
    )
    if not missing:
        return None
    parent = _parent(r.target_dn or r.dn)
    where = f"the parent {parent!r}" if parent else "its parent"
    return Refusal(
        f"{where} does not exist: create that OU or container first, or correct the DN "
        "the sync rule makes"
    )


def _missing(d: _Diagnostic, r: Request) -> Refusal | None:
    if d.result != NO_SUCH_OBJECT and d.code not in (ERROR_DS_NO_SUCH_OBJECT,):
        return None
    return Refusal(
        f"there is no object {r.dn!r} in the directory (deleted, renamed or moved since "
        "JIM last imported it; an import brings JIM up to date)"
    )


def _exists(d: _Diagnostic, r: Request) -> Refusal | None:
    if r.operation not in ("add", "rename"):
        return None
    if d.result != ENTRY_ALREADY_EXISTS and d.code != ERROR_DS_OBJ_STRING_NAME_EXISTS:
        return None
    return Refusal(f"another object already has the DN {r.target_dn or r.dn!r}")


def _rights(d: _Diagnostic, r: Request) -> Refusal | None:
    denied = d.code in (ERROR_ACCESS_DENIED, ERROR_DS_INSUFF_ACCESS_RIGHTS) or (
        d.result == INSUFFICIENT_ACCESS
    )
    if not denied:
        return None
    if r.operation == "add":
        action = f"create objects in {_parent(r.target_dn or r.dn)!r}"
    elif r.operation == "rename" and r.target_dn and r.target_dn != r.dn:
        action = f"rename or move {r.dn!r} to {r.target_dn!r}"
    else:
        action = f"{r.operation} {r.dn!r}"
    return Refusal(
        f"{r.who or 'the bind account'} may not {action}: AD refused it for lack of "
        "rights; delegate them to JIM's service account on that OU"
    )


def _non_leaf(d: _Diagnostic, r: Request) -> Refusal | None:
    if d.result != NOT_ALLOWED_ON_NON_LEAF and d.code != ERROR_DS_CANT_ON_NON_LEAF:
        return None
    return Refusal(
        f"{r.dn!r} still holds other objects, and AD deletes only objects with nothing "
        "beneath them: delete or move those first"
    )


def _rdn_mismatch(d: _Diagnostic, r: Request) -> Refusal | None:
    if not d.says("rdn mismatch"):
        return None
    return Refusal(
        "the DN's first part (its RDN) and the attribute it names differ, and AD keeps "
        "them equal: let the sync rule give the same value to both"
    )


def _single_valued(d: _Diagnostic, r: Request) -> Refusal | None:
    match = re.search(r"(\w[\w-]*) has (\d+) values, should be single-valued", d.text)
    if match is None:
        return None
    return Refusal(f"{match.group(1)} takes one value, and the export sends {match.group(2)}")


def _unknown_attribute(d: _Diagnostic, r: Request) -> Refusal | None:
    match = re.search(r"attribute '([^']+)'.* not found in the schema", d.text)
    if match is None:
        return None
    return Refusal(f"AD's schema has no attribute {match.group(1)!r}")


def _unknown_class(d: _Diagnostic, r: Request) -> Refusal | None:
    match = re.search(r"objectclass (\S+) is not a valid objectClass", d.text, re.IGNORECASE)
    if match is None:
        return None
    return Refusal(f"AD's schema has no object class {match.group(1)!r}")


def _password_needs_tls(d: _Diagnostic, r: Request) -> Refusal | None:
    if d.result != UNWILLING_TO_PERFORM or not r.sends("unicodePwd"):
        return None
    return Refusal(
        "AD refused the password (unicodePwd): it takes passwords only over an encrypted "
        'connection (ldaps:// or start_tls), as a quoted ("…") UTF-16-LE value'
    )


def _no_rids(d: _Diagnostic, r: Request) -> Refusal | None:
    if d.code != ERROR_DS_NO_RIDS_ALLOCATED:
        return None
    return Refusal(
        "the domain controller has no identifiers (RIDs) left to give new accounts until "
        "it reaches the RID master; a later try can succeed",
        transient=True,
    )


#: In order: the first rule that recognises the refusal explains it.
_RULES: tuple[Callable[[_Diagnostic, Request], Refusal | None], ...] = (
    _no_rids,
    _password,
    _sam_account_name_taken,
    _user_principal_name_taken,
    _invalid_sam_account_name,
    _parent_missing,
    _missing,
    _exists,
    _rights,
    _non_leaf,
    _rdn_mismatch,
    _single_valued,
    _unknown_attribute,
    _unknown_class,
    _password_needs_tls,
)
