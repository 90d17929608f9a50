"""Users made directly in AD (as Administrator) for the delta and paging tests, and the
connected system that imports them as JIM's service account would."""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.base import ImportPage
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfileExecutionItem,
)
from tests.builders import make_connected_system

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
_names = itertools.count(1)


def sam_name(prefix: str = "u") -> str:
    """A sAMAccountName no other test of the run takes (at most 20 characters)."""
    return f"{prefix}{os.getpid() % 100000}x{next(_names)}"[:20]


def add_user(connection: ldap3.Connection, parent: str, cn: str, **attributes: Any) -> str:
    """Add a user ``CN=<cn>,<parent>``; its DN."""
    dn = f"CN={cn},{parent}"
    values = {"sAMAccountName": sam_name(), **attributes}
    assert connection.add(dn, USER_CLASSES, values), connection.result
    return dn


def guid_of(connection: ldap3.Connection, dn: str) -> str:
    """The objectGUID of ``dn``, in its canonical string form."""
    assert connection.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    return str(uuid.UUID(bytes_le=connection.response[0]["raw_attributes"]["objectGUID"][0]))


def highest_usn(connection: ldap3.Connection) -> int:
    assert connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
    return int(connection.response[0]["raw_attributes"]["highestCommittedUSN"][0])


def ad_system(
    samba_dc, ad_ou: str, page_size: int | None = None, **settings: Any
) -> ConnectedSystem:
    """AD users of ``OU=people`` imported by objectGUID, delta by USN, bound as the
    service account."""
    return make_connected_system(
        "AD",
        "ldap",
        {**samba_dc.service_settings(ad_ou), "delta_method": "usn", **settings},
        object_type="user",
        external_id="objectGUID",
        secondary_external_id="dn",
        container=f"OU=people,{ad_ou}",
        # objectSid comes from an auxiliary class AD's subschema does not list under
        # user: undeclared, the import would type it from its first (base64) value as
        # text, and fail to read it as text afterwards.
        attributes={"objectSid": "binary"},
        profiles=("full_import", "delta_import"),
        page_size=page_size,
        deletion_threshold="100%",
        # Every change moves uSNChanged and whenChanged: not what is tested here.
        change_threshold="100%",
    )


def csos_by_guid(system: ConnectedSystem) -> dict[str, ConnectorSpaceObject]:
    return {
        cso.external_id: cso for cso in ConnectorSpaceObject.objects.filter(connected_system=system)
    }


def live(system: ConnectedSystem) -> dict[str, ConnectorSpaceObject]:
    """The CSOs that are not obsolete, by external id."""
    return {guid: cso for guid, cso in csos_by_guid(system).items() if cso.status != "obsolete"}


def errors(activity: Activity) -> list[tuple[str, str]]:
    """The (error type, message) of the activity's failed items."""
    items = RunProfileExecutionItem.objects.filter(activity=activity).exclude(error_type="")
    return list(items.values_list("error_type", "message"))


def between_pages(
    monkeypatch: pytest.MonkeyPatch, after_page: int, change: Callable[[list[ImportPage]], None]
) -> None:
    """Make ``change`` (given the pages read so far) once the import handed its
    ``after_page``-th page to the processor, before it reads on."""
    original = LdapConnector.import_objects

    def import_objects(self: LdapConnector, *args: Any, **kwargs: Any):
        stream = original(self, *args, **kwargs)

        def pages() -> Iterator[ImportPage]:
            seen: list[ImportPage] = []
            for page in stream.pages:
                seen.append(page)
                yield page
                if len(seen) == after_page:
                    change(seen)

        return dataclasses.replace(stream, pages=pages())

    monkeypatch.setattr(LdapConnector, "import_objects", import_objects)
