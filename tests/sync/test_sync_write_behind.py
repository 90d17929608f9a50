"""Pending exports and RPEIs written behind the next batch (jim_project.writer).

Outside a transaction, as in ``jim run`` and the workers, a batch's pending exports
and RPEIs are written by a background thread while the next batch is synced. These
tests run outside a transaction too, so that the background thread is really used,
and check that the result is the one the in-place writes give.
"""

from __future__ import annotations

import functools

import pytest

from connectors.models import Activity, ConnectorSpaceObject
from exports.models import PendingExport
from jim_project.writer import PageWriter
from metaverse.models import MetaverseObject
from metaverse.sync import processor
from metaverse.sync.batch import ExportsInFlight, SyncBatch
from metaverse.sync.keys import JoinIndex
from metaverse.sync.rules import RuleSet
from tests.sync.scenario import build_scenario, changes, rpeis

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
    # update may still be being written.
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


@pytest.mark.django_db
def test_a_batch_waits_for_the_exports_in_flight_it_reads_or_deletes():
    waited: list[str] = []
    in_flight = ExportsInFlight(lambda: waited.append("waited"))
    in_flight.started([11, 12])
    batch = SyncBatch(RuleSet.load(), JoinIndex(), activity_id=0, in_flight=in_flight)

    batch.load_exports([13])
    assert waited == []
    batch.load_exports([12, 14])
    assert waited == ["waited"]

    in_flight.started([15])
    batch.deleted_csos.add(99)
    batch.commit()
    assert waited == ["waited", "waited"]


@pytest.mark.django_db(transaction=True)
def test_when_a_batch_written_behind_fails_its_objects_are_synced_again(monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 2)
    scenario = build_scenario()
    for employee_id in PEOPLE:
        scenario.hr_row(employee_id, accountName=f"user{employee_id}")
    written = []

    def fail_the_second_batch(rows):
        written.append(rows)
        if len(written) == 2:
            raise RuntimeError("the database went away")

    monkeypatch.setattr(processor, "write_rpeis", fail_the_second_batch)

    with pytest.raises(RuntimeError, match="the database went away"):
        scenario.sync()  # the runner records it as the activity's failure

    # The objects of the batch whose exports were lost, and of the one after it, wait
    # for the next sync; nothing of a batch is half written.
    pending = set(
        ConnectorSpaceObject.objects.filter(
            connected_system=scenario.hr, sync_pending=True
        ).values_list("external_id", flat=True)
    )
    assert {"3", "4"} <= pending
    monkeypatch.undo()
    monkeypatch.setattr(processor, "BATCH_SIZE", 2)
    Activity.objects.filter(status="in_progress").update(status="failed")

    scenario.sync(delta=True)

    assert PendingExport.objects.filter(change_type="create").count() == 5
    assert not ConnectorSpaceObject.objects.filter(sync_pending=True).exists()
