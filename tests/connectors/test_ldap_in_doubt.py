"""Exports whose outcome was in doubt, resolved by looking (against a real slapd): a
create refused with entryAlreadyExists reads the entry back and succeeds when it is the
one the create makes; a delete of an entry that is gone succeeds; an export broken by a
stopped server converges when it is run again."""

from __future__ import annotations

import threading
import time

import ldap3

from connectors.backends.ldap import LdapConnector
from connectors.base import ObjectTypeSpec
from tests.connectors.ldap_entries import change, new_person, read
from tests.support.slapd import service_settings


def add_out_of_band(slapd, dn: str, attributes: dict) -> str:
    """Add an entry as someone else would; its entryUUID."""
    connection = slapd.connection(raise_exceptions=True)
    try:
        connection.add(dn, attributes=attributes)
    finally:
        connection.unbind()
    return read(slapd, dn, "entryUUID")["entryUUID"][0]


def test_a_create_of_the_entry_there_already_succeeds_with_its_entry_uuid(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    dn, manager = f"uid=jdoe,{people}", f"uid=boss,{people}"
    uuid = add_out_of_band(
        slapd,
        dn,
        {
            # The same values, written as the directory compares them: classes and
            # case-insensitive values in another case and order, the DN spaced.
            "objectClass": ["top", "INETORGPERSON", "person", "organizationalPerson"],
            "cn": ["JOHN DOE"],
            "sn": ["Doe"],
            "uid": ["jdoe"],
            "mail": ["john@example.org", "jdoe@example.org"],
            "manager": [f"UID=Boss, {people.upper()}"],
            "employeeNumber": ["42"],
            "description": ["not sent by the create: not compared"],
        },
    )
    create = new_person(
        1,
        dn,
        cn=("update", ["John Doe"]),
        mail=("add", ["jdoe@example.org", "john@example.org"]),
        manager=("update", [manager]),
        employeeNumber=("update", [42]),
    )
    with LdapConnector(service_settings(slapd)) as connector:
        (result,) = connector.export([create])
    assert result.ok, result.error
    assert (result.external_id, result.dn) == (uuid, dn)


def test_a_create_of_a_different_entry_there_names_what_differs(slapd, ldap_ou):
    dn = f"uid=jdoe,ou=people,{ldap_ou}"
    add_out_of_band(
        slapd, dn, {"objectClass": ["inetOrgPerson"], "cn": ["J"], "sn": ["Other"], "uid": "jdoe"}
    )
    create = new_person(1, dn, cn=("update", ["J"]), mail=("update", ["j@example.org"]))
    with LdapConnector(service_settings(slapd)) as connector:
        (result,) = connector.export([create])
    assert not result.ok and not result.transient
    assert result.error.startswith(f"add {dn!r} failed: entryAlreadyExists (68)")
    assert "the entry there is not the one to create" in result.error
    assert "sn is ['Other'], the create sends ['Doe']" in result.error
    assert "mail is absent, the create sends ['j@example.org']" in result.error
    assert "cn is" not in result.error, result.error
    assert "objectClass" not in result.error, result.error  # its superclasses implied


def test_a_delete_of_an_entry_that_is_gone_succeeds(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=people)
    with LdapConnector(service_settings(slapd)) as connector:
        results = connector.export(
            [
                change(1, "delete", dn=f"uid=gone,{people}"),
                change(2, "delete", spec, external_id="00000000-0000-0000-0000-000000000000"),
            ]
        )
    assert [(result.ok, result.error) for result in results] == [(True, ""), (True, "")]


def test_an_export_broken_by_a_stopped_server_converges_when_run_again(slapd, ldap_ou):
    """slapd stops mid-export: what was answered is made, the rest is transient (in doubt
    or not sent). Run again once slapd is back, the whole batch - the creates that got
    through included - succeeds, each with the entryUUID of its entry."""
    people = f"ou=people,{ldap_ou}"
    changes = [
        new_person(n, f"uid=c{n:04d},{people}", cn=("update", [f"C {n}"])) for n in range(3000)
    ]

    def stop_once_the_batch_is_under_way() -> None:
        deadline = time.monotonic() + 30
        while read(slapd, f"uid=c0000,{people}") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        slapd.stop()

    stopper = threading.Thread(target=stop_once_the_batch_is_under_way)
    with LdapConnector(service_settings(slapd, timeout=5)) as connector:
        connector.directory_schema()
        stopper.start()
        try:
            first = connector.export(changes)
        finally:
            stopper.join()
            slapd.start()
    failed = [result for result in first if not result.ok]
    assert failed and all(result.transient for result in failed)
    assert all(
        "whether it was applied is unknown" in result.error or "it was not sent" in result.error
        for result in failed
    )

    with LdapConnector(service_settings(slapd)) as connector:
        again = connector.export(changes)

    assert [result.error for result in again if not result.ok] == []
    uuids = _entry_uuids(slapd, people)
    assert len(uuids) == 3000
    assert {result.dn.split(",")[0]: result.external_id for result in again} == uuids
    made_first = {result.id: result.external_id for result in first if result.ok}
    assert all(again[n].external_id == uuid for n, uuid in made_first.items())


def _entry_uuids(slapd, base: str) -> dict[str, str]:
    """RDN → entryUUID of every person under ``base``."""
    connection = slapd.connection()
    try:
        entries = connection.extend.standard.paged_search(
            base, "(objectClass=inetOrgPerson)", ldap3.LEVEL, attributes=["entryUUID"]
        )
        return {
            entry["dn"].split(",")[0]: entry["raw_attributes"]["entryUUID"][0].decode()
            for entry in entries
            if entry.get("type") == "searchResEntry"
        }
    finally:
        connection.unbind()
