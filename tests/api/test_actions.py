"""Running run profiles and schedules, and approving, rejecting, retrying and
discarding pending exports — one at a time and in bulk — through the API, each act
recorded on the audit trail with its reason."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django_q.models import OrmQ

from connectors.models import Activity
from exports.models import ApprovalAuditEntry, PendingExport
from tests.api.endpoints import API
from tests.api.world import user_in
from tests.support.runs import held

pytestmark = pytest.mark.django_db

PE = f"{API}pending-exports/"


def queued_tasks() -> list[dict]:
    return [task.task for task in OrmQ.objects.all()]


def test_run_queues_an_activity_for_the_workers(world, admin_client):
    response = admin_client.post(f"{API}run-profiles/{world.import_profile.pk}/run/")
    assert response.status_code == 202
    body = response.json()
    activity = Activity.objects.get(pk=body["id"])
    assert response["Location"] == f"{API}activities/{activity.pk}/"
    assert (body["status"], body["profile_name"], body["connected_system_name"]) == (
        "queued",
        "Full Import",
        "HR",
    )
    assert activity.initiated_by == world.administrator
    assert not activity.allow_deletions
    [task] = queued_tasks()
    assert (task["func"], task["args"]) == ("runs.tasks.execute_activity", (activity.pk,))
    assert admin_client.get(response["Location"]).json()["status"] == "queued"


def test_lifting_a_threshold_needs_the_override_permission(world, client_for):
    operator = user_in("Operators")
    url = f"{API}run-profiles/{world.import_profile.pk}/run/"
    refused = client_for(operator).post(url, {"allow_deletions": True}, format="json")
    assert refused.status_code == 403
    assert "connectors.override_threshold" in refused.json()["error"]["message"]
    assert not Activity.objects.filter(run_profile=world.import_profile).exists()
    operator.user_permissions.add(Permission.objects.get(codename="override_threshold"))
    allowed = client_for(operator).post(url, {"allow_deletions": True}, format="json")
    assert allowed.status_code == 202
    assert Activity.objects.get(pk=allowed.json()["id"]).allow_deletions


def test_schedule_run_now_hands_the_schedule_to_the_workers(world, admin_client):
    response = admin_client.post(f"{API}schedules/{world.schedule.pk}/run/")
    assert response.status_code == 202
    body = response.json()
    assert body["schedule"] == world.schedule.pk
    assert body["activities"] == f"{API}activities/?schedule={world.schedule.pk}"
    first = Activity.objects.get(pk=body["first_activity"])
    assert (first.status, first.schedule_id, first.initiated_by) == (
        "queued",
        world.schedule.pk,
        world.administrator,
    )
    [task] = queued_tasks()
    assert (task["func"], task["args"]) == (
        "runs.tasks.run_schedule",
        (world.schedule.pk, first.pk),
    )
    assert body["task_id"] == first.task_id


def test_approve_one_with_a_reason(world, admin_client):
    pe = world.awaiting()[0]
    response = admin_client.post(f"{PE}{pe.pk}/approve/", {"reason": "HR ticket 42"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"action": "approved", "done": [pe.pk], "skipped": []}
    pe.refresh_from_db()
    assert (pe.approval, pe.approved_by, pe.approval_reason) == (
        "approved",
        world.administrator,
        "HR ticket 42",
    )
    entry = ApprovalAuditEntry.objects.get(pending_export_ref=pe.pk, action="approved")
    assert (entry.username, entry.reason) == ("root", "HR ticket 42")


def test_reject_needs_a_reason(world, admin_client):
    pe = world.awaiting()[0]
    refused = admin_client.post(f"{PE}{pe.pk}/reject/", {}, format="json")
    assert refused.status_code == 400
    assert "reason" in refused.json()["error"]["details"]
    assert (
        admin_client.post(f"{PE}{pe.pk}/reject/", {"reason": "  "}, format="json").status_code
        == 400
    )
    done = admin_client.post(f"{PE}{pe.pk}/reject/", {"reason": "not hired"}, format="json")
    assert done.json()["action"] == "rejected"
    assert PendingExport.objects.get(pk=pe.pk).approval == "rejected"
    assert ApprovalAuditEntry.objects.get(action="rejected").reason == "not hired"


def test_approving_one_that_awaits_nothing_is_a_409_naming_it(world, admin_client):
    failed = world.failed()
    response = admin_client.post(f"{PE}{failed.pk}/approve/", format="json")
    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert f"Pending export {failed.pk} (Directory create uid=user1001" in message
    assert "not awaiting approval" in message


def test_retry_one_failed_export(world, admin_client):
    failed = world.failed()
    response = admin_client.post(f"{PE}{failed.pk}/retry/", {"reason": "fixed"}, format="json")
    assert response.json() == {"action": "retried", "done": [failed.pk], "skipped": []}
    failed.refresh_from_db()
    assert (failed.status, failed.error_count) == ("pending", 0)
    entry = ApprovalAuditEntry.objects.get(action="retried")
    assert entry.last_error.endswith("constraint violation")
    again = admin_client.post(f"{PE}{failed.pk}/retry/", format="json")
    assert again.status_code == 409
    assert "not failed" in again.json()["error"]["message"]


def test_discard_one_failed_export_needs_a_reason(world, admin_client):
    failed = world.failed()
    assert admin_client.post(f"{PE}{failed.pk}/discard/", format="json").status_code == 400
    response = admin_client.post(f"{PE}{failed.pk}/discard/", {"reason": "left"}, format="json")
    assert response.json() == {"action": "discarded", "done": [failed.pk], "skipped": []}
    assert not PendingExport.objects.filter(pk=failed.pk).exists()
    entry = ApprovalAuditEntry.objects.get(action="discarded")
    assert (entry.pending_export_ref, entry.reason) == (failed.pk, "left")
    assert admin_client.get(f"{PE}{failed.pk}/").status_code == 404


def test_discard_while_a_sync_runs_is_a_409(world, admin_client):
    failed = world.failed()
    sync = Activity.objects.create(
        connected_system=world.scenario.hr,
        profile_type="full_sync",
        profile_name="Full Sync",
        status="in_progress",
    )
    with held(sync):  # a live run: the discard must not take it for dead
        response = admin_client.post(f"{PE}{failed.pk}/discard/", {"reason": "x"}, format="json")
    assert response.status_code == 409
    assert f"activity #{sync.pk}" in response.json()["error"]["message"]
    assert PendingExport.objects.filter(pk=failed.pk).exists()


def test_bulk_approve_by_ids_skips_what_it_does_not_apply_to(world, admin_client):
    awaiting = [pe.pk for pe in world.awaiting()]
    failed = world.failed().pk
    response = admin_client.post(
        f"{PE}approve/", {"ids": [*awaiting, failed, 999999], "reason": "batch"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["action"] == "approved"
    assert body["done"] == awaiting
    skipped = {skip["id"]: skip["reason"] for skip in body["skipped"]}
    assert set(skipped) == {failed, 999999}
    assert "not awaiting approval" in skipped[failed]
    assert skipped[999999] == "No pending export has id 999999."
    assert ApprovalAuditEntry.objects.filter(action="approved", reason="batch").count() == len(
        awaiting
    )


def test_bulk_reject_by_filter(world, admin_client):
    directory = world.scenario.directory.pk
    response = admin_client.post(
        f"{PE}reject/",
        {
            "filter": {"connected_system": directory, "approval": "awaiting_approval"},
            "reason": "freeze",
        },
        format="json",
    )
    assert response.status_code == 200
    rejected = PendingExport.objects.filter(approval="rejected")
    assert response.json()["done"] == sorted(rejected.values_list("pk", flat=True))
    assert rejected.count() == 3
    assert ApprovalAuditEntry.objects.filter(action="rejected", reason="freeze").count() == 3


def test_bulk_retry_and_discard(world, admin_client):
    failed = world.failed().pk
    retried = admin_client.post(f"{PE}retry/", {"ids": [failed]}, format="json").json()
    assert retried["done"] == [failed]
    discarded = admin_client.post(
        f"{PE}discard/", {"filter": {"status": "failed"}, "reason": "none left"}, format="json"
    ).json()
    assert discarded == {"action": "discarded", "done": [], "skipped": []}


@pytest.mark.parametrize(
    "body",
    [{}, {"ids": [1], "filter": {}}, {"filter": {"colour": "red"}}, {"filter": {"status": "lost"}}],
    ids=["neither", "both", "unknown filter", "bad value"],
)
def test_bulk_body_must_name_the_exports(world, admin_client, body):
    response = admin_client.post(f"{PE}approve/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert PendingExport.objects.filter(approval="approved").count() == 2
