"""LDAP entries for the connector tests: written to slapd (pipelined, as the connector
sends them), read back, and the specs and export changes the connector is given."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

import ldap3

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap import internals as ldap_internals
from connectors.backends.ldap import wire as ldap_wire
from connectors.base import (
    AttributeSpec,
    ExportAttributeChange,
    ExportChange,
    ObjectTypeSpec,
)
from tests.support.slapd import service_settings

#: An entry to add: (DN, attributes).
Entry = tuple[str, dict[str, Any]]


# --------------------------------------------------------------------------- entries in slapd


def person(ou: str, uid: str, **attributes: Any) -> Entry:
    """An inetOrgPerson under ``ou=people`` of ``ou``."""
    values = {"objectClass": ["inetOrgPerson"], "cn": f"Person {uid}", "sn": uid, "uid": uid}
    values.update(attributes)
    return f"uid={uid},ou=people,{ou}", values


def group(ou: str, cn: str, members: list[str]) -> Entry:
    """A groupOfNames under ``ou=groups`` of ``ou``."""
    return f"cn={cn},ou=groups,{ou}", {"objectClass": ["groupOfNames"], "cn": cn, "member": members}


def add_entries(slapd, entries: Iterable[Entry], window: int = 64) -> None:
    """Add entries with up to ``window`` requests in flight (the connector's transport)."""
    _pipelined(slapd, ((dn, attributes) for dn, attributes in entries), window)


def delete_entries(slapd, dns: Iterable[str], window: int = 64) -> None:
    """Delete leaf entries with up to ``window`` requests in flight."""
    _pipelined(slapd, ((dn, None) for dn in dns), window)


def _pipelined(slapd, requests: Iterable[tuple[str, dict | None]], window: int) -> None:
    """Adds (attributes given) or deletes (None), pipelined; every one must succeed."""
    in_flight: deque[tuple[int, str]] = deque()
    with LdapConnector(service_settings(slapd)) as connector:
        transport = connector._session()

        def collect() -> None:
            message_id, dn = in_flight.popleft()
            response = transport.wait(message_id, dn)
            assert response.ok, (dn, response)

        for dn, attributes in requests:
            if attributes is None:
                build = partial(ldap_internals.delete_message, dn=dn)
            else:
                build = partial(_add_message, dn=dn, attributes=attributes)
            in_flight.append((transport.send(build, dn), dn))
            if len(in_flight) >= window:
                collect()
        while in_flight:
            collect()


def _add_message(message_id: int, dn: str, attributes: dict) -> bytes:
    single = {name: v if isinstance(v, list) else [v] for name, v in attributes.items()}
    return ldap_wire.add_message(message_id, dn, single)


def read(slapd, dn: str, *attributes: str) -> dict[str, list[str]] | None:
    """The entry's attributes (as text), or None when there is no such entry."""
    connection = slapd.connection()
    try:
        if not connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes)):
            return None
        raw = connection.response[0]["raw_attributes"]
        return {name: sorted(v.decode() for v in values) for name, values in raw.items() if values}
    finally:
        connection.unbind()


# --------------------------------------------------------------------------- specs and changes


def people_spec(ou: str, **attributes: str) -> ObjectTypeSpec:
    """The inetOrgPerson object type of ``ou``; ``attributes`` are name=data type."""
    return ObjectTypeSpec(
        "inetOrgPerson",
        "entryUUID",
        "dn",
        container=f"ou=people,{ou}",
        attributes={name: AttributeSpec(name, data_type) for name, data_type in attributes.items()},
    )


def groups_spec(ou: str) -> ObjectTypeSpec:
    """The groupOfNames object type of ``ou``, members as DN references."""
    return ObjectTypeSpec(
        "groupOfNames",
        "entryUUID",
        "dn",
        container=f"ou=groups,{ou}",
        attributes={"member": AttributeSpec("member", "reference", multivalued=True)},
    )


def full_import(connector: LdapConnector, specs: list[ObjectTypeSpec], page_size: int = 500):
    """(watermark, objects) of a full import."""
    stream = connector.import_objects(specs, delta=False, persisted_data={}, page_size=page_size)
    objects = [obj for page in stream.pages for obj in page.objects]
    return stream.watermark, objects


def delta_import(connector: LdapConnector, specs: list[ObjectTypeSpec], watermark: dict):
    """(watermark, objects) of a delta import from ``watermark``."""
    stream = connector.import_objects(specs, delta=True, persisted_data=watermark)
    pages = list(stream.pages)
    return stream.watermark, [obj for page in pages for obj in page.objects]


#: The object types an export change names (no container).
PERSON = ObjectTypeSpec(
    "inetOrgPerson",
    "entryUUID",
    "dn",
    attributes={
        "employeeNumber": AttributeSpec("employeeNumber", "integer"),
        "manager": AttributeSpec("manager", "reference"),
    },
)
GROUP = ObjectTypeSpec(
    "groupOfNames",
    "entryUUID",
    "dn",
    attributes={"member": AttributeSpec("member", "reference", multivalued=True)},
)


def change(
    change_id: int,
    change_type: str,
    spec: ObjectTypeSpec = PERSON,
    *,
    dn: str | None = None,
    new_dn: str | None = None,
    external_id: str | None = None,
    **attributes: tuple[str, list[Any]],
) -> ExportChange:
    """An export change; ``attributes`` are ``name=(kind, values)``."""
    return ExportChange(
        change_id,
        change_type,
        spec,
        external_id=external_id,
        dn=dn,
        new_dn=new_dn,
        attribute_changes=[
            ExportAttributeChange(name, kind, values) for name, (kind, values) in attributes.items()
        ],
    )


def new_person(change_id: int, dn: str, sn: str = "Doe", **attributes: Any) -> ExportChange:
    """The create of a person."""
    return change(change_id, "create", dn=dn, sn=("update", [sn]), **attributes)
