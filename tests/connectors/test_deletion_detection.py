"""Deletion detection of a full import, and the traps listed in design/pitfalls.md."""

from __future__ import annotations

import pytest

from connectors import registry
from connectors.choices import CsoStatus
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from tests.builders import (
    add_object_type,
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


def statuses(system: ConnectedSystem) -> dict[str, str]:
    return {key: cso.status for key, cso in csos(system).items()}


@pytest.fixture
def directory(monkeypatch):
    """A scripted directory with people read from ou=people and groups from ou=groups."""
    monkeypatch.setitem(
        registry.CONNECTORS, "scripted", "tests.connectors.scripted_connector:ScriptedConnector"
    )
    ScriptedConnector.reset()
    system = make_connected_system(
        "Directory",
        "scripted",
        object_type="person",
        external_id="id",
        secondary_external_id="dn",
        container="ou=people,dc=x",
        profiles=("full_import", "delta_import"),
        deletion_threshold="100%",
    )
    add_object_type(
        system, "group", external_id="id", secondary_external_id="dn", container="ou=groups,dc=x"
    )
    return system


def test_rows_removed_from_the_file_are_marked_obsolete(tmp_path):
    system = make_csv_system(tmp_path, people(4), deletion_threshold="50%")
    run(system)
    ConnectorSpaceObject.objects.update(sync_pending=False)
    write_csv(tmp_path / "hr.csv", [people(4)[0], people(4)[2]])

    activity = run(system)

    assert statuses(system) == {
        "1001": "normal",
        "1002": "obsolete",
        "1003": "normal",
        "1004": "obsolete",
    }
    assert changes(activity) == [("deleted", "1002"), ("deleted", "1004")]
    assert csos(system)["1002"].sync_pending  # sync will process the deletion
    assert not csos(system)["1001"].sync_pending
    assert rpeis(activity)[0].cs_object_id == csos(system)["1002"].pk
    assert activity.status == "complete"


def test_deletion_detection_works_on_csos_written_by_the_bulk_path(tmp_path):
    """Every CSO here was written by the import's bulk_create, none by save()."""
    system = make_csv_system(tmp_path, people(30, start=1), page_size=7, deletion_threshold="100%")
    run(system)
    assert (
        ConnectorSpaceObject.objects.filter(
            connected_system=system, object_type__name="person", status="normal"
        ).count()
        == 30
    )
    write_csv(tmp_path / "hr.csv", people(20, start=1))

    activity = run(system)

    assert sorted(int(k) for k, s in statuses(system).items() if s == "obsolete") == list(
        range(21, 31)
    )
    assert activity.counts == {"deleted": 10}


def test_an_empty_file_marks_nothing_obsolete(tmp_path):
    system = make_csv_system(tmp_path, people(5), deletion_threshold="100%")
    run(system)
    write_csv(tmp_path / "hr.csv", [], header=[*people(1)[0]])

    activity = run(system)

    assert set(statuses(system).values()) == {"normal"}
    assert activity.status == "complete"
    assert rpeis(activity) == []
    assert "zero-import safety" in activity.message


def test_more_deletions_than_the_default_threshold_stop_the_run(tmp_path):
    system = make_csv_system(tmp_path, people(20))
    run(system)
    write_csv(tmp_path / "hr.csv", people(15))

    activity = run(system)

    assert activity.status == "failed"
    assert activity.message.startswith(
        "HR: this full import would mark 5 of 20 objects obsolete, more than the threshold 2 "
        "(the default: 500 objects or 10% of 20, whichever is smaller); nothing was marked."
    )
    assert "run with --allow-deletions" in activity.message
    assert set(statuses(system).values()) == {"normal"}
    assert errors(activity) == [("deletion_threshold_exceeded", "")]


def test_an_explicit_threshold_replaces_the_default(tmp_path):
    system = make_csv_system(tmp_path, people(20), deletion_threshold="4")
    run(system)
    write_csv(tmp_path / "hr.csv", people(15))

    activity = run(system)

    assert activity.status == "failed"
    assert "more than the threshold 4 (deletion_threshold 4)" in activity.message


def test_allow_deletions_lets_the_run_through(tmp_path):
    system = make_csv_system(tmp_path, people(20))
    run(system)
    write_csv(tmp_path / "hr.csv", people(15))

    activity = run(system, allow_deletions=True)

    assert activity.status == "complete"
    assert list(statuses(system).values()).count("obsolete") == 5


def test_deletions_within_the_threshold_go_through(tmp_path):
    system = make_csv_system(tmp_path, people(20))
    run(system)
    write_csv(tmp_path / "hr.csv", people(18))

    activity = run(system)

    assert activity.counts == {"deleted": 2}


def test_numeric_external_ids_are_detected_as_deleted(tmp_path):
    system = make_csv_system(
        tmp_path, people(3), attributes={"employeeId": "integer"}, deletion_threshold="100%"
    )
    run(system)
    write_csv(tmp_path / "hr.csv", [person(" 1001", lastName="Smith1001"), person("1003")])

    activity = run(system)

    assert statuses(system) == {"1001": "normal", "1002": "obsolete", "1003": "normal"}
    assert changes(activity) == [("deleted", "1002")]


def test_a_pending_provisioning_cso_is_never_marked_obsolete(directory):
    person_type = directory.object_types.get(name="person")
    for external_id, dn in ((None, "uid=new,ou=people,dc=x"), ("u9", "uid=nine,ou=people,dc=x")):
        ConnectorSpaceObject.objects.create(
            connected_system=directory,
            object_type=person_type,
            external_id=external_id,
            secondary_external_id=dn,
            secondary_external_id_key=dn,
            status=CsoStatus.PENDING_PROVISIONING,
        )
    ScriptedConnector.reset([page(obj("person", "u1", dn="uid=one,ou=people,dc=x"))])

    activity = run(directory)

    assert sorted(ConnectorSpaceObject.objects.values_list("secondary_external_id", "status")) == [
        ("uid=new,ou=people,dc=x", "pending_provisioning"),
        ("uid=nine,ou=people,dc=x", "pending_provisioning"),
        ("uid=one,ou=people,dc=x", "normal"),
    ]
    assert changes(activity) == [("added", "u1")]


def test_a_confirming_import_after_provisioning_marks_nothing_obsolete(directory):
    """Seed 000 phase 5: the new entry is known by its DN only until this import."""
    person_type = directory.object_types.get(name="person")
    ScriptedConnector.reset([page(obj("person", "u1", dn="uid=one,ou=people,dc=x"))])
    run(directory)
    provisioned = ConnectorSpaceObject.objects.create(
        connected_system=directory,
        object_type=person_type,
        secondary_external_id="uid=two,ou=people,dc=x",
        secondary_external_id_key="uid=two,ou=people,dc=x",
        status=CsoStatus.PENDING_PROVISIONING,
    )
    ScriptedConnector.reset(
        [
            page(
                obj("person", "u1", dn="uid=one,ou=people,dc=x"),
                obj("person", "u2", dn="uid=two,ou=people,dc=x"),
            )
        ]
    )

    activity = run(directory)

    provisioned.refresh_from_db()
    assert (provisioned.status, provisioned.external_id) == ("normal", "u2")
    assert statuses(directory) == {"u1": "normal", "u2": "normal"}
    assert [c for c, _ in changes(activity)] == []


def test_only_the_containers_and_object_types_imported_are_compared(directory):
    ScriptedConnector.reset(
        [
            page(
                obj("person", "p1", dn="uid=p1,ou=people,dc=x"),
                obj("person", "p2", dn="uid=p2,ou=people,dc=x"),
                obj("group", "g1", dn="cn=g1,ou=groups,dc=x"),
            )
        ]
    )
    run(directory)
    person_type = directory.object_types.get(name="person")
    # exported into a container the import does not read
    ConnectorSpaceObject.objects.create(
        connected_system=directory,
        object_type=person_type,
        external_id="elsewhere",
        secondary_external_id="uid=x,ou=contractors,dc=x",
        secondary_external_id_key="uid=x,ou=contractors,dc=x",
    )
    directory.object_types.filter(name="group").update(selected=False)
    ScriptedConnector.reset([page(obj("person", "p1", dn="uid=p1,ou=people,dc=x"))])

    activity = run(directory)

    assert statuses(directory) == {
        "p1": "normal",
        "p2": "obsolete",
        "g1": "normal",  # groups were not imported this time
        "elsewhere": "normal",  # not in ou=people
    }
    assert changes(activity) == [("deleted", "p2")]


def test_a_delta_import_never_runs_deletion_detection(directory):
    ScriptedConnector.reset([page(obj("person", "p1"), obj("person", "p2"))])
    run(directory)
    ScriptedConnector.reset([page(obj("person", "p1", cn="changed"))])

    run(directory, "Delta Import")

    assert statuses(directory) == {"p1": "normal", "p2": "normal"}


def test_rows_rejected_as_errors_are_not_taken_for_deletions(tmp_path):
    system = make_csv_system(
        tmp_path, people(4), attributes={"age": "integer"}, deletion_threshold="100%"
    )
    run(system)
    rows = people(4)
    rows.append(dict(rows[1]))  # 1002 twice: both rejected
    rows[2]["age"] = "old"  # 1003 cannot be read, but its id can
    write_csv(tmp_path / "hr.csv", rows, header=[*people(1)[0], "age"])

    activity = run(system)

    assert set(statuses(system).values()) == {"normal"}
    assert sorted(errors(activity)) == [
        ("duplicate_object", "1002"),
        ("duplicate_object", "1002"),
        ("invalid_data", "1003"),
    ]


def test_an_unreadable_row_without_an_id_skips_deletion_detection(tmp_path):
    system = make_csv_system(
        tmp_path, people(3), header=["employeeId", "firstName"], deletion_threshold="100%"
    )
    run(system)
    (tmp_path / "hr.csv").write_text('employeeId,firstName\n1001,Ann\n"1002,Bob\n')

    activity = run(system)

    assert set(statuses(system).values()) == {"normal"}
    assert activity.status == "complete_with_errors"
    assert "1 object(s) could not be read, so deletion detection was skipped" in (activity.message)


def test_duplicate_attribute_names_on_every_row_mark_nothing_obsolete(tmp_path):
    system = make_csv_system(tmp_path, people(3), deletion_threshold="100%")
    run(system)
    (tmp_path / "hr.csv").write_text("employeeId,mail,mail\n1001,a,b\n1002,a,b\n")

    run(system)

    assert set(statuses(system).values()) == {"normal"}
