"""The LDAP connector (ldap3): schema discovery, paged full import, accesslog delta
import, and export operations (add, modify, modify DN, delete)."""

from __future__ import annotations

from connectors.base import Connector, SettingSpec


class LdapConnector(Connector):
    name = "ldap"
    label = "LDAP directory"
    settings_spec = (
        SettingSpec("url", required=True, help="ldap://host:port or ldaps://host:port"),
        SettingSpec("bind_dn", help="DN to bind as; anonymous when blank."),
        SettingSpec("bind_password", secret=True, help="Password of bind_dn."),
        SettingSpec("base_dn", required=True, help="Search base when no container is given."),
        SettingSpec("start_tls", type=bool, default=False, help="Upgrade ldap:// with StartTLS."),
        SettingSpec("ca_file", help="PEM file of the CA to trust for TLS."),
        SettingSpec("tls_verify", type=bool, default=True, help="Check the server certificate."),
        SettingSpec("page_size", type=int, default=500, help="Paged-results page size."),
        SettingSpec("timeout", type=int, default=30, help="Connect/operation timeout (seconds)."),
        SettingSpec(
            "delta_method",
            default="accesslog",
            choices=("accesslog", "modify_timestamp", "none"),
            help="How delta imports find changes.",
        ),
        SettingSpec("accesslog_base", default="cn=accesslog", help="The accesslog database."),
    )
    supports_full_import = True
    supports_delta_import = True
    supports_export = True
    supports_paging = True
    supports_schema_discovery = True
