"""Encryption at rest for connected-system secrets (bind passwords and the like).

Secrets are stored as a Fernet token of their JSON, prefixed ``fernet:``. The key is
``JIM_ENCRYPTION_KEY`` and nothing else — never ``SECRET_KEY``, never a constant in
the repository: without it, secrets can be neither stored nor read. Each key is a
passphrase of at least 32 characters from which the Fernet key is derived with HKDF.

Rotation: the keys in ``JIM_ENCRYPTION_KEY_PREVIOUS`` are tried, after the current one,
when reading; :func:`reencrypt` (``jim rotate-secrets``) writes a token again under the
current key. Before JIM had its own key, secrets were encrypted with the same HKDF of
``SECRET_KEY``, so an old ``SECRET_KEY`` among the previous keys reads them
(docs/security.md, "Rotating the encryption key").

The field's ``value_to_string`` (used by ``dumpdata``) yields the ciphertext, so a
secret never leaves the database in clear.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "fernet:"


class SecretUnreadable(ImproperlyConfigured):
    """A stored secret that no configured key opens, or that is not encrypted."""


@lru_cache(maxsize=16)
def _fernet(passphrase: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jim-secrets", info=b"connected-system"
    ).derive(passphrase.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def current_key() -> str:
    key: str = settings.JIM_ENCRYPTION_KEY
    if not key:
        raise ImproperlyConfigured(
            "JIM_ENCRYPTION_KEY is not set, so connected-system secrets can be neither "
            "stored nor read. Set it in the environment (generate one with: python3 -c "
            "'import secrets; print(secrets.token_urlsafe(32))'); see docs/security.md."
        )
    return key


def _ciphers() -> list[Fernet]:
    """The current key's cipher first, then the previous keys'."""
    return [_fernet(current_key()), *map(_fernet, settings.JIM_ENCRYPTION_KEY_PREVIOUS)]


def encrypt(value: dict[str, Any]) -> str:
    """Return the stored form of a secrets dictionary (under the current key)."""
    plain = json.dumps(value, sort_keys=True).encode()
    return _PREFIX + _fernet(current_key()).encrypt(plain).decode()


def _token(stored: str) -> bytes:
    if not stored.startswith(_PREFIX):
        raise SecretUnreadable("A stored secret is not encrypted; refusing to read it.")
    return stored[len(_PREFIX) :].encode()


def _unreadable() -> SecretUnreadable:
    previous = len(settings.JIM_ENCRYPTION_KEY_PREVIOUS)
    return SecretUnreadable(
        "Cannot decrypt connected-system secrets: neither JIM_ENCRYPTION_KEY nor "
        f"any of the {previous} key(s) in JIM_ENCRYPTION_KEY_PREVIOUS is the key they "
        "were stored with. Add that key to JIM_ENCRYPTION_KEY_PREVIOUS (see "
        "docs/security.md)."
    )


def decrypt(stored: str) -> dict[str, Any]:
    """Return the secrets dictionary from its stored form ({} for an empty column)."""
    if not stored:
        return {}
    try:
        return json.loads(MultiFernet(_ciphers()).decrypt(_token(stored)))
    except InvalidToken:
        raise _unreadable() from None


def reencrypt(stored: str) -> tuple[str, bool]:
    """``stored`` encrypted again under the current key, and whether it was under an
    older key. Raises :class:`SecretUnreadable` when no key opens it."""
    token = _token(stored)
    try:
        _fernet(current_key()).decrypt(token)
        was_older = False
    except InvalidToken:
        was_older = True
    try:
        rotated = MultiFernet(_ciphers()).rotate(token)
    except InvalidToken:
        raise _unreadable() from None
    return _PREFIX + rotated.decode(), was_older


class EncryptedJSONField(models.TextField):
    """A dictionary stored encrypted; Python code sees the plain dictionary."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> dict:
        return decrypt(value or "")

    def to_python(self, value: Any) -> dict:
        if isinstance(value, dict):
            return value
        return decrypt(value or "")

    def get_prep_value(self, value: Any) -> str:
        return encrypt(value or {})

    def value_to_string(self, obj: models.Model) -> str:
        return self.get_prep_value(self.value_from_object(obj))
