"""The import processor (seed 002), box by box, on real CSV files and PostgreSQL.

What a CSV file cannot produce (several object types, DNs, deletes, a connection
breaking mid-run) comes from the in-test ScriptedConnector.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.base import ConnectionFailed, ImportObject, ImportPage
from connectors.choices import CsoStatus
from connectors.models import ConnectedSystem, ConnectedSystemAttribute, ConnectorSpaceObject
from core.writer import PageWriter
from tests.builders import (
    add_attribute,
    changes,
    csos,
    errors,
    make_connected_system,
    make_csv_system,
    people,
    person,
    rpeis,
    run,
    write_csv,
)
from tests.connectors.scripted_connector import ScriptedConnector, obj, page

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- creates


def test_a_first_import_creates_a_cso_per_row(tmp_path):
    system = make_csv_system(tmp_path, people(3))

    activity = run(system)

    assert activity.status == "complete"
    assert changes(activity) == [("added", "1001"), ("added", "1002"), ("added", "1003")]
    cso = csos(system)["1002"]
    assert (cso.status, cso.join_type, cso.sync_pending) == ("normal", "not_joined", True)
    assert cso.attributes == {
        "employeeId": ["1002"],
        "firstName": ["John"],
        "lastName": ["Smith1002"],
        "department": ["Sales"],
    }
    assert cso.object_type.name == "person"
    assert all(item.cs_object_id == csos(system)[item.external_id].pk for item in rpeis(activity))
    assert activity.counts == {"added": 3}
    assert (activity.objects_processed, activity.objects_total) == (3, 3)


def test_attributes_seen_for_the_first_time_join_the_schema(tmp_path):
    system = make_csv_system(tmp_path, [person("1", title="CTO")], attributes={"age": "integer"})

    run(system)

    attributes = dict(
        ConnectedSystemAttribute.objects.filter(object_type__connected_system=system).values_list(
            "name", "data_type"
        )
    )
    assert attributes == {
        "age": "integer",
        "employeeId": "text",
        "firstName": "text",
        "lastName": "text",
        "department": "text",
        "title": "text",
    }


def test_new_attributes_join_the_schema_typed_by_their_values(scripted):
    when = dt.datetime(2024, 1, 31, tzinfo=dt.UTC)
    ScriptedConnector.reset(
        [page(obj("person", "u1", mail=["a@x", "b@x"], cn="A", seen=when, uidNumber=7))]
    )

    run(scripted)

    schema = {
        name: (data_type, multivalued)
        for name, data_type, multivalued in ConnectedSystemAttribute.objects.filter(
            object_type__connected_system=scripted
        ).values_list("name", "data_type", "multivalued")
    }
    assert schema == {
        "mail": ("text", True),
        "cn": ("text", False),
        "seen": ("datetime", False),
        "uidNumber": ("integer", False),
    }


# --------------------------------------------------------------------------- checks


def test_duplicates_in_one_page_are_all_rejected_no_random_winner(tmp_path):
    rows = [person("1001"), person("1002"), person("1001"), person("1003"), person("1001")]
    system = make_csv_system(tmp_path, rows)

    activity = run(system)

    assert errors(activity) == [("duplicate_object", "1001")] * 3
    assert changes(activity) == [("added", "1002"), ("added", "1003")]
    assert set(csos(system)) == {"1002", "1003"}
    message = activity.items.filter(error_type="duplicate_object").first().message
    assert message.startswith("hr.csv line 2: external id '1001' appears 3 times")
    assert "hr.csv line 4" in message and "hr.csv line 6" in message
    assert activity.status == "complete_with_errors"
    assert activity.counts == {"added": 2}
    assert activity.error_count == 3


def test_a_duplicate_of_an_existing_object_leaves_its_cso_untouched(tmp_path):
    system = make_csv_system(tmp_path, people(3))
    run(system)
    before = csos(system)["1001"]
    write_csv(tmp_path / "hr.csv", [*people(3), person("1001", department="IT")])

    activity = run(system)

    assert errors(activity) == [("duplicate_object", "1001"), ("duplicate_object", "1001")]
    after = csos(system)["1001"]
    assert (after.status, after.attributes, after.updated_at) == (
        "normal",
        before.attributes,
        before.updated_at,
    )


def test_a_duplicate_in_a_later_page_is_rejected_and_the_first_kept(tmp_path):
    rows = [person("1001"), person("1002"), person("1003"), person("1001", department="IT")]
    system = make_csv_system(tmp_path, rows, page_size=2)

    activity = run(system)

    assert errors(activity) == [("duplicate_object", "1001")]
    assert (
        "already imported from an earlier page"
        in activity.items.get(error_type="duplicate_object").message
    )
    assert csos(system)["1001"].attributes["department"] == ["Sales"]


def test_a_third_occurrence_in_a_later_page_is_rejected_too(tmp_path):
    rows = [person("1"), person("1"), person("2"), person("1")]
    system = make_csv_system(tmp_path, rows, page_size=2)

    activity = run(system)

    assert errors(activity) == [("duplicate_object", "1")] * 3
    assert set(csos(system)) == {"2"}


def test_an_object_type_not_selected_is_rejected(scripted):
    ScriptedConnector.reset([page(obj("person", "u1"), obj("printer", "p1"), obj("person", "u2"))])

    activity = run(scripted)

    assert errors(activity) == [("could_not_match_object_type", "p1")]
    assert "object type 'printer' is not a selected object type of Directory" in (
        activity.items.get(error_type="could_not_match_object_type").message
    )
    assert set(csos(scripted)) == {"u1", "u2"}


def test_a_row_without_external_id_is_rejected(tmp_path):
    system = make_csv_system(tmp_path, [person("1001"), person(""), person("  ")])

    activity = run(system)

    assert [e for e, _ in errors(activity)] == ["missing_external_id"] * 2
    items = activity.items.filter(error_type="missing_external_id").order_by("pk")
    assert items[0].message == (
        "hr.csv line 3: no value for 'employeeId', the external id of person"
    )
    assert set(csos(system)) == {"1001"}


def test_duplicate_attribute_names_reject_the_object(tmp_path):
    path = tmp_path / "hr.csv"
    system = make_csv_system(tmp_path, None)
    path.write_text("employeeId,mail,mail\n1001,a@x,b@x\n")

    activity = run(system)

    assert errors(activity) == [("duplicate_imported_attributes", "1001")]
    assert "attribute names appear more than once (mail)" in activity.items.get().message
    assert csos(system) == {}


def test_malformed_rows_are_errors_with_their_location_and_the_rest_imports(tmp_path):
    path = tmp_path / "hr.csv"
    system = make_csv_system(tmp_path, None, attributes={"age": "integer"})
    path.write_text('employeeId,firstName,age\n1,Ann,30\n2,Bob\n3,"Cy"x,40\n4,Di,old\n5,Ed,50\n')

    activity = run(system)

    assert set(csos(system)) == {"1", "5"}
    assert [
        (i.error_type, i.external_id, i.message)
        for i in activity.items.exclude(error_type="").order_by("pk")
    ] == [
        (
            "invalid_data",
            "2",
            "hr.csv line 3: 2 values where the header has 3 columns: column 3 (age) missing",
        ),
        (
            "invalid_data",
            "3",
            "hr.csv line 4: column 2 (firstName): unexpected 'x' after a closing quote",
        ),
        ("invalid_data", "4", "hr.csv line 5: column 3 (age): 'old' is not an integer"),
    ]
    assert activity.status == "complete_with_errors"
    assert activity.objects_processed == 5


# --------------------------------------------------------------------------- updates


def test_an_update_stages_only_real_changes(tmp_path):
    system = make_csv_system(tmp_path, people(3))
    run(system)
    before = csos(system)
    ConnectorSpaceObject.objects.filter(connected_system=system).update(sync_pending=False)
    rows = people(3)
    rows[1]["department"] = "IT"
    rows[2]["lastName"] = ""  # a blank cell: the attribute is gone
    write_csv(tmp_path / "hr.csv", rows)

    activity = run(system)

    assert changes(activity) == [("updated", "1002"), ("updated", "1003")]
    assert [i.details for i in rpeis(activity)] == [
        {
            "attributes": ["department"],
            "changes": {"department": {"old": ["Sales"], "new": ["IT"]}},
        },
        {"attributes": ["lastName"], "changes": {"lastName": {"old": ["Smith1003"], "new": []}}},
    ]
    assert [i.message for i in rpeis(activity)] == ["department changed", "lastName changed"]
    after = csos(system)
    assert after["1002"].attributes["department"] == ["IT"]
    assert "lastName" not in after["1003"].attributes
    assert after["1001"].updated_at == before["1001"].updated_at
    assert [after[k].sync_pending for k in ("1001", "1002", "1003")] == [False, True, True]


def test_the_same_file_again_writes_no_rpei_and_no_cso_row(tmp_path):
    system = make_csv_system(
        tmp_path,
        [person("1", groups="a;b", managerId="2"), person("2", groups="c")],
        attributes={"groups": {"multivalued": True}, "managerId": {"type": "reference"}},
    )
    run(system)
    write_csv(
        tmp_path / "hr.csv",
        [person("1", groups="b; a", managerId="2"), person("2", groups="c")],
    )  # the same values, in another order

    before = {cso.pk: cso.updated_at for cso in csos(system).values()}

    with CaptureQueriesContext(connection) as queries:
        activity = run(system)

    assert activity.status == "complete"
    assert rpeis(activity) == []
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if "connectors_connectorspaceobject" in q["sql"].split(" WHERE ")[0]
        and q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE", "COPY"))
    ]
    assert writes == []
    assert {cso.pk: cso.updated_at for cso in csos(system).values()} == before


def test_a_cso_that_was_obsolete_comes_back(tmp_path):
    system = make_csv_system(tmp_path, people(2))
    run(system)
    ConnectorSpaceObject.objects.filter(external_id="1002").update(status="obsolete")

    activity = run(system)

    assert changes(activity) == [("updated", "1002")]
    assert csos(system)["1002"].status == "normal"


# --------------------------------------------------------------------------- external ids


def test_numeric_external_ids_match_their_text_form(scripted):
    ScriptedConnector.reset([page(obj("person", None, id=1001), obj("person", None, id=" 1002 "))])
    run(scripted)
    ScriptedConnector.reset([page(obj("person", "1001"), obj("person", 1002.0))])

    activity = run(scripted)

    assert set(csos(scripted)) == {"1001", "1002"}
    assert [c for c, _ in changes(activity)] == ["updated", "updated"]  # the id attribute went
    assert {cso.status for cso in csos(scripted).values()} == {"normal"}


def test_a_numeric_external_id_column_is_stored_as_text(tmp_path):
    system = make_csv_system(tmp_path, people(2), attributes={"employeeId": "integer"})

    run(system)

    cso = csos(system)["1001"]
    assert cso.external_id == "1001"
    assert cso.attributes["employeeId"] == [1001]


# --------------------------------------------------------------------------- provisioning


def provisioned_cso(system: ConnectedSystem, dn: str, external_id: str | None = None):
    """A CSO as export evaluation creates it: pending provisioning, known by its DN."""
    return ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=system.object_types.get(),
        external_id=external_id,
        secondary_external_id=dn,
        secondary_external_id_key=dn.lower(),
        status=CsoStatus.PENDING_PROVISIONING,
        attributes={"cn": ["Jo"]},
        sync_pending=False,
    )


def test_a_provisioned_object_is_found_by_its_dn_and_becomes_normal(scripted):
    cso = provisioned_cso(scripted, "uid=jo,ou=people,dc=example,dc=org")
    ScriptedConnector.reset(
        [page(obj("person", "uuid-1", dn="UID=jo, ou=people,dc=example,dc=org", cn="Jo"))]
    )

    activity = run(scripted)

    cso.refresh_from_db()
    assert (cso.status, cso.external_id) == ("normal", "uuid-1")
    assert cso.secondary_external_id == "UID=jo, ou=people,dc=example,dc=org"
    assert ConnectorSpaceObject.objects.count() == 1  # not a second CSO
    assert rpeis(activity) == []  # confirmed, nothing changed: no RPEI (seed 002)


def test_a_provisioned_object_is_found_by_its_external_id_with_its_changes(scripted):
    cso = provisioned_cso(scripted, "uid=jo,ou=people,dc=example,dc=org", "uuid-1")
    ScriptedConnector.reset(
        [page(obj("person", "uuid-1", dn="uid=jo,ou=people,dc=example,dc=org", cn="Joe"))]
    )

    activity = run(scripted)

    cso.refresh_from_db()
    assert (cso.status, cso.attributes) == ("normal", {"cn": ["Joe"]})
    assert changes(activity) == [("updated", "uuid-1")]


# --------------------------------------------------------------------------- references


def test_references_resolve_across_pages_into_cso_ids(tmp_path):
    rows = [
        person("1", managerId="3"),
        person("2", managerId="4"),
        person("3", managerId="1"),
        person("4"),
        person("5", managerId="9"),  # nobody has id 9
    ]
    system = make_csv_system(
        tmp_path,
        rows,
        page_size=2,
        attributes={"managerId": {"type": "reference", "references": "person"}},
    )

    activity = run(system)

    by_id = csos(system)
    assert by_id["1"].attributes["managerId"] == [by_id["3"].pk]
    assert by_id["2"].attributes["managerId"] == [by_id["4"].pk]
    assert by_id["3"].attributes["managerId"] == [by_id["1"].pk]
    assert by_id["1"].unresolved_references == {}
    assert "managerId" not in by_id["5"].attributes
    assert by_id["5"].unresolved_references == {"managerId": ["9"]}
    assert changes(activity) == [("added", str(n)) for n in range(1, 6)]


def test_an_unresolved_reference_resolves_on_a_later_import(tmp_path):
    attributes = {"managerId": {"type": "reference", "references": "person"}}
    system = make_csv_system(tmp_path, [person("1", managerId="9")], attributes=attributes)
    run(system)
    ConnectorSpaceObject.objects.update(sync_pending=False)
    write_csv(tmp_path / "hr.csv", [person("1", managerId="9"), person("9")])

    activity = run(system)

    by_id = csos(system)
    assert by_id["1"].attributes["managerId"] == [by_id["9"].pk]
    assert by_id["1"].unresolved_references == {}
    assert by_id["1"].sync_pending
    assert sorted(changes(activity)) == [("added", "9"), ("updated", "1")]
    assert activity.items.get(change_type="updated").details["attributes"] == ["managerId"]


def test_a_cso_the_run_did_not_touch_gets_its_reference_resolved_after_the_last_page(
    scripted,
):
    add_attribute(scripted.object_types.get(), "manager", "reference")
    ScriptedConnector.reset([page(obj("person", "u1", dn="uid=a,dc=x", manager="uid=b,dc=x"))])
    run(scripted)
    assert csos(scripted)["u1"].unresolved_references == {"manager": ["uid=b,dc=x"]}
    ScriptedConnector.reset([page(obj("person", "u2", dn="uid=b,dc=x"))])

    activity = run(scripted, "Delta Import")  # u1 is not part of this run

    by_id = csos(scripted)
    assert by_id["u1"].attributes["manager"] == [by_id["u2"].pk]
    assert by_id["u1"].unresolved_references == {}
    assert changes(activity) == [("added", "u2"), ("updated", "u1")]
    resolved = activity.items.get(change_type="updated")
    assert resolved.details == {
        "attributes": ["manager"],
        "changes": {"manager": {"old": ["uid=b,dc=x"], "new": [by_id["u2"].pk], "ref": "cso"}},
        "references_resolved": True,
    }
    assert resolved.message == "manager changed"


def test_a_reservation_never_fulfilled_leaves_the_reference_unresolved(tmp_path):
    rows = [person("1", managerId="2"), person("3"), person("2"), person("2")]  # 2 twice
    system = make_csv_system(
        tmp_path,
        rows,
        page_size=2,  # 1 refers to 2 before 2 is read; then both copies of 2 are rejected
        attributes={"managerId": {"type": "reference", "references": "person"}},
    )

    run(system)

    by_id = csos(system)
    assert set(by_id) == {"1", "3"}
    assert "managerId" not in by_id["1"].attributes
    assert by_id["1"].unresolved_references == {"managerId": ["2"]}


def test_dn_references_resolve_against_the_normalised_dn(scripted):
    add_attribute(scripted.object_types.get(), "manager", "reference")
    ScriptedConnector.reset(
        [
            page(obj("person", "u1", dn="uid=a,dc=x", manager="UID=b, DC=x")),
            page(obj("person", "u2", dn="uid=b,dc=x")),
        ]
    )

    run(scripted)

    by_id = csos(scripted)
    assert by_id["u1"].attributes["manager"] == [by_id["u2"].pk]


# --------------------------------------------------------------------------- delta, failures


def test_a_delta_delete_marks_the_cso_obsolete_and_ignores_unknown_ones(scripted):
    ScriptedConnector.reset([page(obj("person", "u1"), obj("person", "u2"))])
    run(scripted)
    ScriptedConnector.reset(
        [page(obj("person", "u1", change="delete"), obj("person", "u9", change="delete"))]
    )

    activity = run(scripted, "Delta Import")

    assert changes(activity) == [("deleted", "u1")]
    assert {k: c.status for k, c in csos(scripted).items()} == {"u1": "obsolete", "u2": "normal"}


def test_a_delta_import_passes_the_saved_watermark_and_saves_the_new_one(scripted):
    ConnectedSystem.objects.filter(pk=scripted.pk).update(persisted_connector_data={"usn": 5})
    ScriptedConnector.reset([page(obj("person", "u1"))], watermark={"usn": 9})

    run(scripted, "Delta Import")

    assert ScriptedConnector.requests == [{"types": ["person"], "delta": True, "data": {"usn": 5}}]
    scripted.refresh_from_db()
    assert scripted.persisted_connector_data == {"usn": 9}


def test_a_failure_on_page_two_writes_nothing_and_keeps_the_old_watermark(scripted):
    ConnectedSystem.objects.filter(pk=scripted.pk).update(persisted_connector_data={"usn": 5})
    ScriptedConnector.reset(
        [
            page(obj("person", "u1"), obj("person", "u2")),
            ConnectionFailed("ldap://dir: connection reset by peer"),
            page(obj("person", "u3")),
        ],
        watermark={"usn": 9},
    )

    activity = run(scripted, "Delta Import")

    assert activity.status == "failed"
    assert activity.message == "ldap://dir: connection reset by peer"
    assert set(csos(scripted)) == set()  # page one was staged, never written
    scripted.refresh_from_db()
    assert scripted.persisted_connector_data == {"usn": 5}
    assert changes(activity) == []
    assert errors(activity) == [("connector_error", "")]


def test_a_connector_without_delta_import_fails_a_delta_run(tmp_path):
    system = make_csv_system(tmp_path, people(1), profiles=("delta_import",))

    activity = run(system, "Delta Import")

    assert activity.status == "failed"
    assert "the csv connector has no delta import" in activity.message


def test_a_missing_file_fails_the_run_cleanly(tmp_path):
    system = make_csv_system(tmp_path, None)

    activity = run(system)

    assert activity.status == "failed"
    assert activity.message == f"{tmp_path / 'hr.csv'}: no such file"
    assert activity.finished_at is not None


def test_a_system_without_selected_object_type_fails(tmp_path):
    system = make_csv_system(tmp_path, people(1))
    system.object_types.update(selected=False)

    activity = run(system)

    assert activity.status == "failed"
    assert "no object type selected" in activity.message


def test_objects_with_unexpected_values_are_stored_as_json(scripted):
    when = dt.datetime(2024, 1, 31, 9, 30, tzinfo=dt.UTC)
    ScriptedConnector.reset(
        [ImportPage([ImportObject("person", {"id": ["u1"], "when": [when], "photo": [b"\x00"]})])]
    )

    run(scripted)

    assert csos(scripted)["u1"].attributes == {
        "id": ["u1"],
        "when": ["2024-01-31T09:30:00+00:00"],
        "photo": ["AA=="],
    }


# --------------------------------------------------------------------------- write-behind


@pytest.mark.django_db(transaction=True)
def test_pages_written_behind_the_reader_give_the_same_result(tmp_path):
    """Outside a transaction (as in jim run) pages are written in a background thread."""
    with PageWriter() as writer:
        assert writer.background
    rows = [person(str(n), managerId=str((n * 7) % 40 + 1)) for n in range(1, 41)]
    rows.append(person("3"))  # a duplicate in a later page
    system = make_csv_system(
        tmp_path,
        rows,
        page_size=6,
        attributes={"managerId": {"type": "reference", "references": "person"}},
        deletion_threshold="100%",
    )

    activity = run(system)

    by_id = csos(system)
    assert activity.status == "complete_with_errors"
    assert errors(activity) == [("duplicate_object", "3")]
    assert len(by_id) == 40
    assert activity.counts == {"added": 40}
    assert activity.items.filter(change_type="added").count() == 40
    for n in range(1, 41):
        manager = by_id[str((n * 7) % 40 + 1)]
        assert by_id[str(n)].attributes["managerId"] == [manager.pk]
        assert by_id[str(n)].unresolved_references == {}
    write_csv(tmp_path / "hr.csv", rows[:-1])

    again = run(system)

    assert (again.status, rpeis(again)) == ("complete", [])


@pytest.mark.django_db(transaction=True)
def test_a_run_that_fails_while_staging_writes_nothing_it_reserved_for(scripted):
    system = make_connected_system(
        "Payroll",
        "scripted",
        object_type="person",
        external_id="id",
        attributes={"manager": {"type": "reference"}},
    )
    ScriptedConnector.reset(
        [page(obj("person", "p1", manager="p9")), ConnectionFailed("payroll went away")]
    )

    activity = run(system)

    assert activity.status == "failed"
    assert csos(system) == {}  # p1 was staged with a reservation for p9, never written
