"""Value history is written by the processors that change values: the import (CSOs),
the sync and the manual actions (MVOs), one row per object per change, with the values
before and after and the run (or person) behind it, in the change's own transaction."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from connectors import importer
from connectors.models import RunProfileExecutionItem
from history.models import ValueChange
from metaverse.sync import batch as sync_batch
from runs import mvo_actions
from tests.builders import csos, make_csv_system, person, run, write_csv
from tests.sync.scenario import build_scenario, provisioned

pytestmark = pytest.mark.django_db


def history(kind: str, object_id: int) -> list[ValueChange]:
    return list(ValueChange.objects.filter(object_kind=kind, object_id=object_id).order_by("pk"))


# -- CSOs: the import ------------------------------------------------------------------


def test_an_import_records_a_new_cso_s_values_then_each_change_with_its_run(tmp_path):
    system = make_csv_system(tmp_path, [person("1", lastName="Jones", title="Clerk")])
    first = run(system)
    write_csv(tmp_path / "hr.csv", [person("1", lastName="Jones-Okafor", title="Clerk")])
    second = run(system)

    created, updated = history("cso", csos(system)["1"].pk)

    assert created.event == "created" and created.activity_id == first.pk
    assert created.changes["lastName"] == {"old": [], "new": ["Jones"]}
    assert created.run == "HR: Full Import" and created.person == "tests"
    assert updated.event == "updated" and updated.activity_id == second.pk
    assert updated.changes == {"lastName": {"old": ["Jones"], "new": ["Jones-Okafor"]}}
    assert updated.at >= created.at


def test_an_import_that_changes_nothing_records_nothing(tmp_path):
    system = make_csv_system(tmp_path, [person("1")])
    run(system)
    run(system)

    assert [c.event for c in history("cso", csos(system)["1"].pk)] == ["created"]


def test_a_cso_gone_from_the_source_is_recorded_deleted(tmp_path):
    system = make_csv_system(tmp_path, [person("1"), person("2")], deletion_threshold="100%")
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1")])
    run(system, allow_deletions=True)

    assert [c.event for c in history("cso", csos(system)["2"].pk)] == ["created", "deleted"]


def test_secrets_are_masked_in_history(tmp_path):
    system = make_csv_system(tmp_path, [person("1", userPassword="s3cret")])
    run(system)
    write_csv(tmp_path / "hr.csv", [person("1", userPassword="n3w")])
    run(system)

    stored = str(ValueChange.objects.values_list("changes", flat=True)[::1])
    assert "s3cret" not in stored and "n3w" not in stored


def test_a_page_that_fails_to_write_leaves_no_history(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, [person("1")])
    real = importer.insert_rows

    def failing(model, rows, **kwargs):
        if model is RunProfileExecutionItem:  # after the CSOs and their history
            raise RuntimeError("the disk is full")
        return real(model, rows, **kwargs)

    monkeypatch.setattr(importer, "insert_rows", failing)
    activity = run(system)

    assert activity.status == "failed"
    assert not csos(system) and not ValueChange.objects.exists()


# -- MVOs: the sync ----------------------------------------------------------------------


@pytest.fixture
def scenario():
    return build_scenario()


def test_a_projection_records_the_mvo_created_with_its_values_and_rules(scenario):
    scenario.hr_row("1001", lastName="Smith")
    activity = scenario.sync()

    [created] = history("mvo", scenario.mvo_of("1001").pk)

    assert created.event == "created" and created.activity_id == activity.pk
    assert created.changes["sn"] == {"old": [], "new": ["Smith"], "rule": "HR people in"}
    assert created.run == "HR: full_sync"


def test_a_flow_records_old_and_new_values_once_per_mvo(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    activity = scenario.sync(delta=True)

    _, updated = history("mvo", scenario.mvo_of("1001").pk)

    assert updated.event == "updated" and updated.activity_id == activity.pk
    assert updated.changes == {
        "displayName": {"old": ["John Smith"], "new": ["John Jones"], "rule": "HR people in"},
        "sn": {"old": ["Smith"], "new": ["Jones"], "rule": "HR people in"},
    }


def test_a_sync_that_changes_no_value_records_nothing(scenario):
    provisioned(scenario)
    mvo = scenario.mvo_of("1001")
    scenario.update_hr("1001")
    scenario.sync(delta=True)

    assert [c.event for c in history("mvo", mvo.pk)] == ["created"]


def test_a_batch_that_fails_writes_no_history(scenario, monkeypatch):
    provisioned(scenario)
    mvo = scenario.mvo_of("1001")
    scenario.update_hr("1001", lastName="Jones")
    real = sync_batch.SyncBatch._write_history

    def then_fail(self):
        real(self)
        raise RuntimeError("the connection dropped")

    monkeypatch.setattr(sync_batch.SyncBatch, "_write_history", then_fail)
    with pytest.raises(RuntimeError):
        scenario.sync(delta=True)

    assert [c.event for c in history("mvo", mvo.pk)] == ["created"]
    mvo.refresh_from_db()
    assert mvo.attributes["sn"] == ["Smith"]


# -- MVOs: manual actions, with the person -----------------------------------------------


@pytest.fixture
def admin():
    return User.objects.create_user("ada.admin", is_staff=True, is_superuser=True)


def test_delete_now_records_the_mvo_deleted_with_its_values_and_the_person(scenario, admin):
    provisioned(scenario)
    mvo = scenario.mvo_of("1001")

    activity = mvo_actions.delete_now(mvo, admin, "left")

    assert activity.status == "complete", activity.message
    deleted = history("mvo", mvo.pk)[-1]
    assert deleted.event == "deleted" and deleted.person == "ada.admin"
    assert deleted.activity_id == activity.pk and deleted.run.startswith("HR: Manual: delete")
    assert deleted.changes["sn"] == {"old": ["Smith"], "new": []}


def test_a_disconnect_by_hand_records_the_recalled_values_and_the_person(scenario, admin):
    provisioned(scenario)
    scenario.person.deletion_rule = "manual"
    scenario.person.save()
    mvo = scenario.mvo_of("1001")
    hr_cso = mvo.cs_objects.get(connected_system=scenario.hr)

    activity = mvo_actions.disconnect(mvo, hr_cso, admin)

    assert activity.status == "complete", activity.message
    recalled = history("mvo", mvo.pk)[-1]
    assert recalled.event == "updated" and recalled.person == "ada.admin"
    assert recalled.changes["sn"] == {"old": ["Smith"], "new": []}
