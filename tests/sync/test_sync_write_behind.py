"""RPEIs written behind the next batch (core.writer); pending exports not.

Outside a transaction, as in ``jim run`` and the workers, a batch's RPEIs are written
by a background thread while the next batch is synced; its pending exports are
committed with its objects. These tests run outside a transaction too, so that the
background thread is really used, and check that the result is the one the in-place
writes give, and what a run that stops leaves for the next sync.
"""

from __future__ import annotations

import functools

import pytest

from connectors.models import Activity, ConnectorSpaceObject
from core.writer import PageWriter
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from metaverse.sync import processor
from tests.sync.scenario import build_scenario, changes, rpeis

processor_write_rpeis = processor.write_rpeis

PEOPLE = ("1", "2", "3", "4", "5")


@pytest.fixture(params=["behind", "in place"])
def writes(request, monkeypatch):
    """Sync batches of two, their exports written behind or in place; records which."""
    used: list[bool] = []

    class Recording(PageWriter):
        def __init__(self, **options):
            if request.param == "in place":
                options["background"] = False
            super().__init__(**options)
            used.append(self.background)

    monkeypatch.setattr(processor, "BATCH_SIZE", 2)
    monkeypatch.setattr(processor, "PageWriter", Recording)
    return functools.partial(_check_writer, used, request.param == "behind")


def _check_writer(used: list[bool], behind: bool) -> None:
    assert used and all(u == behind for u in used)


@pytest.mark.django_db(transaction=True)
def test_joiners_movers_and_leavers_across_batches(writes):
    scenario = build_scenario()
    boss = scenario.hr_row("5", accountName="boss")
    for employee_id in PEOPLE[:-1]:
        scenario.hr_row(employee_id, accountName=f"user{employee_id}", managerId=[boss.pk])

    joined = scenario.sync()

    writes()
    assert joined.counts == {"projected": 5}
    assert len(rpeis(joined)) == 5
    for employee_id in PEOPLE[:-1]:
        pe = scenario.export_of(employee_id)
        assert pe.change_type == "create"
        assert changes(pe)[("manager", "update")] == [scenario.dir_cso_of("5").pk]
        assert changes(pe)[("uid", "update")] == [f"user{employee_id}"]

    # A mover in the first batch, a leaver (the HR record gone) in the second: its
    # MVO is deleted and its create, never sent, cancelled while the first batch's
    # RPEIs may still be being written (the second batch waits for them first).
    scenario.update_hr("1", lastName="Jones")
    scenario.obsolete_hr("3")

    moved = scenario.sync(delta=True)

    writes()
    assert {i.external_id: i.change_type for i in rpeis(moved)} == {
        "1": "attribute_flow",
        "3": "disconnected",
    }
    assert changes(scenario.export_of("1"))[("sn", "update")] == ["Jones"]
    assert not ConnectorSpaceObject.objects.filter(external_id="3").exists()
    assert MetaverseObject.objects.count() == 4
    assert PendingExport.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_when_the_rpeis_of_a_batch_fail_only_rpeis_are_lost(monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 2)
    scenario = build_scenario()
    for employee_id in PEOPLE:
        scenario.hr_row(employee_id, accountName=f"user{employee_id}")
    written = []

    def fail_the_second_batch(rows):
        written.append(rows)
        if len(written) == 2:
            raise RuntimeError("the database went away")
        processor_write_rpeis(rows)

    monkeypatch.setattr(processor, "write_rpeis", fail_the_second_batch)

    with pytest.raises(RuntimeError, match="the database went away"):
        scenario.sync()  # the runner records it as the activity's failure

    # Every batch the run committed has its pending exports, and no mark left: the
    # batches are whole whatever became of their record.
    assert PendingExport.objects.filter(change_type="create").count() == 5
    assert not ConnectorSpaceObject.objects.filter(sync_pending=True).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("marked", [True, False], ids=["imported", "not marked"])
def test_a_run_that_dies_before_its_last_pass_leaves_that_work_marked(monkeypatch, marked):
    """A manager cycle: one reference waits for the last pass. The run dies before it;
    the CSO whose work waited is marked (whether an import had marked it or not), and
    a delta sync finishes it."""
    monkeypatch.setattr(processor, "BATCH_SIZE", 1)
    scenario = build_scenario()
    one = scenario.hr_row("1", accountName="one")
    two = scenario.hr_row("2", accountName="two", managerId=[one.pk])
    scenario.update_hr("1", managerId=[two.pk])
    if not marked:  # a full sync for another reason than an import (a rule changed)
        ConnectorSpaceObject.objects.update(sync_pending=False)

    def die(self, mvo_ids):
        raise RuntimeError("killed before the last pass")

    monkeypatch.setattr(processor.SyncRun, "_finish_deferred_batch", die)
    with pytest.raises(RuntimeError, match="killed before the last pass"):
        scenario.sync()
    marked = ConnectorSpaceObject.objects.filter(sync_pending=True)
    assert marked.count() == 1  # the other one's work is done and committed
    monkeypatch.undo()
    Activity.objects.filter(status="in_progress").update(status="failed")

    finished = scenario.sync(delta=True)

    assert finished.objects_processed == 1
    for employee_id, manager in (("1", "2"), ("2", "1")):
        pe = scenario.export_of(employee_id)
        assert pe.change_type == "create"
        assert changes(pe)[("manager", "update")] == [scenario.dir_cso_of(manager).pk]
    assert PendingExport.objects.count() == 2
    assert not ConnectorSpaceObject.objects.filter(sync_pending=True).exists()
