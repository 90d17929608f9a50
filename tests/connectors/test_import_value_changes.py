"""An import's RPEIs record the values that changed, old and new, and say what changed.

Beside the names (``details["attributes"]``) an updated CSO's RPEI records each
changed attribute's values (``details["changes"]``, :mod:`connectors.value_changes`):
single-valued old → new, multi-valued as values added and removed, references as CSO
ids, long lists and long text bounded, secrets masked.
"""

from __future__ import annotations

import pytest

from audit.recording import MASK
from connectors.value_changes import MAX_TEXT, MAX_VALUES, changes_message, value_changes
from tests.builders import csos, make_csv_system, person, rpeis, run, write_csv

pytestmark = pytest.mark.django_db


def updated(activity):
    return [item for item in rpeis(activity) if item.change_type == "updated"]


def test_a_changed_person_records_old_and_new_values_and_a_message(tmp_path):
    system = make_csv_system(tmp_path, [person("1", lastName="Jones", title="Clerk")])
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", lastName="Jones-Okafor", title="Manager")])

    [item] = updated(run(system))

    assert item.details["attributes"] == ["lastName", "title"]
    assert item.details["changes"] == {
        "lastName": {"old": ["Jones"], "new": ["Jones-Okafor"]},
        "title": {"old": ["Clerk"], "new": ["Manager"]},
    }
    assert item.message == "lastName, title changed"


def test_a_value_gained_and_a_value_lost_record_the_empty_side(tmp_path):
    system = make_csv_system(tmp_path, [person("1", title=""), person("2", title="Clerk")])
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", title="Clerk"), person("2", title="")])

    first, second = updated(run(system))

    assert first.details["changes"] == {"title": {"old": [], "new": ["Clerk"]}}
    assert second.details["changes"] == {"title": {"old": ["Clerk"], "new": []}}


def test_a_multi_valued_change_records_the_values_added_and_removed(tmp_path):
    attributes = {"groups": {"multivalued": True}}
    system = make_csv_system(tmp_path, [person("1", groups="a;b;c")], attributes=attributes)
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", groups="c;b;d")])

    [item] = updated(run(system))

    assert item.details["changes"] == {
        "groups": {"multivalued": True, "added": ["d"], "removed": ["a"]}
    }


def test_a_changed_reference_records_the_referenced_csos_ids(tmp_path):
    attributes = {"managerId": {"type": "reference", "references": "person"}}
    rows = [person("1", managerId="2"), person("2"), person("3")]
    system = make_csv_system(tmp_path, rows, attributes=attributes)
    run(system)
    rows[0] = person("1", managerId="3")
    write_csv(tmp_path / "hr.csv", rows)

    [item] = updated(run(system))

    by_id = csos(system)
    assert item.details["changes"] == {
        "managerId": {"old": [by_id["2"].pk], "new": [by_id["3"].pk], "ref": "cso"}
    }


def test_a_reference_not_resolved_is_recorded_as_the_system_gave_it(tmp_path):
    attributes = {"managerId": {"type": "reference", "references": "person"}}
    system = make_csv_system(
        tmp_path, [person("1", managerId="2"), person("2")], attributes=attributes
    )
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", managerId="9"), person("2")])

    [item] = updated(run(system))

    assert item.details["changes"] == {
        "managerId": {"old": [csos(system)["2"].pk], "new": ["9"], "ref": "cso"}
    }


def test_long_lists_and_long_text_are_bounded(tmp_path):
    attributes = {"groups": {"multivalued": True}}
    system = make_csv_system(
        tmp_path, [person("1", groups="g0", note="short")], attributes=attributes
    )
    run(system)
    groups = ";".join(f"g{n}" for n in range(MAX_VALUES + 15))
    write_csv(tmp_path / "hr.csv", [person("1", groups=groups, note="x" * 5000)])

    [item] = updated(run(system))

    recorded = item.details["changes"]
    assert len(recorded["groups"]["added"]) == MAX_VALUES
    assert recorded["groups"]["more_added"] == 15 - 1  # g0 was there already
    assert recorded["groups"]["removed"] == []
    note = recorded["note"]["new"][0]
    assert len(note) == MAX_TEXT
    assert note.endswith("…")
    assert recorded["note"]["old"] == ["short"]


def test_a_password_is_never_recorded(tmp_path):
    system = make_csv_system(tmp_path, [person("1", userPassword="old-secret", unicodePwd="a")])
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", userPassword="new-secret", unicodePwd="")])

    [item] = updated(run(system))

    assert item.details["changes"] == {
        "unicodePwd": {"old": [MASK], "new": []},
        "userPassword": {"old": [MASK], "new": [MASK]},
    }
    assert "secret" not in str(item.details)


def test_many_changed_attributes_make_a_short_message():
    names = ["department", "firstName", "lastName", "title", "mail"]

    assert changes_message(names) == (
        "5 attributes changed: department, firstName, lastName and 2 more"
    )
    assert changes_message(["lastName"]) == "lastName changed"
    assert changes_message([]) == ""


def test_a_multi_valued_change_is_recorded_once_per_value_whatever_its_type():
    recorded = value_changes(["flags"], {"flags": [1, True, "1"]}, {"flags": [1, "1"]})

    assert recorded == {"flags": {"multivalued": True, "added": [], "removed": [True]}}
