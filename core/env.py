"""Small typed readers for environment variables used by the settings module.

Each reader raises ``ImproperlyConfigured`` naming the variable and the bad value,
so a typo in a deployment fails at start, not at first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    """Read a boolean: 1/true/yes/on or 0/false/no/off (case-insensitive)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false).")


def env_int(name: str, *, default: int) -> int:
    """Read a non-negative integer."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must not be negative.")
    return value


def env_list(name: str, *, default: list[str]) -> list[str]:
    """Read a comma-separated list; blanks are dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_database_url(url: str, *, default_sqlite: Path) -> dict[str, Any]:
    """Turn ``DATABASE_URL`` into a Django ``DATABASES`` entry.

    An empty URL means SQLite at ``default_sqlite``. Supported schemes:
    ``postgres``/``postgresql`` (psycopg 3) and ``sqlite`` (``sqlite:///path``).
    """
    if not url.strip():
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": default_sqlite}
    parts = urlsplit(url.strip())
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if not path or path == "/":
            raise ImproperlyConfigured(f"DATABASE_URL={url!r} has no database file path.")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r} has unsupported scheme {parts.scheme!r} "
            "(use postgresql:// or sqlite://)."
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} names no database.")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} has an invalid port.") from None
    options = dict(parse_qsl(parts.query))
    config: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": unquote(parts.hostname or ""),
        "PORT": str(port or ""),
        "CONN_MAX_AGE": 60,
    }
    if options:
        config["OPTIONS"] = options
    return config


def env_secret(name: str, *, required: bool, min_length: int, generate: str) -> str:
    """Read a secret key; "" when unset and not ``required``.

    A missing required key, or one shorter than ``min_length`` characters, stops the
    start with a message naming the variable and the command that makes a good one.
    """
    value = os.environ.get(name, "").strip()
    how = f"Generate one with: {generate}"
    if not value:
        if required:
            raise ImproperlyConfigured(
                f"{name} must be set in the environment when DEBUG is off. {how}"
            )
        return ""
    if len(value) < min_length:
        raise ImproperlyConfigured(
            f"{name} is {len(value)} characters long; it must have at least {min_length}. {how}"
        )
    return value


def env_header(name: str) -> tuple[str, str] | None:
    """Read ``HEADER=value`` (like ``HTTP_X_FORWARDED_PROTO=https``) as Django's
    ``SECURE_PROXY_SSL_HEADER`` pair; None when unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, equals, value = (part.strip() for part in raw.partition("="))
    if not equals or not header or not value:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not HEADER=value (like HTTP_X_FORWARDED_PROTO=https)."
        )
    header = header.upper().replace("-", "_")
    if not header.startswith("HTTP_"):
        header = f"HTTP_{header}"
    return header, value
