"""An import is screened before it writes anything: a source that lost an attribute and
a change to one attribute on more objects than the change threshold are refused, and
the connector space is left as it was (real CSV files, real PostgreSQL)."""

from __future__ import annotations

import pytest

from connectors.models import ConnectedSystem, ConnectedSystemAttribute
from tests.builders import csos, errors, make_csv_system, people, rpeis, run, write_csv
from tests.connectors.scripted_connector import ScriptedConnector, obj, page

pytestmark = pytest.mark.django_db

HEADER = ["employeeId", "firstName", "lastName", "department"]


def documents(system: ConnectedSystem) -> dict[str, dict]:
    return {key: cso.attributes for key, cso in csos(system).items()}


def hr(tmp_path, count: int = 20, **options) -> ConnectedSystem:
    system = make_csv_system(tmp_path, people(count), **options)
    assert run(system).status == "complete"
    return system


# --------------------------------------------------------------------- lost columns


def test_a_file_that_lost_a_column_is_refused_and_changes_nothing(tmp_path):
    system = hr(tmp_path)
    before = documents(system)
    write_csv(tmp_path / "hr.csv", people(20), header=["employeeId", "firstName", "department"])

    activity = run(system)

    assert activity.status == "failed"
    assert "the source has no column 'lastName' any more" in activity.message
    assert "20 person object(s) have values for it" in activity.message
    assert "nothing was written" in activity.message
    assert errors(activity) == [("attribute_lost", "")]
    assert documents(system) == before


def test_a_column_marked_optional_may_go_within_the_change_threshold(tmp_path):
    system = hr(tmp_path)
    ConnectedSystemAttribute.objects.filter(
        object_type__connected_system=system, name="department"
    ).update(optional=True)
    write_csv(tmp_path / "hr.csv", people(20), header=["employeeId", "firstName", "lastName"])

    refused = run(system)  # not a lost column, but still a change to every object
    ConnectedSystem.objects.filter(pk=system.pk).update(change_threshold="100%")
    activity = run(system)

    assert errors(refused) == [("change_threshold_exceeded", "")]
    assert activity.status == "complete", activity.message
    assert all("department" not in doc for doc in documents(system).values())


def test_a_lost_column_goes_through_when_the_run_allows_changes(tmp_path):
    system = hr(tmp_path)
    write_csv(tmp_path / "hr.csv", people(20), header=["employeeId", "firstName", "department"])

    activity = run(system, allow_changes=True)

    assert activity.status == "complete", activity.message
    assert all("lastName" not in doc for doc in documents(system).values())


def test_a_column_no_object_ever_filled_may_go(tmp_path):
    system = hr(tmp_path, count=3)
    write_csv(tmp_path / "hr.csv", people(3), header=[*HEADER, "mobile"])  # all blank
    assert run(system).status == "complete"
    write_csv(tmp_path / "hr.csv", people(3), header=HEADER)

    assert run(system).status == "complete"


def test_the_first_import_of_a_file_refuses_nothing(tmp_path):
    system = make_csv_system(tmp_path, people(30), header=["employeeId", "firstName"])

    assert run(system).status == "complete"


# --------------------------------------------------------------------- change threshold


def test_one_attribute_changed_on_every_object_is_refused(tmp_path):
    system = hr(tmp_path)
    before = documents(system)
    write_csv(tmp_path / "hr.csv", people(20, department="Nowhere"), header=HEADER)

    activity = run(system)

    assert activity.status == "failed"
    message = activity.message
    assert "this import would change department on 20 of 20 person objects" in message
    assert "more than the limit 10 (the default: 500 objects or 10% of 20, whichever" in message
    assert "for example 1001 ('Sales' → 'Nowhere'), 1002 (" in message
    assert "Nothing was written" in message and "--allow-changes" in message
    assert errors(activity) == [("change_threshold_exceeded", "")]
    assert [i.change_type for i in rpeis(activity) if not i.error_type] == []
    assert documents(system) == before


def test_blanking_one_attribute_everywhere_is_a_change_too(tmp_path):
    system = hr(tmp_path)
    write_csv(tmp_path / "hr.csv", people(20, department=""), header=HEADER)

    activity = run(system)

    assert activity.status == "failed"
    assert "department on 20 of 20 person objects" in activity.message
    assert "'Sales' → none" in activity.message


def test_changes_within_the_threshold_go_through(tmp_path):
    system = hr(tmp_path)
    rows = people(20)
    for row in rows[:10]:  # the default allows 10 of 20 (10%, but at least 10)
        row["department"] = "Research"

    activity = run_with(tmp_path, system, rows)

    assert activity.status == "complete", activity.message
    assert activity.counts == {"updated": 10}


def test_an_explicit_threshold_replaces_the_default(tmp_path):
    system = hr(tmp_path)
    ConnectedSystem.objects.filter(pk=system.pk).update(change_threshold="100%")

    activity = run_with(tmp_path, system, people(20, department="Nowhere"))

    assert activity.status == "complete", activity.message
    assert activity.counts == {"updated": 20}


def test_changes_over_the_threshold_go_through_when_the_run_allows_changes(tmp_path):
    system = hr(tmp_path)
    write_csv(tmp_path / "hr.csv", people(20, department="Nowhere"), header=HEADER)

    activity = run(system, allow_changes=True)

    assert activity.status == "complete", activity.message
    assert {doc["department"][0] for doc in documents(system).values()} == {"Nowhere"}


def test_new_objects_are_not_changes(tmp_path):
    system = hr(tmp_path, count=5)

    activity = run_with(tmp_path, system, people(100))

    assert activity.status == "complete", activity.message
    assert activity.counts == {"added": 95}


def run_with(tmp_path, system: ConnectedSystem, rows: list[dict]):
    write_csv(tmp_path / "hr.csv", rows, header=HEADER)
    return run(system)


# --------------------------------------------------- connectors that cannot tell columns


def test_an_attribute_every_object_had_and_none_has_now_is_refused(scripted):
    ScriptedConnector.reset([page(*(obj("person", f"u{n}", mail=f"u{n}@x") for n in range(3)))])
    assert run(scripted).status == "complete"
    ScriptedConnector.reset([page(*(obj("person", f"u{n}") for n in range(3)))])

    activity = run(scripted)

    assert activity.status == "failed"
    assert "no person object has 'mail' any more, though all 3 had it" in activity.message
    assert errors(activity) == [("attribute_lost", "")]
    assert {cso.attributes["mail"][0] for cso in csos(scripted).values()} == {
        "u0@x",
        "u1@x",
        "u2@x",
    }


def test_an_attribute_some_objects_keep_is_not_lost(scripted):
    ScriptedConnector.reset([page(*(obj("person", f"u{n}", mail=f"u{n}@x") for n in range(3)))])
    run(scripted)
    ScriptedConnector.reset([page(obj("person", "u0", mail="u0@x"), obj("person", "u1"))])

    assert run(scripted).status == "complete"


def test_a_delta_import_of_a_few_objects_never_looks_lost(scripted):
    ScriptedConnector.reset([page(*(obj("person", f"u{n}", mail=f"u{n}@x") for n in range(3)))])
    run(scripted)
    ScriptedConnector.reset([page(obj("person", "u0"), obj("person", "u1"))])

    assert run(scripted, "Delta Import").status == "complete"


def test_a_delta_import_over_the_change_threshold_is_refused(scripted):
    ScriptedConnector.reset([page(*(obj("person", f"u{n}", title="a") for n in range(30)))])
    run(scripted)
    ScriptedConnector.reset([page(*(obj("person", f"u{n}", title="b") for n in range(30)))])

    activity = run(scripted, "Delta Import")

    assert activity.status == "failed"
    assert "title on 30 of 30 person objects, more than the limit 10" in activity.message
    assert {cso.attributes["title"][0] for cso in csos(scripted).values()} == {"a"}
