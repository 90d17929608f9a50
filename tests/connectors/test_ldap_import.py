"""LDAP imports against a real slapd: paged full imports, value conversion, accesslog
and modifyTimestamp delta imports, and the same through the import processor.

Every test works in its own ``ldap_ou`` subtree; entries are added pipelined.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import ldap3
import pytest

from connectors.backends.ldap import LdapConnector
from connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    ImportObject,
)
from connectors.models import ConnectorSpaceObject
from tests.builders import add_object_type, make_connected_system, run
from tests.connectors.ldap_entries import (
    add_entries,
    delete_entries,
    delta_import,
    full_import,
    group,
    groups_spec,
    people_spec,
    person,
)
from tests.support.slapd import service_settings

# --------------------------------------------------------------------------- helpers


def by_uid(objects: list[ImportObject]) -> dict[str, ImportObject]:
    return {obj.attributes["uid"][0]: obj for obj in objects if obj.change == "upsert"}


# --------------------------------------------------------------------------- full import


def test_a_full_import_reads_page_by_page_lazily(slapd, ldap_ou):
    add_entries(slapd, (person(ldap_ou, f"p{n:03d}") for n in range(300)))
    connection = slapd.connection()
    with LdapConnector(service_settings(slapd)) as connector:
        stream = connector.import_objects(
            [people_spec(ldap_ou)], delta=False, persisted_data={}, page_size=50
        )
        # Nothing is read before the first page is asked for.
        add_entries(slapd, [person(ldap_ou, "late")])
        pages = iter(stream.pages)
        first = next(pages)
        # Pages are fetched as they are consumed: page 3 is not read yet.
        connection.modify(
            f"uid=p149,ou=people,{ldap_ou}", {"description": [(ldap3.MODIFY_REPLACE, ["new"])]}
        )
        rest = list(pages)
    connection.unbind()
    sizes = [len(page.objects) for page in [first, *rest]]
    assert sizes == [50, 50, 50, 50, 50, 50, 1]
    objects = by_uid([obj for page in [first, *rest] for obj in page.objects])
    assert len(objects) == 301 and "late" in objects
    assert objects["p149"].attributes["description"] == ["new"]
    assert stream.total is None


def test_values_are_converted_by_data_type(slapd, ldap_ou):
    photo = bytes(range(256))
    manager_dn = f"uid=boss,ou=people,{ldap_ou}"
    add_entries(
        slapd,
        [
            person(ldap_ou, "boss"),
            person(
                ldap_ou,
                "jdoe",
                objectClass=["inetOrgPerson", "posixAccount"],
                givenname="John",
                mail=["jdoe@example.org", "john.doe@example.org"],
                employeeNumber="1042",
                jpegPhoto=photo,
                userPassword="secret",
                manager=manager_dn,
                uidNumber="5001",
                gidNumber="100",
                homeDirectory="/home/jdoe",
            ),
        ],
    )
    with LdapConnector(service_settings(slapd)) as connector:
        spec = people_spec(ldap_ou, employeenumber="integer")
        watermark, objects = full_import(connector, [spec])
    jdoe = by_uid(objects)["jdoe"]
    attributes = jdoe.attributes
    assert attributes["givenName"] == ["John"]  # the schema's spelling, not the request's
    assert sorted(attributes["mail"]) == ["jdoe@example.org", "john.doe@example.org"]
    assert attributes["employeeNumber"] == [1042]  # declared integer
    assert attributes["uidNumber"] == [5001]  # integer by the schema
    assert attributes["jpegPhoto"] == [base64.b64encode(photo).decode("ascii")]
    assert attributes["manager"] == [manager_dn]  # a reference: the DN text
    assert "userPassword" not in attributes
    assert sorted(attributes["objectClass"]) == ["inetOrgPerson", "posixAccount"]
    assert jdoe.external_id == attributes["entryUUID"][0]
    assert jdoe.external_id == jdoe.external_id.lower() and len(jdoe.external_id) == 36
    assert jdoe.secondary_external_id == f"uid=jdoe,ou=people,{ldap_ou}"
    assert attributes["modifyTimestamp"][0].endswith("+00:00")
    assert jdoe.location == jdoe.secondary_external_id
    assert watermark["delta_method"] == "accesslog"


def test_a_value_that_does_not_convert_is_an_error_naming_entry_and_attribute(slapd, ldap_ou):
    add_entries(
        slapd,
        [person(ldap_ou, "ok", employeeNumber="7"), person(ldap_ou, "bad", employeeNumber="E-7")],
    )
    with LdapConnector(service_settings(slapd)) as connector:
        stream = connector.import_objects(
            [people_spec(ldap_ou, employeeNumber="integer")], delta=False, persisted_data={}
        )
        pages = list(stream.pages)
    errors = [error for page in pages for error in page.errors]
    assert [obj.attributes["uid"] for page in pages for obj in page.objects] == [["ok"]]
    (error,) = errors
    assert error.location == f"uid=bad,ou=people,{ldap_ou}"
    assert error.message == "employeeNumber: 'E-7' is not an integer"
    assert len(error.external_id) == 36  # deletion detection still knows the entry


def test_group_members_are_dn_references(slapd, ldap_ou):
    members = [f"uid=m{n},ou=people,{ldap_ou}" for n in range(3)]
    add_entries(slapd, [person(ldap_ou, f"m{n}") for n in range(3)])
    add_entries(slapd, [group(ldap_ou, "staff", members)])
    with LdapConnector(service_settings(slapd)) as connector:
        _, objects = full_import(connector, [people_spec(ldap_ou), groups_spec(ldap_ou)])
    (staff,) = [obj for obj in objects if obj.object_type == "groupOfNames"]
    assert sorted(staff.attributes["member"]) == members
    assert [obj.object_type for obj in objects].count("inetOrgPerson") == 3


def test_a_missing_container_is_a_configuration_error(slapd, ldap_ou):
    spec = people_spec(ldap_ou)
    spec.container = f"ou=nowhere,{ldap_ou}"
    with (
        LdapConnector(service_settings(slapd)) as connector,
        pytest.raises(ConnectorConfigurationError, match="container 'ou=nowhere,ou=t"),
    ):
        connector.import_objects([spec], delta=False, persisted_data={})


def test_ten_thousand_entries_in_pages(slapd, ldap_ou):
    count = 10_000
    add_entries(slapd, (person(ldap_ou, f"u{n:05d}", employeeNumber=str(n)) for n in range(count)))
    started = time.monotonic()
    seen: set[str] = set()
    pages = 0
    with LdapConnector(service_settings(slapd)) as connector:
        stream = connector.import_objects(
            [people_spec(ldap_ou)], delta=False, persisted_data={}, page_size=1000
        )
        for page in stream.pages:
            pages += 1
            assert len(page.objects) <= 1000 and not page.errors
            seen.update(obj.external_id for obj in page.objects)
    elapsed = time.monotonic() - started
    assert (len(seen), pages) == (count, 10)
    assert elapsed < 20, f"10,000 entries took {elapsed:.1f} s"
    delete_entries(slapd, (f"uid=u{n:05d},ou=people,{ldap_ou}" for n in range(count)))


# --------------------------------------------------------------------------- watermarks


def log_entries_since(slapd, req_start: str) -> list[str]:
    """The reqStart of every accesslog entry at or after ``req_start``."""
    connection = slapd.connection()
    try:
        connection.search(
            slapd.accesslog_base,
            f"(&(objectClass=auditWriteObject)(reqStart>={req_start}))",
            attributes=["reqStart"],
        )
        return sorted(e["raw_attributes"]["reqStart"][0].decode() for e in connection.response)
    finally:
        connection.unbind()


def test_the_full_import_watermark_is_the_newest_log_entry(slapd, ldap_ou):
    add_entries(slapd, [person(ldap_ou, "a")])
    with LdapConnector(service_settings(slapd)) as connector:
        watermark, _ = full_import(connector, [people_spec(ldap_ou)])
    assert watermark["delta_method"] == "accesslog"
    assert log_entries_since(slapd, watermark["req_start"]) == [watermark["req_start"]]


def test_changes_during_a_full_import_are_in_the_next_delta(slapd, ldap_ou):
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(5)])
    spec = people_spec(ldap_ou)
    with LdapConnector(service_settings(slapd)) as connector:
        stream = connector.import_objects([spec], delta=False, persisted_data={}, page_size=2)
        pages = iter(stream.pages)
        next(pages)
        connection = slapd.connection()
        connection.modify(f"uid=p0,ou=people,{ldap_ou}", {"title": [(ldap3.MODIFY_ADD, ["Dr"])]})
        connection.unbind()
        list(pages)
        _, changed = delta_import(connector, [spec], stream.watermark)
    assert [obj.attributes["uid"] for obj in changed] == [["p0"]]
    assert changed[0].attributes["title"] == ["Dr"]


# --------------------------------------------------------------------------- delta: accesslog


def test_a_delta_import_sees_adds_modifies_renames_moves_and_deletes(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    elsewhere = f"ou=elsewhere,{ldap_ou}"
    add_entries(
        slapd,
        [
            (f"ou=sub,{people}", {"objectClass": ["organizationalUnit"], "ou": "sub"}),
            (elsewhere, {"objectClass": ["organizationalUnit"], "ou": "elsewhere"}),
            *(person(ldap_ou, f"p{n}") for n in range(1, 7)),
        ],
    )
    outsider = f"uid=outsider,{elsewhere}"
    add_entries(slapd, [(outsider, {"objectClass": ["inetOrgPerson"], "cn": "o", "sn": "o"})])
    specs = [people_spec(ldap_ou), groups_spec(ldap_ou)]
    with LdapConnector(service_settings(slapd)) as connector:
        watermark, before = full_import(connector, specs)
        uuids = {obj.attributes["uid"][0]: obj.external_id for obj in before}
        connection = slapd.connection(raise_exceptions=True)
        add_entries(slapd, [person(ldap_ou, "p7", mail="p7@example.org")])
        connection.modify(f"uid=p1,{people}", {"mail": [(ldap3.MODIFY_ADD, ["p1@example.org"])]})
        connection.modify_dn(f"uid=p2,{people}", "uid=p2b")  # rename
        connection.modify_dn(f"uid=p3,{people}", "uid=p3", new_superior=f"ou=sub,{people}")
        connection.modify_dn(f"uid=p4,{people}", "uid=p4", new_superior=elsewhere)
        connection.delete(f"uid=p5,{people}")
        connection.modify(outsider, {"description": [(ldap3.MODIFY_ADD, ["x"])]})
        connection.unbind()
        new_watermark, changed = delta_import(connector, specs, watermark)
        _, nothing = delta_import(connector, specs, new_watermark)

    upserts = by_uid(changed)
    assert sorted(upserts) == ["p1", "p2b", "p3", "p7"]
    assert upserts["p1"].attributes["mail"] == ["p1@example.org"]
    assert upserts["p1"].external_id == uuids["p1"]
    assert upserts["p2b"].external_id == uuids["p2"]  # same object, new DN
    assert upserts["p2b"].secondary_external_id == f"uid=p2b,{people}"
    assert upserts["p3"].secondary_external_id == f"uid=p3,ou=sub,{people}"
    assert upserts["p7"].attributes["mail"] == ["p7@example.org"]
    deletes = {obj.external_id: obj for obj in changed if obj.change == "delete"}
    assert sorted(deletes) == sorted([uuids["p4"], uuids["p5"]])  # moved out, deleted
    assert deletes[uuids["p5"]].secondary_external_id == f"uid=p5,{people}"
    assert deletes[uuids["p4"]].secondary_external_id == f"uid=p4,{people}"
    assert all(obj.object_type == "inetOrgPerson" for obj in deletes.values())
    assert new_watermark["req_start"] > watermark["req_start"]
    assert nothing == []


def test_several_changes_of_one_entry_are_one_object_and_a_delete_wins(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, "busy"), person(ldap_ou, "doomed")])
    spec = people_spec(ldap_ou)
    with LdapConnector(service_settings(slapd)) as connector:
        watermark, before = full_import(connector, [spec])
        doomed = next(o.external_id for o in before if o.attributes["uid"] == ["doomed"])
        connection = slapd.connection(raise_exceptions=True)
        for title in ("a", "b", "c"):
            connection.modify(f"uid=busy,{people}", {"title": [(ldap3.MODIFY_REPLACE, [title])]})
        connection.modify_dn(f"uid=busy,{people}", "uid=busier")
        connection.modify(f"uid=doomed,{people}", {"title": [(ldap3.MODIFY_ADD, ["x"])]})
        connection.delete(f"uid=doomed,{people}")
        add_entries(slapd, [person(ldap_ou, "brief")])
        connection.delete(f"uid=brief,{people}")
        connection.unbind()
        _, changed = delta_import(connector, [spec], watermark)
    upserts = [obj for obj in changed if obj.change == "upsert"]
    deletes = [obj for obj in changed if obj.change == "delete"]
    assert [(o.attributes["uid"], o.attributes["title"]) for o in upserts] == [(["busier"], ["c"])]
    assert sorted(o.secondary_external_id for o in deletes) == [
        f"uid=brief,{people}",
        f"uid=doomed,{people}",
    ]
    assert doomed in {o.external_id for o in deletes}


def test_a_delta_without_a_watermark_asks_for_a_full_import(slapd, ldap_ou):
    with (
        LdapConnector(service_settings(slapd)) as connector,
        pytest.raises(ConnectorError, match="run a full import first"),
    ):
        connector.import_objects([people_spec(ldap_ou)], delta=True, persisted_data={})


def test_a_purged_watermark_asks_for_a_full_import(slapd, ldap_ou):
    purged = {"delta_method": "accesslog", "req_start": "20000101000000.000000Z"}
    with (
        LdapConnector(service_settings(slapd)) as connector,
        pytest.raises(ConnectorError, match=r"no longer holds .* Run a full import"),
    ):
        connector.import_objects([people_spec(ldap_ou)], delta=True, persisted_data=purged)


def test_an_unreadable_accesslog_suggests_modify_timestamp(slapd, ldap_ou):
    add_entries(slapd, [person(ldap_ou, "reader", userPassword="reader-Pa55")])
    settings = service_settings(
        slapd, bind_dn=f"uid=reader,ou=people,{ldap_ou}", bind_password="reader-Pa55"
    )
    with LdapConnector(settings) as connector:
        watermark, objects = full_import(connector, [people_spec(ldap_ou)])
        assert watermark == {} and len(objects) == 1  # full imports still work
        with pytest.raises(ConnectorConfigurationError, match="modify_timestamp") as failure:
            connector.import_objects([people_spec(ldap_ou)], delta=True, persisted_data=watermark)
    assert "cn=accesslog" in str(failure.value) and "reader" in str(failure.value)


def test_delta_method_none_has_no_delta_import(slapd, ldap_ou):
    with LdapConnector(service_settings(slapd, delta_method="none")) as connector:
        watermark, _ = full_import(connector, [people_spec(ldap_ou)])
        assert watermark == {}
        with pytest.raises(ConnectorConfigurationError, match="no delta import"):
            connector.import_objects([people_spec(ldap_ou)], delta=True, persisted_data={})


def test_a_watermark_of_another_method_asks_for_a_full_import(slapd, ldap_ou):
    with (
        LdapConnector(service_settings(slapd, delta_method="modify_timestamp")) as connector,
        pytest.raises(ConnectorError, match=r"with delta_method accesslog.*full import"),
    ):
        connector.import_objects(
            [people_spec(ldap_ou)],
            delta=True,
            persisted_data={"delta_method": "accesslog", "req_start": None},
        )


# --------------------------------------------------------------------------- delta: modifyTimestamp


def test_a_modify_timestamp_delta_sees_changes_but_not_deletes(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(4)])
    time.sleep(1.1)  # modifyTimestamp counts seconds
    spec = people_spec(ldap_ou)
    with LdapConnector(service_settings(slapd, delta_method="modify_timestamp")) as connector:
        watermark, _ = full_import(connector, [spec])
        assert watermark["delta_method"] == "modify_timestamp"
        assert watermark["modify_timestamp"].endswith("Z")
        time.sleep(1.1)
        connection = slapd.connection(raise_exceptions=True)
        connection.modify(f"uid=p1,{people}", {"title": [(ldap3.MODIFY_ADD, ["Dr"])]})
        connection.delete(f"uid=p2,{people}")
        connection.unbind()
        new_watermark, changed = delta_import(connector, [spec], watermark)
    # The watermark's own second is read again (p0…p3 may have been added in it).
    read = {o.attributes["uid"][0]: o for o in changed}
    assert read["p1"].attributes["title"] == ["Dr"]
    assert "p2" not in read and all(o.change == "upsert" for o in changed)
    assert new_watermark["modify_timestamp"] > watermark["modify_timestamp"]


# --------------------------------------------------------------------------- through the processor


def make_directory(slapd, ldap_ou: str, **settings: Any):
    system = make_connected_system(
        "Directory",
        "ldap",
        service_settings(slapd, **settings),
        object_type="inetOrgPerson",
        external_id="entryUUID",
        secondary_external_id="dn",
        container=f"ou=people,{ldap_ou}",
        attributes={"manager": {"type": "reference", "references": "inetOrgPerson"}},
        profiles=("full_import", "delta_import"),
        deletion_threshold="100%",
    )
    add_object_type(
        system,
        "groupOfNames",
        external_id="entryUUID",
        secondary_external_id="dn",
        container=f"ou=groups,{ldap_ou}",
        attributes={"member": {"type": "reference", "multivalued": True}},
    )
    return system


def csos_by_dn(system) -> dict[str, ConnectorSpaceObject]:
    return {
        cso.secondary_external_id: cso
        for cso in ConnectorSpaceObject.objects.filter(connected_system=system)
    }


@pytest.mark.django_db
def test_a_full_import_makes_csos_with_members_resolved(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    add_entries(
        slapd,
        [
            *(person(ldap_ou, f"p{n}", manager=f"uid=p0,{people}") for n in range(1, 4)),
            person(ldap_ou, "p0"),  # the manager comes after the people who name it
            group(ldap_ou, "staff", [f"UID=P1, OU=People,{ldap_ou}", f"uid=p2,{people}"]),
        ],
    )
    system = make_directory(slapd, ldap_ou)

    activity = run(system)

    assert activity.status == "complete", activity.message
    csos = csos_by_dn(system)
    assert len(csos) == 5
    staff = csos[f"cn=staff,ou=groups,{ldap_ou}"]
    assert sorted(staff.attributes["member"]) == sorted(
        [csos[f"uid=p1,{people}"].pk, csos[f"uid=p2,{people}"].pk]
    )
    assert csos[f"uid=p3,{people}"].attributes["manager"] == [csos[f"uid=p0,{people}"].pk]
    assert staff.object_type.name == "groupOfNames"
    assert all(cso.status == "normal" for cso in csos.values())
    assert system.__class__.objects.get(pk=system.pk).persisted_connector_data["req_start"]

    again = run(system)  # nothing changed in the directory: nothing changes in JIM

    assert (again.status, again.counts) == ("complete", {}), again.message


@pytest.mark.django_db
def test_a_delta_import_updates_renames_and_obsoletes_the_right_csos(slapd, ldap_ou):
    people = f"ou=people,{ldap_ou}"
    add_entries(slapd, [person(ldap_ou, f"p{n}") for n in range(1, 5)])
    system = make_directory(slapd, ldap_ou)
    assert run(system).status == "complete"
    before = csos_by_dn(system)
    connection = slapd.connection(raise_exceptions=True)
    connection.modify(f"uid=p1,{people}", {"title": [(ldap3.MODIFY_ADD, ["Dr"])]})
    connection.modify_dn(f"uid=p2,{people}", "uid=p2b")
    connection.delete(f"uid=p3,{people}")
    connection.unbind()
    add_entries(slapd, [person(ldap_ou, "p5")])

    activity = run(system, "Delta Import")

    assert activity.status == "complete", activity.message
    after = {cso.pk: cso for cso in ConnectorSpaceObject.objects.filter(connected_system=system)}
    p1, p2, p3, p4 = (before[f"uid=p{n},{people}"].pk for n in range(1, 5))
    assert after[p1].attributes["title"] == ["Dr"]
    assert after[p2].secondary_external_id == f"uid=p2b,{people}"
    assert after[p2].attributes["uid"] == ["p2b"]
    assert after[p3].status == "obsolete"
    assert after[p4].updated_at == before[f"uid=p4,{people}"].updated_at  # untouched
    assert len(after) == 5
    counts = activity.counts
    assert (counts.get("added"), counts.get("updated"), counts.get("deleted")) == (1, 2, 1)


@pytest.mark.django_db
def test_a_directory_that_is_down_fails_the_activity_clearly(slapd, ldap_ou):
    system = make_directory(slapd, ldap_ou, timeout=3)
    slapd.stop()
    try:
        activity = run(system)
    finally:
        slapd.start()
    assert activity.status == "failed"
    assert activity.message.startswith(f"cannot reach {slapd.url}: ")
    assert "Traceback" not in activity.message
