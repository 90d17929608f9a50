"""The pending-export lifecycle across runs (issue 10, item 9), ORM-level: a sync
between an export and its confirming import leaves the export as it is; an export
whose changes were all sent already is ``exported``, not ``pending`` for ever.
(End to end against slapd: tests/scenarios/test_run_orders.py.)
"""

from __future__ import annotations

import pytest

from exports.models import PendingExport
from tests.exports.exporting import export
from tests.exports.memory_connector import MemoryConnector

pytestmark = pytest.mark.django_db


def _exported(scenario) -> PendingExport:
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    export(scenario)
    pe = scenario.export_of("1001")
    assert (pe.change_type, pe.status) == ("create", "exported")
    return pe


def _row_states(pe: PendingExport) -> set[str]:
    return set(pe.attribute_changes.values_list("status", flat=True))


@pytest.mark.parametrize("delta", [False, True])
def test_a_sync_before_the_confirming_import_leaves_the_export_alone(scenario, delta):
    pe = _exported(scenario)
    scenario.update_hr("1001")  # marked for the delta sync, nothing changed

    for _ in range(2):
        scenario.sync(delta=delta)
        scenario.sync(scenario.directory, delta=delta)

    pe.refresh_from_db()
    assert (pe.change_type, pe.status) == ("create", "exported")
    assert _row_states(pe) == {"exported_pending_confirmation"}


def test_a_new_change_after_the_export_sends_only_itself(scenario):
    pe = _exported(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    pe.refresh_from_db()
    assert (pe.change_type, pe.status) == ("update", "pending")

    export(scenario)

    [update] = MemoryConnector.calls[-1]
    assert update.change_type == "update"
    assert sorted(c.attribute for c in update.attribute_changes) == ["cn", "mail", "sn"]
    pe.refresh_from_db()
    assert pe.status == "exported"
    assert _row_states(pe) == {"exported_pending_confirmation"}


def test_an_export_whose_changes_were_all_sent_is_exported(scenario):
    # As a sync of an earlier version left it: pending, every change sent already.
    pe = _exported(scenario)
    PendingExport.objects.filter(pk=pe.pk).update(status="pending", change_type="update", dn="")
    calls = len(MemoryConnector.calls)

    export(scenario)

    pe.refresh_from_db()
    assert pe.status == "exported"
    assert len(MemoryConnector.calls) == calls  # nothing sent again
