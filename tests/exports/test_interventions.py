"""Retrying and discarding failed pending exports: what changes, what the next sync and
export do, the audit trail, who may, and what is refused."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from connectors.choices import CsoStatus
from connectors.models import Activity, ConnectorSpaceObject
from exports.intervention import (
    InterventionDenied,
    InterventionRefused,
    discard,
    retry,
)
from exports.models import ApprovalAuditEntry, PendingExport
from tests.exports.failures import dn, export, failed_creates, user_with
from tests.exports.memory_connector import MemoryConnector
from tests.support.runs import held
from tests.sync.scenario import changes, provisioned

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- retry


def test_retry_makes_a_failed_export_executable_now_and_the_next_export_sends_it(
    failing, intervener
):
    [pe] = failed_creates(failing, "jsmith")
    assert (pe.error_count, pe.max_retries) == (1, 1)
    MemoryConnector.fail_dns.clear()  # the directory's problem is fixed
    export(failing)
    assert dn("jsmith") not in MemoryConnector.directory  # failed: never sent by itself

    [retried] = retry([pe], intervener, reason="ACL fixed")

    pe.refresh_from_db()
    assert (pe.status, pe.error_count, pe.next_retry_at, pe.last_error) == ("pending", 0, None, "")
    assert set(pe.attribute_changes.values_list("status", flat=True)) == {"pending"}
    assert retried.pk == pe.pk
    activity = export(failing)
    assert activity.status == "complete"
    assert MemoryConnector.directory[dn("jsmith")]["attributes"]["cn"] == ["John Smith"]
    pe.refresh_from_db()
    assert pe.status == "exported"


def test_a_retried_export_that_fails_again_gets_its_attempts_again(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")

    retry([pe], intervener)
    export(failing)  # the directory still refuses it

    pe.refresh_from_db()
    assert (pe.status, pe.error_count) == ("failed", 1)
    assert "constraint violation" in pe.last_error


def test_retry_is_on_the_audit_trail_with_what_the_export_was(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")

    retry([pe], intervener, reason="ACL fixed")

    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.user, entry.username, entry.reason) == (
        "retried",
        intervener,
        "olga",
        "ACL fixed",
    )
    assert (entry.connected_system_name, entry.change_type, entry.target) == (
        "Directory",
        "create",
        dn("jsmith"),
    )
    assert (entry.pending_export, entry.pending_export_ref) == (pe, pe.pk)
    assert "constraint violation" in entry.last_error
    assert {c["attribute"] for c in entry.changes} >= {"uid", "cn", "mail"}


# --------------------------------------------------------------------------- discard


@pytest.mark.parametrize("delta", [True, False], ids=["delta sync", "full sync"])
def test_a_discarded_create_leaves_no_cso_and_the_next_sync_stages_it_afresh(
    failing, intervener, delta
):
    [pe] = failed_creates(failing, "jsmith")
    old_cso = pe.cs_object_id
    assert ConnectorSpaceObject.objects.get(pk=old_cso).status == CsoStatus.PENDING_PROVISIONING

    discard([pe], intervener, reason="wrong OU; fixed the template")

    assert not PendingExport.objects.exists()
    assert not ConnectorSpaceObject.objects.filter(pk=old_cso).exists()
    source = ConnectorSpaceObject.objects.get(connected_system=failing.hr)
    assert source.sync_pending  # what a delta sync reads

    failing.sync(delta=delta)

    again = failing.export_of("1001")
    assert (again.change_type, again.status, again.error_count) == ("create", "pending", 0)
    assert again.cs_object_id != old_cso
    assert again.cs_object.status == CsoStatus.PENDING_PROVISIONING
    assert changes(again)[("uid", "update")] == ["jsmith"]
    MemoryConnector.fail_dns.clear()
    export(failing)
    assert dn("jsmith") in MemoryConnector.directory


def test_discard_is_on_the_audit_trail_after_the_export_is_gone(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")

    discard([pe], intervener, reason="duplicate person in HR")

    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.username, entry.reason) == (
        "discarded",
        "olga",
        "duplicate person in HR",
    )
    assert (entry.pending_export, entry.pending_export_ref) == (None, pe.pk)
    assert (entry.connected_system_name, entry.change_type, entry.target) == (
        "Directory",
        "create",
        dn("jsmith"),
    )
    assert "constraint violation" in entry.last_error
    assert {c["attribute"] for c in entry.changes} >= {"uid", "cn", "mail"}


def test_earlier_audit_entries_of_a_discarded_export_stay(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")
    retry([pe], intervener, reason="try again")
    export(failing)  # fails again

    discard([pe], intervener, reason="give up")

    assert list(
        ApprovalAuditEntry.objects.order_by("pk").values_list(
            "action", "pending_export", "pending_export_ref"
        )
    ) == [("retried", None, pe.pk), ("discarded", None, pe.pk)]


def test_a_discarded_update_keeps_the_object_and_the_next_delta_sync_stages_it_again(
    failing, intervener
):
    target = provisioned(failing)
    MemoryConnector.directory[target.secondary_external_id] = {"id": "x", "attributes": {}}
    failing.update_hr("1001", lastName="Jones")
    failing.sync(delta=True)
    MemoryConnector.fail_dns[target.secondary_external_id] = "insufficient access"
    export(failing)
    pe = PendingExport.objects.get(cs_object=target)
    assert (pe.change_type, pe.status) == ("update", "failed")

    discard([pe], intervener, reason="the directory team will do it")

    assert not PendingExport.objects.exists()
    target.refresh_from_db()
    assert target.status == CsoStatus.NORMAL and target.sync_pending
    failing.sync(delta=True)
    again = failing.export_of("1001")
    assert (again.change_type, again.status) == ("update", "pending")
    assert changes(again)[("sn", "update")] == ["Jones"]


def test_discarding_a_managers_create_re_evaluates_the_exports_that_refer_to_it(
    failing, intervener
):
    report = failing.hr_row("2", accountName="report")
    manager = failing.hr_row("1", accountName="boss")
    report.attributes["managerId"] = [manager.pk]
    report.save()
    failing.sync()
    MemoryConnector.fail_dns[dn("boss")] = "constraint violation"
    export(failing)  # the report is created; its manager waits for the boss
    boss_pe = PendingExport.objects.get(status="failed")
    report_pe = failing.export_of("2")
    assert changes(report_pe)[("manager", "update")] == [boss_pe.cs_object_id]
    ConnectorSpaceObject.objects.update(sync_pending=False)

    discard([boss_pe], intervener, reason="recreate the boss")
    failing.sync(delta=True)

    new_boss = failing.dir_cso_of("1")
    assert new_boss.pk != boss_pe.cs_object_id
    report_pe = failing.export_of("2")
    assert changes(report_pe)[("manager", "update")] == [new_boss.pk]
    MemoryConnector.fail_dns.clear()
    export(failing)  # the boss is created; the report's update waited for it …
    export(failing)  # … and goes now
    assert MemoryConnector.directory[dn("report")]["attributes"]["manager"] == [dn("boss")]


def test_discard_needs_a_reason(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")

    with pytest.raises(InterventionRefused, match="give a reason"):
        discard([pe], intervener, reason="  ")

    assert PendingExport.objects.get().status == "failed"
    assert not ApprovalAuditEntry.objects.exists()


def test_discard_is_refused_while_a_sync_runs(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")
    sync = Activity.objects.create(
        connected_system=failing.hr,
        profile_type="delta_sync",
        profile_name="Delta Sync",
        status="in_progress",
    )

    with (
        held(sync),
        pytest.raises(InterventionRefused, match=f"a sync is running \\(activity #{sync.pk}"),
    ):
        discard([pe], intervener, reason="give up")

    assert PendingExport.objects.get().status == "failed"
    assert not ApprovalAuditEntry.objects.exists()


def test_a_sync_whose_process_died_does_not_block_a_discard(failing, intervener):
    [pe] = failed_creates(failing, "jsmith")
    dead = Activity.objects.create(
        connected_system=failing.hr,
        profile_type="delta_sync",
        profile_name="Delta Sync",
        status="in_progress",
    )  # nothing holds its run lock: the process running it is gone

    discard([pe], intervener, reason="give up")

    assert not PendingExport.objects.exists()
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert "stopped (killed or crashed)" in dead.message


# --------------------------------------------------------------------------- who and what


def test_only_failed_exports_are_retried_or_discarded(failing, intervener):
    [failed] = failed_creates(failing, "jsmith")
    failing.hr_row("2001", accountName="newbie")
    failing.sync()
    pending = failing.export_of("2001")

    assert retry([failed, pending], intervener) == [failed]
    failed.refresh_from_db()
    pending.refresh_from_db()
    assert (pending.status, failed.status) == ("pending", "pending")
    PendingExport.objects.filter(pk=failed.pk).update(status="failed")
    assert discard([failed, pending], intervener, reason="x") == [failed]
    assert list(PendingExport.objects.values_list("pk", flat=True)) == [pending.pk]
    assert list(ApprovalAuditEntry.objects.values_list("pending_export_ref", flat=True)) == [
        failed.pk,
        failed.pk,
    ]


@pytest.mark.parametrize("act", ["retry", "discard"])
def test_a_user_without_the_permission_may_not(failing, act):
    [pe] = failed_creates(failing, "jsmith")
    approver = user_with("alice", "approve_pendingexport", "view_pendingexport")

    with pytest.raises(InterventionDenied, match=r"exports\.intervene_pendingexport"):
        if act == "retry":
            retry([pe], approver)
        else:
            discard([pe], approver, reason="x")

    assert PendingExport.objects.get().status == "failed"
    assert not ApprovalAuditEntry.objects.exists()


def test_a_superuser_may(failing):
    [pe] = failed_creates(failing, "jsmith")
    root = User.objects.create_superuser("root", password="pw")

    assert retry([pe], root) == [pe]
