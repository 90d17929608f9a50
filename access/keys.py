"""API keys: issuing one (shown once), checking one a request presents, revoking.

A key reads ``jim_<prefix>_<secret>``: the prefix (8 characters) finds the key and
names it in lists and messages, the secret is 32 random bytes. The database keeps
the prefix and the SHA-256 of the whole key: a key is random and long, so a fast hash
is enough (nothing to guess), and a stolen table yields no usable key.

Signals, for the audit trail: :data:`api_key_created` and :data:`api_key_revoked`
(``api_key``, ``by``), and :data:`api_key_used` (``api_key``, ``address``) sent when
the last use is recorded — at most once a minute per key, not at every request.

Settings (read with defaults): ``JIM_API_KEY_DAYS`` (90), how long a new key lasts
unless told otherwise; ``JIM_API_KEY_MAX_DAYS`` (365), the longest a key may last.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.dispatch import Signal
from django.utils import timezone

from access import throttling
from access.models import ApiKey, ApiKeyStatus, SignInChannel

api_key_created = Signal()
api_key_revoked = Signal()
api_key_used = Signal()

SCHEME = "jim"
PREFIX_LENGTH = 8
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32
#: The last use of a key is written at most this often.
USE_RECORDED_EVERY = timedelta(minutes=1)


def default_days() -> int:
    return getattr(settings, "JIM_API_KEY_DAYS", 90)


def max_days() -> int:
    return getattr(settings, "JIM_API_KEY_MAX_DAYS", 365)


def default_expiry() -> datetime:
    return timezone.now() + timedelta(days=default_days())


def expiry_problem(expires_at: datetime | None, now: datetime | None = None) -> str:
    """Why ``expires_at`` will not do for a new key ('' when it will)."""
    now = now or timezone.now()
    if expires_at is None:
        return "Give the key an expiry date."
    if expires_at <= now:
        return "The expiry must be in the future."
    if expires_at > now + timedelta(days=max_days()):
        return (
            f"A key may last at most {max_days()} days (JIM_API_KEY_MAX_DAYS): "
            f"choose an expiry before {(now + timedelta(days=max_days())):%Y-%m-%d}."
        )
    return ""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue(api_key: ApiKey, created_by: Any) -> str:
    """Give ``api_key`` (unsaved: name, owner, expiry set) a new key, save it, and
    return the full key — the only time it exists outside the client."""
    problem = expiry_problem(api_key.expires_at)
    if problem:
        raise ValueError(problem)
    prefix = "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    key = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
    api_key.prefix = f"{SCHEME}_{prefix}"
    api_key.secret_hash = digest(key)
    api_key.created_at = timezone.now()
    api_key.created_by = created_by
    api_key.save()
    api_key_created.send(sender=ApiKey, api_key=api_key, by=created_by)
    return key


def revoke(api_keys: Iterable[ApiKey], by: Any) -> list[ApiKey]:
    """Revoke the keys of ``api_keys`` not yet revoked; returns those revoked now."""
    now = timezone.now()
    revoked = []
    for api_key in api_keys:
        if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        ):
            api_key.revoked_at, api_key.revoked_by = now, by
            revoked.append(api_key)
            api_key_revoked.send(sender=ApiKey, api_key=api_key, by=by)
    return revoked


class KeyRefused(Exception):
    """The key presented does not authenticate (the message says why, and what to do)."""


class KeyLockedOut(KeyRefused):
    """Too many failed attempts with this prefix or from this address."""

    def __init__(self, lockout: throttling.Lockout) -> None:
        super().__init__(lockout.message)
        self.lockout = lockout


def claimed_prefix(key: str) -> str | None:
    """The prefix (``jim_xxxxxxxx``) ``key`` claims; None when it is not a JIM key."""
    scheme, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if (
        scheme != SCHEME
        or len(prefix) != PREFIX_LENGTH
        or not set(prefix) <= set(PREFIX_ALPHABET)
        or not secret
    ):
        return None
    return f"{SCHEME}_{prefix}"


def authenticate(key: str, address: str | None) -> ApiKey:
    """The active key ``key`` is, its owner loaded and its use recorded.

    Raises :class:`KeyLockedOut` while its prefix or ``address`` is locked out, and
    :class:`KeyRefused` for a malformed, unknown, expired or revoked key or an inactive
    owner. Malformed and unknown keys count as failed attempts; whether a prefix exists
    is never told to whoever does not hold its key.
    """
    prefix = claimed_prefix(key)
    standing = throttling.check(SignInChannel.API_KEY, prefix or "", address)
    if standing.lockout is not None:
        raise KeyLockedOut(standing.lockout)
    if prefix is None:
        throttling.failed(SignInChannel.API_KEY, "", address)
        raise KeyRefused(
            "Malformed API key: send 'Authorization: Bearer jim_<prefix>_<secret>' "
            "with the whole key as it was shown when it was created."
        )
    api_key = ApiKey.objects.select_related("owner").filter(prefix=prefix).first()
    # Compare against a digest even when no key has the prefix: the answer takes as
    # long either way.
    known = api_key.secret_hash if api_key is not None else digest("")
    if not hmac.compare_digest(known, digest(key)) or api_key is None:
        throttling.failed(SignInChannel.API_KEY, prefix, address)
        raise KeyRefused(
            f"API key {prefix} is not valid: check that the whole key was sent, "
            "or ask an administrator for a new one."
        )
    refusal = _refusal(api_key)
    if refusal:
        raise KeyRefused(refusal)
    if standing.account_failures:
        throttling.succeeded(SignInChannel.API_KEY, prefix)
    record_use(api_key, address)
    return api_key


def _refusal(api_key: ApiKey) -> str:
    status = api_key.status()
    if status == ApiKeyStatus.REVOKED:
        return (
            f"API key {api_key.prefix} was revoked on {api_key.revoked_at:%Y-%m-%d %H:%M} UTC; "
            "ask an administrator for a new key."
        )
    if status == ApiKeyStatus.EXPIRED:
        return (
            f"API key {api_key.prefix} expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC; "
            "ask an administrator for a new key."
        )
    if not api_key.owner.is_active:
        return (
            f"API key {api_key.prefix} belongs to a deactivated user; "
            "ask an administrator to reactivate them or issue a key to another user."
        )
    return ""


def record_use(api_key: ApiKey, address: str | None) -> None:
    """Record the key's last use (time and address), at most once a minute: one
    conditional UPDATE, so concurrent requests in several processes write it once."""
    now = timezone.now()
    if api_key.last_used_at is not None and api_key.last_used_at > now - USE_RECORDED_EVERY:
        return
    written = (
        ApiKey.objects.filter(pk=api_key.pk)
        .exclude(last_used_at__gt=now - USE_RECORDED_EVERY)
        .update(last_used_at=now, last_used_address=address)
    )
    if written:
        api_key.last_used_at, api_key.last_used_address = now, address
        api_key_used.send(sender=ApiKey, api_key=api_key, address=address)
