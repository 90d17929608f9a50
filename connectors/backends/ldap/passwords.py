"""Passwords on the wire: a create's initial password (a :class:`~connectors.base.Secret`)
as the directory takes it, over TLS only.

Active Directory sets a password through ``unicodePwd``: the password in double quotes,
encoded UTF-16-LE, and only over an encrypted connection (``ldaps://`` or StartTLS).
OpenLDAP takes ``userPassword`` as the plain value (and hashes it when its ``ppolicy``
overlay says so). Whatever the directory, JIM sends no password over a connection
without TLS: the create fails with an error saying so and nothing is sent.

A refusal names the attribute and the directory's reason, never the password: AD's
``0000052D: Constraint violation - check_password_restrictions …`` becomes "the
directory's password policy refused the initial password".
"""

from __future__ import annotations

from typing import Any

from connectors.backends.ldap.settings import LdapSettings
from connectors.backends.ldap.transport import Response
from connectors.base import ExportAttributeChange, ExportChange, ExportResult, Secret

#: LDAP's constraintViolation: what AD answers for a password its policy refuses.
CONSTRAINT_VIOLATION = 19
_AD_PASSWORD_REFUSAL = ("0000052D", "check_password_restrictions")


def carries_password(attribute_change: ExportAttributeChange) -> bool:
    return any(isinstance(value, Secret) for value in attribute_change.values)


def password_values(settings: LdapSettings, attribute_change: ExportAttributeChange) -> list[Any]:
    """The change's password as the directory takes it; ValueError over a connection
    without TLS (nothing is sent)."""
    if not encrypted(settings):
        raise ValueError(
            f"{attribute_change.attribute}: refusing to send a password over {settings.url} "
            "without TLS; use an ldaps:// url or start_tls: true"
        )
    texts = [v.reveal() if isinstance(v, Secret) else str(v) for v in attribute_change.values]
    if attribute_change.attribute.lower() == "unicodepwd":
        return [f'"{text}"'.encode("utf-16-le") for text in texts]
    return texts


def encrypted(settings: LdapSettings) -> bool:
    """Whether the session's connection is encrypted (ldaps://, or StartTLS)."""
    return settings.url.lower().startswith("ldaps://") or settings.flag("start_tls")


def without_passwords(change: ExportChange, attributes: dict[str, list[Any]]) -> dict[str, Any]:
    """The attributes of an add but its passwords: what can be read back and compared
    (a directory never shows a password, and a message never names it)."""
    names = {c.attribute.lower() for c in change.attribute_changes if carries_password(c)}
    return {name: values for name, values in attributes.items() if name.lower() not in names}


def refused_password(change: ExportChange, response: Response, what: str) -> ExportResult | None:
    """The result of a create whose password the directory's policy refused (None when
    the refusal is another one)."""
    names = [c.attribute for c in change.attribute_changes if carries_password(c)]
    message = response.message or ""
    if (
        not names
        or response.code != CONSTRAINT_VIOLATION
        or not any(mark.lower() in message.lower() for mark in _AD_PASSWORD_REFUSAL)
    ):
        return None
    return ExportResult(
        change.id,
        ok=False,
        error=f"{what} failed: the directory's password policy refused the initial password "
        f"in {names[0]} ({response.describe()}); give the rule's initial_password a length "
        "the policy accepts",
    )
