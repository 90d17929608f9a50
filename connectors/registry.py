"""The registry of connector types: one line per connector."""

from __future__ import annotations

from importlib import import_module

from connectors.base import Connector

#: connector name → "module:Class"
CONNECTORS: dict[str, str] = {
    "csv": "connectors.backends.csv:CsvConnector",
    "ldap": "connectors.backends.ldap.connector:LdapConnector",
}


class UnknownConnector(LookupError):
    pass


def get_connector_class(name: str) -> type[Connector]:
    """The connector class registered as ``name``; :class:`UnknownConnector` otherwise."""
    try:
        dotted = CONNECTORS[name]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise UnknownConnector(f"unknown connector {name!r} (known: {known})") from None
    module_name, class_name = dotted.split(":")
    return getattr(import_module(module_name), class_name)


def connector_sets_passwords(name: str) -> bool:
    """Whether the connector registered as ``name`` sends initial passwords (False for
    an unknown one: that is reported on its own)."""
    return name in CONNECTORS and get_connector_class(name).supports_passwords
