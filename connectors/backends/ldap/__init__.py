"""The LDAP connector (ldap3); its manual is docs/connectors/ldap.md."""

from connectors.backends.ldap.connector import LdapConnector

__all__ = ["LdapConnector"]
