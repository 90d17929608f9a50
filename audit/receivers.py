"""Receivers that put other apps' events on the audit trail.

The API keys (``access.keys``) send ``api_key_created``, ``api_key_revoked`` and
``api_key_used`` with ``key``, ``actor`` and ``address``; connect them (the audit app
sits below ``access`` and may not import it)::

    api_key_created.connect(record_api_key_created, dispatch_uid="audit.api_key_created")
    api_key_revoked.connect(record_api_key_revoked, dispatch_uid="audit.api_key_revoked")
    api_key_used.connect(record_api_key_used, dispatch_uid="audit.api_key_used")

A key's entry names it by its text (its prefix and owner, never the secret), and the
door is the :mod:`audit.context`'s, except a use, which is always the API's.
"""

from __future__ import annotations

from typing import Any

from audit.models import Action, AuditEntry, Via
from audit.recording import record


def record_api_key_created(
    sender: Any, key: Any, actor: Any = None, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(actor, Action.API_KEY_CREATED, key, address=address)


def record_api_key_revoked(
    sender: Any, key: Any, actor: Any = None, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(actor, Action.API_KEY_REVOKED, key, address=address)


def record_api_key_used(
    sender: Any, key: Any, actor: Any = None, address: str | None = None, **kwargs: Any
) -> AuditEntry:
    return record(actor, Action.API_KEY_USED, key, via=Via.API, address=address)
