"""The LDAP connector's settings: their declaration, and reading them checked (a bad
value is a :class:`ConnectorConfigurationError` naming the setting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.backends.ldap.directory import AUTO, DIRECTORY_CHOICES, Directory
from connectors.backends.ldap.ranges import range_size
from connectors.backends.ldap.values import FALSE_TEXTS, TRUE_TEXTS
from connectors.base import ConnectorConfigurationError, SettingSpec

#: The values of ``delta_method`` (which work depends on the directory).
DELTA_METHODS = ("accesslog", "modify_timestamp", "usn", "none")
#: The settings of the ldap connector (docs/connectors/ldap.md describes them).
SETTINGS = (
    SettingSpec("url", required=True, help="ldap://host:port or ldaps://host:port"),
    SettingSpec("bind_dn", help="DN to bind as; anonymous when blank."),
    SettingSpec("bind_password", secret=True, help="Password of bind_dn."),
    SettingSpec("base_dn", required=True, help="Search base when no container is given."),
    SettingSpec(
        "directory",
        default=AUTO,
        choices=DIRECTORY_CHOICES,
        help="openldap or active_directory; auto reads it from the server's root DSE.",
    ),
    SettingSpec("start_tls", type=bool, default=False, help="Upgrade ldap:// with StartTLS."),
    SettingSpec("ca_file", help="PEM file of the CA to trust for TLS."),
    SettingSpec(
        "tls_verify",
        type=bool,
        default=True,
        help="Check the server certificate. Turning it off is unsafe: anyone on the "
        "path can pose as the server and read the bind password.",
    ),
    SettingSpec("page_size", type=int, default=500, help="Paged-results page size."),
    SettingSpec("timeout", type=int, default=30, help="Connect/operation timeout (seconds)."),
    SettingSpec(
        "delta_method",
        choices=DELTA_METHODS,
        help="How delta imports find changes; blank: accesslog on OpenLDAP, usn on "
        "Active Directory.",
    ),
    SettingSpec("accesslog_base", default="cn=accesslog", help="The accesslog database."),
    SettingSpec(
        "export_window",
        type=int,
        default=64,
        help="Export requests kept in flight at once (pipelining).",
    ),
    SettingSpec(
        "range_size",
        type=int,
        help="Active Directory: ask for multi-valued attributes in ranges of this many "
        "values (AD ranges those over its MaxValRange by itself; Samba only when asked).",
    ),
)

_DEFAULTS = {spec.name: spec.default for spec in SETTINGS if spec.default is not None}


class LdapSettings:
    """The settings of one connected system, read as the connector needs them."""

    def __init__(self, values: dict[str, Any], base_dir: Path) -> None:
        self.values = values
        #: The configuration's folder: relative paths (``ca_file``) are relative to it.
        self.base_dir = base_dir
        #: The directory the session found (``directory`` setting and root DSE); None
        #: until a session is open.
        self.directory: Directory | None = None

    def get(self, name: str) -> Any:
        """The raw value of a setting; its declared default when absent or None (so
        that ``tls_verify`` is on even when no default was filled in), else None."""
        value = self.values.get(name)
        return _DEFAULTS.get(name) if value is None else value

    def text(self, name: str) -> str:
        value = self.get(name)
        return "" if value is None else str(value).strip()

    def flag(self, name: str) -> bool:
        value = self.get(name)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in TRUE_TEXTS | FALSE_TEXTS:
                raise ConnectorConfigurationError(f"{name} must be true or false, not {value!r}.")
            return lowered in TRUE_TEXTS
        return bool(value)

    def number(self, name: str) -> int:
        value = self.get(name)
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = 0
        if number <= 0:
            raise ConnectorConfigurationError(
                f"{name} must be a positive whole number, not {value!r}."
            )
        return number

    @property
    def url(self) -> str:
        return self.text("url")

    @property
    def base_dn(self) -> str:
        return self.text("base_dn")

    @property
    def bind_dn(self) -> str:
        return self.text("bind_dn")

    @property
    def timeout(self) -> int:
        return self.number("timeout")

    def delta_method(self) -> str:
        """The ``delta_method`` setting, checked; when blank, the default of the
        directory the session found (OpenLDAP's until one is open)."""
        method = self.text("delta_method")
        if not method:
            return self.directory.default_delta_method if self.directory else "accesslog"
        if method not in DELTA_METHODS:
            raise ConnectorConfigurationError(
                f"delta_method must be {', '.join(DELTA_METHODS[:-1])} or none, not {method!r}."
            )
        return method

    @property
    def accesslog_base(self) -> str:
        return self.text("accesslog_base") or "cn=accesslog"

    def check(self) -> None:
        """Raise :class:`ConnectorConfigurationError` for the first bad setting."""
        if not self.base_dn:
            raise ConnectorConfigurationError("The ldap connector needs a 'base_dn' setting.")
        if self.bind_dn and not self.values.get("bind_password"):
            # An empty password would make a simple bind anonymous (RFC 4513 §5.1.2).
            raise ConnectorConfigurationError(
                f"bind_dn {self.bind_dn!r} is set but bind_password is empty."
            )
        for name in ("page_size", "export_window", "timeout"):
            self.number(name)
        self.delta_method()
        if self.text("directory").lower() not in DIRECTORY_CHOICES:
            raise ConnectorConfigurationError(
                f"directory must be {', '.join(DIRECTORY_CHOICES)}, not {self.get('directory')!r}."
            )
        range_size(self)

    def who(self) -> str:
        return f"bind DN {self.bind_dn!r}" if self.bind_dn else "an anonymous bind"
