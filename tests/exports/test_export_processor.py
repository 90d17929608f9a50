"""The export run profile's bookkeeping, against an in-process connector.

(Scenario tests against real slapd and CSV files live beside the connectors.)
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.lifecycle import release_stale_executing
from exports.models import PendingExport
from tests.exports.exporting import export
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import build_scenario, rpeis

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(memory_connector):
    return build_scenario(connector="memory", export_retry_backoff_seconds=60, export_max_retries=3)


def test_create_is_sent_with_every_attribute_and_recorded(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()

    activity = export(scenario)

    entry = MemoryConnector.directory["uid=jsmith,ou=people,dc=example,dc=org"]
    assert entry["attributes"]["cn"] == ["John Smith"]
    target = scenario.dir_cso_of("1001")
    assert target.external_id == entry["id"]
    assert target.status == "pending_provisioning"  # until a confirming import sees it
    assert target.attributes["mail"] == ["john.smith@example.org"]  # applied optimistically
    pe = PendingExport.objects.get(cs_object=target)
    assert pe.status == "exported"
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {
        "exported_pending_confirmation"
    }
    assert [i.change_type for i in rpeis(activity)] == ["provisioned"]
    assert activity.status == "complete"


def test_a_create_waits_for_the_create_it_references_then_goes_whole(scenario):
    report = scenario.hr_row("2", accountName="report")
    manager = scenario.hr_row("1", accountName="boss")
    report.attributes["managerId"] = [manager.pk]
    report.save()
    scenario.sync()

    export(scenario)

    first, second = MemoryConnector.calls
    assert [c.dn for c in first] == ["uid=boss,ou=people,dc=example,dc=org"]
    [report_create] = second
    assert report_create.change_type == "create"
    assert {a.attribute: a.values for a in report_create.attribute_changes}["manager"] == [
        "uid=boss,ou=people,dc=example,dc=org"
    ]
    entry = MemoryConnector.directory["uid=report,ou=people,dc=example,dc=org"]
    assert entry["attributes"]["manager"] == ["uid=boss,ou=people,dc=example,dc=org"]
    assert PendingExport.objects.get(cs_object=scenario.dir_cso_of("2")).status == "exported"


def test_references_of_a_cycle_follow_the_creates(scenario):
    first = scenario.hr_row("1", accountName="first")
    second = scenario.hr_row("2", accountName="second")
    first.attributes["managerId"] = [second.pk]
    second.attributes["managerId"] = [first.pk]
    first.save()
    second.save()
    scenario.sync()

    export(scenario)

    creates, updates = MemoryConnector.calls
    assert sorted(c.change_type for c in creates) == ["create", "create"]
    assert all("manager" not in {a.attribute for a in c.attribute_changes} for c in creates)
    assert sorted(u.attribute_changes[0].values[0] for u in updates) == [
        "uid=first,ou=people,dc=example,dc=org",
        "uid=second,ou=people,dc=example,dc=org",
    ]
    for uid, manager in (("first", "second"), ("second", "first")):
        entry = MemoryConnector.directory[f"uid={uid},ou=people,dc=example,dc=org"]
        assert entry["attributes"]["manager"] == [f"uid={manager},ou=people,dc=example,dc=org"]


def test_failure_backs_off_then_fails_at_max_retries(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    MemoryConnector.fail_dns["uid=jsmith,ou=people,dc=example,dc=org"] = "constraint violation"

    activity = export(scenario)

    pe = PendingExport.objects.get()
    assert (pe.status, pe.error_count) == ("export_not_confirmed", 1)
    assert pe.next_retry_at > timezone.now() + dt.timedelta(seconds=50)
    assert activity.status == "complete"
    [error] = [i for i in rpeis(activity) if i.error_type]
    assert error.error_type == "export_failed" and "constraint violation" in error.message

    export(scenario)  # not due yet: nothing sent
    assert len(MemoryConnector.calls) == 1

    for expected_count in (2, 3):
        PendingExport.objects.update(next_retry_at=timezone.now())
        export(scenario)
        pe.refresh_from_db()
        assert pe.error_count == expected_count
    assert pe.status == "failed"
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {"failed"}
    export(scenario)
    assert len(MemoryConnector.calls) == 3


def test_one_failing_object_does_not_block_the_others(scenario):
    scenario.hr_row("1", accountName="bad")
    scenario.hr_row("2", accountName="good")
    scenario.sync()
    MemoryConnector.fail_dns["uid=bad,ou=people,dc=example,dc=org"] = "refused"

    export(scenario)

    assert "uid=good,ou=people,dc=example,dc=org" in MemoryConnector.directory
    assert PendingExport.objects.get(cs_object=scenario.dir_cso_of("2")).status == "exported"


def test_unreachable_target_fails_the_run_and_counts_no_attempt(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    MemoryConnector.down = True

    activity = export(scenario)

    assert activity.status == "failed"
    assert "connection refused" in activity.message and "Directory" in activity.message
    pe = PendingExport.objects.get()
    assert (pe.status, pe.error_count, pe.next_retry_at) == ("pending", 0, None)
    MemoryConnector.down = False
    export(scenario)
    assert PendingExport.objects.get().status == "exported"


def test_awaiting_approval_and_rejected_are_never_sent(scenario):
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(approval_mode="all")
    scenario.hr_row("1", accountName="waiting")
    scenario.hr_row("2", accountName="rejected")
    scenario.sync()
    PendingExport.objects.filter(cs_object=scenario.dir_cso_of("2")).update(approval="rejected")

    export(scenario)

    assert MemoryConnector.calls == []
    PendingExport.objects.filter(cs_object=scenario.dir_cso_of("1")).update(approval="approved")
    export(scenario)
    assert list(MemoryConnector.directory) == ["uid=waiting,ou=people,dc=example,dc=org"]


def test_delete_removes_the_cso_and_records_deprovisioned(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    export(scenario)
    PendingExport.objects.all().delete()  # as if confirmed
    scenario.update_hr("1001", status="Terminated")
    scenario.sync(delta=True)

    activity = export(scenario)

    assert MemoryConnector.directory == {}
    assert not ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).exists()
    assert [i.change_type for i in rpeis(activity)] == ["deprovisioned"]


def test_stale_executing_exports_are_released(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    PendingExport.objects.update(status="executing")

    assert release_stale_executing() == 1
    assert PendingExport.objects.get().status == "export_not_confirmed"
    export(scenario)
    assert PendingExport.objects.get().status == "exported"
