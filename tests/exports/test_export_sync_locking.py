"""A sync batch and an export run on two real database sessions: the export's claim
waits for the batch that is changing the export, then sends what the batch wrote.

Held in the middle without timing: the sync batch stops after locking the exports it
changes, until the export run's session shows as waiting on a lock in
``pg_stat_activity``.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from exports.models import PendingExport
from metaverse.sync.batch import SyncBatch
from tests.exports.exporting import (
    DN,
    assert_converged,
    confirming_import,
    export,
    hr_marked,
    sent_values,
)
from tests.exports.memory_connector import MemoryConnector

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_SECONDS = 30


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
            [pid],
        )
        return cursor.fetchone()[0] > 0


def test_an_export_claim_waits_for_the_sync_batch_then_sends_what_it_wrote(
    scenario,
    monkeypatch,
):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    export(scenario)
    confirming_import(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    scenario.update_hr("1001", lastName="Brown")  # before the Jones update went out

    exporter: dict[str, object] = {}

    def run_export_in_its_own_session() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                exporter["pid"] = cursor.fetchone()[0]
            exporter["activity"] = export(scenario)
        except BaseException as exc:  # reported by the test below
            exporter["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run_export_in_its_own_session)
    original = SyncBatch.hold_exports

    def hold_then_let_the_export_start(batch: SyncBatch) -> None:
        original(batch)
        if thread.ident is not None:
            return
        thread.start()
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not ("pid" in exporter and _waiting_on_a_lock(exporter["pid"])):
            assert thread.is_alive(), exporter.get("error", "the export did not wait for the sync")
            assert time.monotonic() < deadline, "the export run never waited for the sync"
            time.sleep(0.01)

    monkeypatch.setattr(SyncBatch, "hold_exports", hold_then_let_the_export_start)
    scenario.sync(delta=True)
    thread.join(DEADLINE_SECONDS)

    assert not thread.is_alive()
    assert "error" not in exporter, exporter.get("error")
    assert exporter["activity"].status == "complete"
    pe = PendingExport.objects.get()
    assert pe.status == "exported"
    assert not hr_marked(scenario)  # the sync staged Brown: nothing left for the next
    assert sent_values("sn") == [["Smith"], ["Brown"]]  # Jones, replaced, never sent
    confirming_import(scenario)
    assert_converged(scenario, "Brown")
    assert MemoryConnector.directory[DN]["attributes"]["cn"] == ["John Brown"]
