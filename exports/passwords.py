"""Initial passwords for the accounts an export rule creates.

An export rule's ``initial_password: {attribute: unicodePwd, length: 16}`` is its
policy (:class:`PasswordPolicy`, checked by :func:`policy_problems` for the
configuration file and the admin alike). The password itself is made only when a
create is turned into the connector's change, just before it is sent
(:func:`with_initial_password`), as a :class:`~connectors.base.Secret`: it is in no
pending export, attribute change, activity item, audit entry or log, so a create that
fails and is retried gets a new one. Nobody learns it from JIM — the account's owner
gets theirs through the directory's own reset process.

A generated password meets Active Directory's complexity rule with room to spare: it
has an upper-case letter, a lower-case letter, a digit and a symbol, and holds no part
of the account's names (AD refuses one that contains the account name or a part of
the display name of three characters or more; here no part of any text value the
create sends).
"""

from __future__ import annotations

import difflib
import re
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from connectors.base import ExportAttributeChange, ExportChange, ExportResult, Secret
from exports.choices import PendingExportChangeType
from exports.models import PendingExport

#: Bounds of ``length``: AD's default policy asks for 7 characters or more; an
#: initial password nobody types can be long, and 12 is the least JIM makes.
MIN_LENGTH = 12
MAX_LENGTH = 128
DEFAULT_LENGTH = 16
POLICY_KEYS = ("attribute", "length")
EXAMPLE = "{attribute: unicodePwd, length: 16}"

#: Symbols every directory and LDIF takes without quoting (no quotes, backslash, space).
SYMBOLS = "!#%*+-.:=?@^_~"
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, SYMBOLS)
_ALPHABET = "".join(_CLASSES)
#: AD splits a display name into parts at these (and ignores parts under 3 characters).
_NAME_DELIMITERS = re.compile(r"[,.\-_#\s]+")
_SHORTEST_PART = 3
_random = secrets.SystemRandom()


@dataclass(frozen=True)
class PasswordPolicy:
    """Where the initial password goes, and how long it is."""

    attribute: str
    length: int = DEFAULT_LENGTH

    def as_json(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "length": self.length}


# --------------------------------------------------------------------------- the policy


def policy_problems(value: Any) -> list[tuple[tuple[str, ...], str]]:
    """What is wrong with a policy as given (the file's mapping, the stored JSON), each
    as (key path below ``initial_password``, message); none when it is right."""
    if not isinstance(value, dict):
        return [((), f"must be a mapping like {EXAMPLE}, not {_kind(value)}")]
    problems: list[tuple[tuple[str, ...], str]] = []
    for key in value:
        if key not in POLICY_KEYS:
            close = difflib.get_close_matches(str(key), POLICY_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(((str(key),), f"unknown key {key!r}{hint}; allowed: attribute, length"))
    attribute = value.get("attribute")
    if "attribute" not in value:
        problems.append(
            (("attribute",), "missing required key: the attribute to set, e.g. unicodePwd")
        )
    elif not isinstance(attribute, str) or not attribute.strip():
        problems.append((("attribute",), f"must be an attribute name, not {_kind(attribute)}"))
    length = value.get("length", DEFAULT_LENGTH)
    if isinstance(length, bool) or not isinstance(length, int):
        problems.append((("length",), f"must be a whole number, not {_kind(length)}"))
    elif not MIN_LENGTH <= length <= MAX_LENGTH:
        problems.append(
            (
                ("length",),
                f"must be from {MIN_LENGTH} to {MAX_LENGTH} characters, not {length}",
            )
        )
    return problems


def parse_policy(value: Any) -> PasswordPolicy | None:
    """The policy of a rule's stored ``initial_password`` (None when it has none).
    Raises ValueError when it is not a valid policy."""
    if value is None:
        return None
    problems = policy_problems(value)
    if problems:
        raise ValueError("; ".join(_described(path, message) for path, message in problems))
    return PasswordPolicy(value["attribute"].strip(), value.get("length", DEFAULT_LENGTH))


def validate_policy(value: Any) -> None:
    """The model field's validator (the admin's form runs it)."""
    problems = policy_problems(value) if value is not None else []
    if problems:
        raise ValidationError([_described(path, message) for path, message in problems])


def _described(path: tuple[str, ...], message: str) -> str:
    return f"{'.'.join(path)}: {message}" if path else message


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"text {value!r}" if value.strip() else "empty text"
    return f"a {type(value).__name__} ({value!r})"


# --------------------------------------------------------------------------- generating


def generate(length: int, avoid: Iterable[str] = ()) -> str:
    """A random password of ``length`` characters (at least one of each class) that
    contains none of ``avoid`` (lower-case parts), case aside."""
    avoided = [part for part in avoid if len(part) >= _SHORTEST_PART]
    while True:
        characters = [secrets.choice(kind) for kind in _CLASSES]
        characters += [secrets.choice(_ALPHABET) for _ in range(length - len(_CLASSES))]
        _random.shuffle(characters)
        password = "".join(characters)
        lowered = password.lower()
        if not any(part in lowered for part in avoided):
            return password


def name_parts(values: Iterable[Any]) -> set[str]:
    """The parts of text values a password must not contain, lower-case: each value
    whole and each of its parts between AD's delimiters, of three characters or more."""
    parts: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        lowered = value.lower()
        parts.update(p for p in [lowered, *_NAME_DELIMITERS.split(lowered)] if len(p) >= 3)
    return parts


# --------------------------------------------------------------------------- exporting


def policies_of(pending_exports: Sequence[PendingExport]) -> dict[int, PasswordPolicy]:
    """The password policy of each create whose export rule sets an initial password,
    by pending export id (one query)."""
    creates = [pe.pk for pe in pending_exports if pe.change_type == PendingExportChangeType.CREATE]
    if not creates:
        return {}
    rows = PendingExport.objects.filter(
        pk__in=creates, sync_rule__initial_password__isnull=False
    ).values_list("pk", "sync_rule__initial_password")
    return {pk: policy for pk, value in rows if (policy := parse_policy(value)) is not None}


def with_initial_password(
    policy: PasswordPolicy, changes: list[ExportAttributeChange]
) -> list[ExportAttributeChange]:
    """A create's attribute changes and a new password, made now, set by them."""
    avoid = name_parts(value for change in changes for value in change.values)
    password = Secret(generate(policy.length, avoid))
    return [*changes, ExportAttributeChange(policy.attribute, "add", [password])]


def scrub(results: list[ExportResult], changes: list[ExportChange]) -> None:
    """Mask, in the results' errors, any password the changes carried — whatever a
    connector or a server echoes, the password goes no further than the connector."""
    by_id = {change.id: change for change in changes}
    for result in results:
        change = by_id.get(result.id)
        if not result.error or change is None:
            continue
        for secret in _secrets(change):
            result.error = result.error.replace(secret.reveal(), str(secret))


def _secrets(change: ExportChange) -> list[Secret]:
    return [
        value
        for attribute_change in change.attribute_changes
        for value in attribute_change.values
        if isinstance(value, Secret)
    ]
