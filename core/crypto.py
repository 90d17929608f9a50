"""Encryption at rest for connected-system secrets (bind passwords and the like).

Secrets are stored as a Fernet token of their JSON. The key comes from
``JIM_ENCRYPTION_KEY`` (any passphrase; a Fernet key is derived from it with HKDF),
or, when that is unset, from ``SECRET_KEY``. The field's ``value_to_string`` (used by
``dumpdata``) yields the ciphertext, so a secret never leaves the database in clear.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(passphrase: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"jim-secrets", info=b"connected-system"
    ).derive(passphrase.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _cipher() -> Fernet:
    return _fernet(settings.JIM_ENCRYPTION_KEY or settings.SECRET_KEY)


def encrypt(value: dict[str, Any]) -> str:
    """Return the stored form of a secrets dictionary."""
    return _PREFIX + _cipher().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    """Return the secrets dictionary from its stored form."""
    if not token:
        return {}
    if not token.startswith(_PREFIX):
        raise ImproperlyConfigured("A stored secret is not encrypted; refusing to read it.")
    try:
        return json.loads(_cipher().decrypt(token[len(_PREFIX) :].encode()))
    except InvalidToken:
        raise ImproperlyConfigured(
            "Cannot decrypt connected-system secrets: JIM_ENCRYPTION_KEY (or SECRET_KEY) "
            "differs from the key they were stored with."
        ) from None


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
