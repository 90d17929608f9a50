"""A sync of one system and an export of another at the same time (issue 10): the sync
never edits a pending export the export run is sending, nor overwrites its outcome;
the change it could not stage waits on the source CSO's sync mark for the next sync.

Deterministic, ORM-level: the other run is driven at the exact point of the race — a
sync from inside the memory connector's export call, or an export from inside a sync
batch between loading its pending exports and committing — on the same connection.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from exports.models import PendingExport
from metaverse.models import MetaverseObject
from metaverse.sync.processor import SyncRun
from tests.exports.exporting import (
    DN,
    assert_converged,
    confirming_import,
    export,
    hr_marked,
    sent_values,
)
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario

pytestmark = pytest.mark.django_db


def during_export(monkeypatch, action) -> None:
    """Run ``action`` once, inside the next export call, before the changes are sent."""
    original = MemoryConnector.export
    done: list[bool] = []

    def export_and_act(self, changes):
        if not done:
            done.append(True)
            action()
        return original(self, changes)

    monkeypatch.setattr(MemoryConnector, "export", export_and_act)


def during_sync_batch(monkeypatch, action) -> None:
    """Run ``action`` once, inside the next sync batch: after it loaded the pending
    exports and staged its changes, before it commits them."""
    original = SyncRun._evaluate_exports
    done: list[bool] = []

    def evaluate_and_act(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if not done:
            done.append(True)
            action()

    monkeypatch.setattr(SyncRun, "_evaluate_exports", evaluate_and_act)


def _provisioned(scenario: Scenario) -> None:
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    export(scenario)
    confirming_import(scenario)
    assert not PendingExport.objects.exists()


@pytest.mark.parametrize("delta", [False, True])
def test_a_sync_during_the_export_leaves_the_export_alone_and_the_next_sync_stages(
    scenario, monkeypatch, delta
):
    _provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)

    def sync_a_new_change() -> None:
        scenario.update_hr("1001", lastName="Brown")
        scenario.sync(delta=delta)

    during_export(monkeypatch, sync_a_new_change)
    export(scenario)

    pe = scenario.export_of("1001")
    assert pe.status == "exported"  # what the run sent, and only that
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {
        "exported_pending_confirmation"
    }
    assert MemoryConnector.directory[DN]["attributes"]["sn"] == ["Jones"]
    assert hr_marked(scenario)  # the change waits for the next sync

    scenario.sync(delta=True)
    export(scenario)
    confirming_import(scenario)

    assert_converged(scenario, "Brown")
    assert sent_values("sn") == [["Smith"], ["Jones"], ["Brown"]]


def test_an_export_between_a_sync_batch_loading_and_committing_keeps_its_outcome(
    scenario, monkeypatch
):
    _provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    scenario.update_hr("1001", lastName="Brown")

    during_sync_batch(monkeypatch, lambda: export(scenario))
    scenario.sync(delta=True)  # loaded the Jones update, staged Brown; Jones sent meanwhile

    pe = scenario.export_of("1001")
    assert pe.status == "exported"
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {
        "exported_pending_confirmation"
    }
    assert hr_marked(scenario)

    scenario.sync(delta=True)
    export(scenario)
    confirming_import(scenario)

    assert_converged(scenario, "Brown")
    assert sent_values("sn") == [["Smith"], ["Jones"], ["Brown"]]


def test_a_create_sent_while_a_sync_edits_it_is_not_sent_again(scenario, monkeypatch):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    scenario.update_hr("1001", lastName="Brown")

    during_sync_batch(monkeypatch, lambda: export(scenario))
    scenario.sync(delta=True)  # staged Brown into the create the export sent meanwhile

    pe = scenario.export_of("1001")
    assert (pe.change_type, pe.status) == ("create", "exported")
    assert hr_marked(scenario)

    scenario.sync(delta=True)
    pe = scenario.export_of("1001")
    assert (pe.change_type, pe.status) == ("update", "pending")
    export(scenario)
    confirming_import(scenario)

    assert_converged(scenario, "Brown")
    assert sent_values("sn") == [["Smith"], ["Brown"]]


# -- the export processor and evaluation, found on the way --------------------------


def test_an_update_waiting_for_a_create_of_the_same_run_is_sent_in_that_run(scenario):
    scenario.hr_row("2", accountName="report")
    scenario.sync()
    export(scenario)
    confirming_import(scenario)
    manager = scenario.hr_row("1", accountName="boss")
    scenario.update_hr("2", managerId=[manager.pk])
    scenario.sync(delta=True)
    assert scenario.export_of("2").change_type == "update"
    MemoryConnector.calls.clear()

    activity = export(scenario)

    assert activity.status == "complete"
    boss = "uid=boss,ou=people,dc=example,dc=org"
    assert boss in MemoryConnector.directory
    entry = MemoryConnector.directory["uid=report,ou=people,dc=example,dc=org"]
    assert entry["attributes"]["manager"] == [boss]
    assert scenario.export_of("2").status == "exported"
    create, update = (change for call in MemoryConnector.calls for change in call)
    assert (create.change_type, create.dn) == ("create", boss)
    assert [(c.attribute, c.values) for c in update.attribute_changes] == [("manager", [boss])]


def test_a_failed_export_staged_again_is_pending_change_by_change(failing):
    scenario = failing
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    export(scenario)
    confirming_import(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    MemoryConnector.fail_dns[DN] = "constraintViolation"
    export(scenario)
    pe = scenario.export_of("1001")
    assert pe.status == "failed"
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {"failed"}

    scenario.update_hr("1001", firstName="Jim")
    scenario.sync(delta=True)

    pe.refresh_from_db()
    assert pe.status == "pending"
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {"pending"}
    MemoryConnector.fail_dns.clear()
    export(scenario)
    confirming_import(scenario)
    attributes = MemoryConnector.directory[DN]["attributes"]
    assert (attributes["cn"], attributes["sn"]) == (["Jim Jones"], ["Jones"])
    assert not PendingExport.objects.exists()


def _sending(pe: PendingExport) -> None:
    """An export run claims the pending export (and is sending it)."""
    PendingExport.objects.filter(pk=pe.pk).update(status="executing")


def _sent(pe: PendingExport) -> None:
    """The export run records its outcome."""
    PendingExport.objects.filter(pk=pe.pk).update(status="exported")


def test_a_leaver_whose_export_is_being_sent_is_deprovisioned_by_the_next_sync(scenario):
    _provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    target = scenario.dir_cso_of("1001")
    pe = scenario.export_of("1001")
    _sending(pe)
    scenario.obsolete_hr("1001")

    scenario.sync(delta=True)  # the MVO is to be deleted; its target's export is being sent

    mvo = MetaverseObject.objects.get()  # kept, not deleted with an orphan in the target
    assert mvo.status == "deletion_scheduled" and mvo.deletion_due_at <= timezone.now()
    assert PendingExport.objects.get(pk=pe.pk).status == "executing"  # left to its run

    _sent(pe)
    scenario.sync(delta=True)

    assert not MetaverseObject.objects.exists()
    assert PendingExport.objects.get(cs_object=target).change_type == "delete"


def test_housekeeping_keeps_an_mvo_whose_export_is_being_sent_until_the_next_sync(scenario):
    scenario.person.deletion_grace_period_days = 7
    scenario.person.save()
    _provisioned(scenario)
    target = scenario.dir_cso_of("1001")
    scenario.obsolete_hr("1001")
    scenario.sync(delta=True)
    MetaverseObject.objects.update(deletion_due_at=timezone.now() - dt.timedelta(seconds=1))
    PendingExport.objects.create(  # an export run is sending an update of the person
        connected_system=scenario.directory,
        cs_object=target,
        metaverse_object=MetaverseObject.objects.get(),
        change_type="update",
        status="executing",
    )

    scenario.sync(delta=True)  # housekeeping: the grace period has ended

    assert MetaverseObject.objects.get().status == "deletion_scheduled"
    pe = PendingExport.objects.get(cs_object=target)
    assert pe.status == "executing" and pe.change_type == "update"

    _sent(pe)
    scenario.sync(delta=True)

    assert not MetaverseObject.objects.exists()
    assert PendingExport.objects.get(cs_object=target).change_type == "delete"
