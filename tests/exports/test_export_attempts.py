"""What counts as an attempt of a pending export (seed 003, issue 10 item 7).

Only the target's answer about the object itself counts toward ``max_retries``; a
target that cannot take the changes — unreachable, the connection lost with the
outcome unknown, busy — fails the run and leaves every export as it was. The same
against a stopped slapd: tests/scenarios/test_export_outage.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from exports.models import PendingExport
from tests.exports.exporting import export
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import build_scenario, rpeis

pytestmark = pytest.mark.django_db

DN = "uid={},ou=people,dc=example,dc=org"


@pytest.fixture
def scenario(memory_connector):
    return build_scenario(connector="memory", export_retry_backoff_seconds=60, export_max_retries=3)


def _people(scenario, *accounts: str) -> None:
    for n, account in enumerate(accounts, start=1):
        scenario.hr_row(str(n), accountName=account)
    scenario.sync()


def _states() -> list[tuple[str, int]]:
    return list(PendingExport.objects.order_by("pk").values_list("status", "error_count"))


def test_an_outage_over_many_runs_fails_no_export(scenario):
    _people(scenario, "a", "b")
    MemoryConnector.down = True

    for _ in range(6):  # twice max_retries
        activity = export(scenario)
        assert activity.status == "failed"
        assert "cannot reach memory://" in activity.message
        assert "no attempt was counted" in activity.message
        assert [i.error_type for i in rpeis(activity)] == []  # the runner records the run's
        assert _states() == [("pending", 0), ("pending", 0)]

    MemoryConnector.down = False
    assert export(scenario).status == "complete"
    assert _states() == [("exported", 0), ("exported", 0)]


def test_an_outage_keeps_a_retry_as_it_was(scenario):
    _people(scenario, "a")
    MemoryConnector.fail_dns[DN.format("a")] = "constraint violation"
    export(scenario)  # the object's own error: attempt 1, backoff
    pe = PendingExport.objects.get()
    assert (pe.status, pe.error_count) == ("export_not_confirmed", 1)
    due = timezone.now() - dt.timedelta(seconds=1)
    PendingExport.objects.update(next_retry_at=due)
    MemoryConnector.down = True

    export(scenario)
    export(scenario)

    pe.refresh_from_db()
    assert (pe.status, pe.error_count, pe.next_retry_at) == ("export_not_confirmed", 1, due)
    assert pe.last_error.endswith("constraint violation")
    MemoryConnector.down = False
    del MemoryConnector.fail_dns[DN.format("a")]
    export(scenario)
    assert _states() == [("exported", 1)]  # the one attempt the object itself failed


def test_connection_lost_mid_batch_keeps_answers_and_counts_nothing_else(scenario):
    _people(scenario, "a", "b", "c")
    MemoryConnector.lost_after = 1

    activity = export(scenario)

    assert activity.status == "failed"
    assert "2 of 3 changes got no usable answer" in activity.message
    assert "outcome unknown" in activity.message
    assert _states() == [("exported", 0), ("pending", 0), ("pending", 0)]
    assert [i.change_type for i in rpeis(activity)] == ["provisioned"]
    MemoryConnector.lost_after = None
    assert export(scenario).counts == {"provisioned": 2}
    assert _states() == [("exported", 0)] * 3


def test_a_busy_answer_is_not_the_objects_error(scenario):
    _people(scenario, "a", "b")
    MemoryConnector.busy_dns[DN.format("b")] = "add failed: busy: try later"

    activity = export(scenario)

    assert activity.status == "failed" and "busy: try later" in activity.message
    assert _states() == [("exported", 0), ("pending", 0)]
    MemoryConnector.busy_dns.clear()
    export(scenario)
    assert _states() == [("exported", 0), ("exported", 0)]


def test_the_objects_own_error_counts_and_others_go_on(scenario):
    _people(scenario, "a", "b")
    MemoryConnector.fail_dns[DN.format("a")] = "objectClassViolation: no sn"

    activity = export(scenario)

    assert activity.status == "complete"  # the run itself did its work
    pe_a, pe_b = PendingExport.objects.order_by("pk")
    assert (pe_a.status, pe_a.error_count) == ("export_not_confirmed", 1)
    assert pe_a.next_retry_at > timezone.now() + dt.timedelta(seconds=50)
    assert (pe_b.status, pe_b.error_count) == ("exported", 0)
    for attempt, backoff in ((2, 120), (3, None)):
        PendingExport.objects.filter(pk=pe_a.pk).update(next_retry_at=timezone.now())
        export(scenario)
        pe_a.refresh_from_db()
        assert pe_a.error_count == attempt
        if backoff:
            assert pe_a.next_retry_at > timezone.now() + dt.timedelta(seconds=backoff - 10)
    assert pe_a.status == "failed"


def test_the_rest_of_a_batch_held_for_a_later_round_is_released(scenario):
    report = scenario.hr_row("2", accountName="report")
    manager = scenario.hr_row("1", accountName="boss")
    report.attributes["managerId"] = [manager.pk]
    report.save()
    scenario.sync()
    MemoryConnector.lost_after = 0  # the first round (the manager) gets no answer

    activity = export(scenario)

    assert activity.status == "failed"
    assert _states() == [("pending", 0), ("pending", 0)]
    assert len(MemoryConnector.calls) == 1  # the report's create was never sent
