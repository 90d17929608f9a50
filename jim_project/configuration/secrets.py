"""Where the environment variable of a secret setting is remembered.

A secret setting (``SettingSpec.secret``, e.g. LDAP ``bind_password``) is stored
encrypted in ``ConnectedSystem.secret_settings`` and never shown back. So that
``jim dump`` can print ``bind_password: ${JIM_LDAP_PASSWORD}`` (and ``apply`` of the
dump changes nothing), ``apply`` remembers the variable a secret was read from under
the reserved key :data:`SECRET_ENV_KEY` of ``secret_settings``:
``{"bind_password": "…", "_secret_env": {"bind_password": "JIM_LDAP_PASSWORD"}}``.

Only names that differ from :func:`default_variable` are remembered: a secret set in
clear text, through the admin, or from the default variable is dumped as
``${JIM_<SYSTEM>_<SETTING>}``. The admin's form keeps only declared secrets, so saving
a system there forgets a remembered name (the dump then shows the default name).
Keys of ``secret_settings`` that start with ``_`` are not settings.
"""

from __future__ import annotations

import re
from typing import Any

SECRET_ENV_KEY = "_secret_env"

_NOT_NAME = re.compile(r"[^A-Z0-9]+")


def default_variable(system: str, setting: str) -> str:
    """``JIM_<SYSTEM>_<SETTING>``: the name dump uses when none is remembered."""
    parts = (_NOT_NAME.sub("_", part.upper()).strip("_") for part in ("JIM", system, setting))
    return "_".join(part for part in parts if part)


def remembered_variables(secret_settings: dict[str, Any]) -> dict[str, str]:
    """Secret setting → the environment variable it was last applied from."""
    value = secret_settings.get(SECRET_ENV_KEY)
    return dict(value) if isinstance(value, dict) else {}


def secret_values(secret_settings: dict[str, Any]) -> dict[str, Any]:
    """The secret settings themselves (without the reserved keys)."""
    return {k: v for k, v in secret_settings.items() if not k.startswith("_")}


def variable_for(system: str, setting: str, secret_settings: dict[str, Any]) -> str:
    """The variable ``dump`` prints for a stored secret."""
    return remembered_variables(secret_settings).get(setting) or default_variable(system, setting)
