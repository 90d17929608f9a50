"""Receivers that put other apps' events on the audit trail.

The API keys (``access.keys``) send ``api_key_created`` and ``api_key_revoked`` with
``api_key`` and ``by`` (who did it), and ``api_key_used`` (at most once a minute per
key) with ``api_key`` and ``address``; ``access`` connects them here when it is ready.

A key's entry names it by its text (its prefix and owner, never the secret), and the
door is the :mod:`audit.context`'s, except a use, which is always the API's.
"""

from __future__ import annotations

from typing import Any

from audit.models import Action, AuditEntry, Via
from audit.recording import record


def record_api_key_created(
    sender: Any, api_key: Any, by: Any = None, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(by, Action.API_KEY_CREATED, api_key, address=address)


def record_api_key_revoked(
    sender: Any, api_key: Any, by: Any = None, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(by, Action.API_KEY_REVOKED, api_key, address=address)


def record_api_key_used(
    sender: Any, api_key: Any, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(api_key.owner, Action.API_KEY_USED, api_key, via=Via.API, address=address)
