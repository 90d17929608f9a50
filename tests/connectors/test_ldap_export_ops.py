"""LDAP export operations against a real slapd: add, modify, modify DN, delete, the
errors each can meet, and pipelining. Each test works in its own ``ldap_ou``."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.backends.ldap import LdapConnector
from connectors.backends.ldap.exporting import result_of
from connectors.backends.ldap.transport import Response
from connectors.base import (
    ConnectionFailed,
    ObjectTypeSpec,
)
from tests.connectors.ldap_entries import (
    GROUP,
    add_entries,
    change,
    group,
    new_person,
    person,
    read,
)
from tests.support.slapd import service_settings


@pytest.fixture
def connector(slapd):
    with LdapConnector(service_settings(slapd)) as connector:
        yield connector


# --------------------------------------------------------------------------- add


def test_a_create_adds_the_entry_and_returns_its_entry_uuid(slapd, ldap_ou, connector):
    dn = f"uid=jdoe,ou=people,{ldap_ou}"
    manager = f"uid=boss,ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "boss")])

    (result,) = connector.export(
        [
            new_person(
                1,
                dn,
                cn=("update", ["John Doe"]),
                mail=("add", ["jdoe@example.org", "john@example.org"]),
                employeeNumber=("update", [42]),
                manager=("update", [manager]),
                description=("remove_all", []),
            )
        ]
    )

    assert result.ok, result.error
    entry = read(slapd, dn, "*", "entryUUID")
    assert (result.external_id, result.dn) == (entry["entryUUID"][0], dn)
    assert entry["objectClass"] == ["inetOrgPerson", "organizationalPerson", "person", "top"]
    assert entry["uid"] == ["jdoe"]  # the RDN's value, added
    assert entry["mail"] == ["jdoe@example.org", "john@example.org"]
    assert (entry["employeeNumber"], entry["manager"]) == (["42"], [manager])
    assert "description" not in entry


def test_a_create_may_name_auxiliary_classes(slapd, ldap_ou, connector):
    dn = f"uid=posix,ou=people,{ldap_ou}"
    (result,) = connector.export(
        [
            new_person(
                1,
                dn,
                cn=("update", ["P"]),
                objectClass=("update", ["posixAccount"]),
                uidNumber=("update", [1000]),
                gidNumber=("update", [1000]),
                homeDirectory=("update", ["/home/posix"]),
            )
        ]
    )
    assert result.ok, result.error
    entry = read(slapd, dn, "objectClass", "uidNumber")
    assert "posixAccount" in entry["objectClass"] and entry["uidNumber"] == ["1000"]


def test_a_failing_create_does_not_stop_the_others(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "taken")])

    results = connector.export(
        [
            new_person(1, f"uid=a,{people}", cn=("update", ["A"])),
            new_person(2, f"uid=taken,{people}", cn=("update", ["T"])),  # exists
            change(3, "create", dn=f"uid=nosn,{people}", cn=("update", ["N"])),  # sn missing
            new_person(4, f"uid=orphan,ou=nowhere,{ldap_ou}", cn=("update", ["O"])),
            new_person(5, "not a dn", cn=("update", ["X"])),
            new_person(6, f"uid=b,{people}", cn=("update", ["B"])),
            change(7, "create", ObjectTypeSpec("unicorn", "entryUUID"), dn=f"cn=u,{people}"),
            new_person(
                8, f"uid=c,{people}", cn=("update", ["C"]), employeeNumber=("update", [1, 2])
            ),
        ]
    )

    by_id = {result.id: result for result in results}
    assert [result.id for result in results] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert by_id[1].ok and by_id[6].ok
    assert read(slapd, f"uid=a,{people}") is not None
    assert read(slapd, f"uid=b,{people}") is not None
    assert by_id[2].error.startswith(f"add 'uid=taken,{people}' failed: entryAlreadyExists (68)")
    assert "objectClassViolation (65)" in by_id[3].error
    assert "noSuchObject (32)" in by_id[4].error
    assert "not a valid DN" in by_id[5].error
    assert "object class 'unicorn' is not in the directory's schema" in by_id[7].error
    assert "constraintViolation (19)" in by_id[8].error  # employeeNumber is single-valued
    assert not any(by_id[n].ok or by_id[n].transient for n in (2, 3, 4, 5, 7, 8))


# --------------------------------------------------------------------------- modify


def test_group_members_are_replaced_added_and_removed_per_value(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    members = [f"uid=m{n},{people}" for n in range(5)]
    add_entries(slapd, [person(ldap_ou, f"m{n}") for n in range(5)])
    add_entries(slapd, [group(ldap_ou, "g1", members[:2]), group(ldap_ou, "g2", members[:3])])
    g1, g2 = f"cn=g1,ou=groups,{ldap_ou}", f"cn=g2,ou=groups,{ldap_ou}"

    results = connector.export(
        [
            change(1, "update", GROUP, dn=g1, member=("update", members[2:4])),
            change(2, "update", GROUP, dn=g2, member=("add", [members[4]])),
        ]
    )
    assert all(result.ok for result in results), results
    assert read(slapd, g1, "member")["member"] == sorted(members[2:4])
    assert read(slapd, g2, "member")["member"] == sorted([*members[:3], members[4]])

    (result,) = connector.export(
        [change(3, "update", GROUP, dn=g2, member=("remove", [members[0], members[4]]))]
    )
    assert result.ok, result.error
    assert read(slapd, g2, "member")["member"] == sorted(members[1:3])


def test_adding_a_present_value_or_removing_an_absent_one_is_harmless(slapd, ldap_ou, connector):
    """A retried export must not fail because its first attempt got through."""
    people = f"ou=people,{ldap_ou}"
    members = [f"uid=m{n},{people}" for n in range(4)]
    add_entries(slapd, [person(ldap_ou, f"m{n}") for n in range(4)])
    add_entries(slapd, [group(ldap_ou, "g", members[:2])])
    g = f"cn=g,ou=groups,{ldap_ou}"

    (result,) = connector.export(
        [
            change(
                1,
                "update",
                GROUP,
                dn=g,
                member=("add", [members[0].upper(), members[2]]),  # m0 is there already
                description=("remove", ["never set"]),
            )
        ]
    )
    assert result.ok, result.error
    assert read(slapd, g, "member")["member"] == sorted(members[:3])

    (result,) = connector.export(
        [change(2, "update", GROUP, dn=g, member=("remove", [members[3], members[2]]))]
    )
    assert result.ok, result.error
    assert read(slapd, g, "member")["member"] == sorted(members[:2])


def test_attributes_are_replaced_and_cleared(slapd, ldap_ou, connector):
    dn = f"uid=p,ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p", description="old", title=["a", "b"])])

    (result,) = connector.export(
        [
            change(
                1,
                "update",
                dn=dn,
                description=("update", ["new"]),
                title=("remove_all", []),
                street=("remove_all", []),  # absent: nothing to do
                employeeNumber=("update", [7]),
            )
        ]
    )

    assert result.ok, result.error
    entry = read(slapd, dn, "description", "title", "employeeNumber")
    assert entry == {"description": ["new"], "employeeNumber": ["7"]}


def test_an_update_without_a_dn_finds_the_entry_by_entry_uuid(slapd, ldap_ou, connector):
    dn = f"uid=p,ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p")])
    uuid = read(slapd, dn, "entryUUID")["entryUUID"][0]
    spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=f"ou=people,{ldap_ou}")

    results = connector.export(
        [
            change(1, "update", spec, external_id=uuid, title=("update", ["Dr"])),
            change(2, "update", spec, external_id="00000000-0000-0000-0000-000000000000"),
        ]
    )

    assert results[0].ok and read(slapd, dn, "title") == {"title": ["Dr"]}
    assert not results[1].ok and "no entry with entryUUID" in results[1].error


def test_modifying_a_missing_entry_is_a_permanent_error(ldap_ou, connector):
    dn = f"uid=ghost,ou=people,{ldap_ou}"
    (result,) = connector.export([change(1, "update", dn=dn, title=("update", ["x"]))])
    assert not result.ok and not result.transient
    assert result.error.startswith(f"modify '{dn}' failed: noSuchObject (32)")


# --------------------------------------------------------------------------- modify DN


def test_rename_and_move(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p1"), person(ldap_ou, "p2"), person(ldap_ou, "p3")])
    uuids = {n: read(slapd, f"uid=p{n},{people}", "entryUUID")["entryUUID"][0] for n in (1, 2, 3)}
    groups = f"ou=groups,{ldap_ou}"

    results = connector.export(
        [
            change(1, "update", dn=f"uid=p1,{people}", new_dn=f"uid=p1b,{people}"),
            change(2, "update", dn=f"uid=p2,{people}", new_dn=f"uid=p2,{groups}"),
            change(
                3,
                "update",
                dn=f"uid=p3,{people}",
                new_dn=f"uid=p3b,{groups}",
                uid=("update", ["p3b"]),
                title=("update", ["moved"]),
            ),
            change(4, "update", dn=f"uid=p1b,{people}", new_dn=f"UID=P1B, {people.upper()}"),
        ]
    )

    assert all(result.ok for result in results), results
    assert [result.dn for result in results[:3]] == [
        f"uid=p1b,{people}",
        f"uid=p2,{groups}",
        f"uid=p3b,{groups}",
    ]
    assert results[3].dn is None  # the same DN, written differently: nothing to do
    assert read(slapd, f"uid=p1b,{people}", "uid", "entryUUID") == {
        "uid": ["p1b"],  # the old RDN value is gone
        "entryUUID": [uuids[1]],
    }
    assert read(slapd, f"uid=p2,{groups}", "entryUUID")["entryUUID"] == [uuids[2]]
    assert read(slapd, f"uid=p3b,{groups}", "uid", "title") == {"uid": ["p3b"], "title": ["moved"]}
    assert read(slapd, f"uid=p1,{people}") is None and read(slapd, f"uid=p3,{people}") is None


def test_a_rename_retried_after_it_got_through_succeeds(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p1")])
    uuid = read(slapd, f"uid=p1,{people}", "entryUUID")["entryUUID"][0]
    rename = change(
        1,
        "update",
        dn=f"uid=p1,{people}",
        new_dn=f"uid=p1b,{people}",
        external_id=uuid,
        title=("update", ["again"]),
    )
    assert connector.export([rename])[0].ok
    (retry,) = connector.export([rename])
    assert retry.ok, retry.error
    assert retry.dn == f"uid=p1b,{people}"


def test_a_rename_onto_an_existing_entry_fails(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p1"), person(ldap_ou, "p2")])
    (result,) = connector.export(
        [change(1, "update", dn=f"uid=p1,{people}", new_dn=f"uid=p2,{people}")]
    )
    assert not result.ok and "entryAlreadyExists (68)" in result.error
    assert result.error.startswith(f"rename 'uid=p1,{people}' to 'uid=p2,{people}' failed")


# --------------------------------------------------------------------------- delete


def test_delete(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "p1"), person(ldap_ou, "p2")])
    uuid = read(slapd, f"uid=p2,{people}", "entryUUID")["entryUUID"][0]
    spec = ObjectTypeSpec("inetOrgPerson", "entryUUID", "dn", container=people)

    results = connector.export(
        [
            change(1, "delete", dn=f"uid=p1,{people}"),
            change(2, "delete", spec, external_id=uuid),
            change(3, "delete", dn=f"uid=gone,{people}"),  # already gone: fine
            change(4, "delete", dn=ldap_ou),  # has children
        ]
    )

    assert [result.ok for result in results] == [True, True, True, False]
    assert "notAllowedOnNonLeaf (66)" in results[3].error
    assert read(slapd, f"uid=p1,{people}") is None and read(slapd, f"uid=p2,{people}") is None


# --------------------------------------------------------------------------- ordering


def test_a_container_and_its_entries_are_created_in_the_order_given(slapd, ldap_ou, connector):
    """Pipelining never sends a child before its container (nor a delete before a move)."""
    unit = ObjectTypeSpec("organizationalUnit", "entryUUID", "dn")
    changes = []
    for n in range(20):
        ou = f"ou=dept{n},ou=people,{ldap_ou}"
        changes.append(change(1000 + n, "create", unit, dn=ou))
        changes.extend(
            new_person(n * 10 + k, f"uid=d{n}k{k},{ou}", cn=("update", ["D"])) for k in range(3)
        )
    changes.append(change(999, "delete", unit, dn=f"ou=dept0,ou=people,{ldap_ou}"))

    results = connector.export(changes)

    failed = [result for result in results if not result.ok]
    assert [result.id for result in failed] == [999]  # ou=dept0 is not empty
    assert "notAllowedOnNonLeaf (66)" in failed[0].error
    assert read(slapd, f"uid=d19k2,ou=dept19,ou=people,{ldap_ou}") is not None


# --------------------------------------------------------------------------- connection


def test_a_stopped_server_fails_the_export_with_connection_failed(slapd, ldap_ou):
    changes = [new_person(n, f"uid=n{n},ou=people,{ldap_ou}") for n in range(5)]
    with LdapConnector(service_settings(slapd, timeout=3)) as connector:
        connector.export([changes[0]])  # the schema is read; the connection works
        slapd.stop()
        try:
            with pytest.raises(ConnectionFailed, match="connection to ldap://"):
                connector.export(changes[1:])
        finally:
            slapd.start()
    slapd.stop()
    try:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            LdapConnector(service_settings(slapd, timeout=3)).open()
    finally:
        slapd.start()


def test_a_connection_lost_mid_batch_fails_the_rest_as_transient(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    changes = [new_person(n, f"uid=m{n:04d},{people}", cn=("update", ["M"])) for n in range(3000)]

    def stop_once_the_batch_is_under_way() -> None:
        deadline = time.monotonic() + 30
        while read(slapd, f"uid=m0000,{people}") is None and time.monotonic() < deadline:
            time.sleep(0.02)
        slapd.stop()

    stopper = threading.Thread(target=stop_once_the_batch_is_under_way)
    with LdapConnector(service_settings(slapd, timeout=5)) as connector:
        connector.directory_schema()
        stopper.start()
        try:
            results = connector.export(changes)
        finally:
            stopper.join()
            slapd.start()
    made = [result for result in results if result.ok]
    lost = [result for result in results if not result.ok]
    assert made and lost and len(results) == 3000
    assert all(result.transient for result in lost)
    assert all("lost the connection to ldap://" in result.error for result in lost)
    # What is reported made is made (answers that arrived before the break count).
    assert all(read(slapd, result.dn) is not None for result in made[-20:])


def test_busy_and_unavailable_are_transient_others_permanent():
    create = new_person(1, "uid=x,o=y")
    for code, name, transient in [
        (51, "busy", True),
        (52, "unavailable", True),
        (3, "timeLimitExceeded", True),
        (68, "entryAlreadyExists", False),
        (65, "objectClassViolation", False),
        (34, "invalidDNSyntax", False),
        (19, "constraintViolation", False),
    ]:
        result = result_of(create, Response(code, "the server says"), "add 'uid=x,o=y'")
        assert not result.ok and result.transient is transient, name
        assert result.error == f"add 'uid=x,o=y' failed: {name} ({code}): the server says"


def test_a_thousand_creates_are_pipelined(slapd, ldap_ou, connector):
    people = f"ou=people,{ldap_ou}"
    changes = [
        new_person(n, f"uid=bulk{n:04d},{people}", cn=("update", [f"Bulk {n}"]))
        for n in range(1000)
    ]
    started = time.monotonic()
    results = connector.export(changes)
    elapsed = time.monotonic() - started
    assert all(result.ok for result in results)
    assert len({result.external_id for result in results}) == 1000
    assert elapsed < 10, f"1,000 creates took {elapsed:.1f} s"
