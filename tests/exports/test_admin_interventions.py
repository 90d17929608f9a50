"""Retrying and discarding failed pending exports in the admin."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.urls import reverse

from exports.models import ApprovalAuditEntry, PendingExport
from tests.exports.failures import dn, failed_creates, user_with
from tests.support.runs import held

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:exports_pendingexport_changelist"


@pytest.fixture
def admin_client(client, intervener):
    client.force_login(intervener)
    return client


def _post_action(client, action: str, pes, **data):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, ACTION_CHECKBOX_NAME: [str(pe.pk) for pe in pes], **data},
        follow=True,
    )


def test_bulk_retry_shows_the_last_errors_then_retries_with_the_reason(admin_client, failing):
    pes = failed_creates(failing, "first", "second")

    page = admin_client.post(
        reverse(CHANGELIST),
        {"action": "retry_selected", ACTION_CHECKBOX_NAME: [str(pe.pk) for pe in pes]},
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "Retry 2" in html
    assert f"{dn('first')}: constraint violation" in html  # the last error
    assert "Failed after 1 attempt" in html
    assert set(PendingExport.objects.values_list("status", flat=True)) == {"failed"}

    done = _post_action(admin_client, "retry_selected", pes, confirm="yes", reason="ACL fixed")

    assert "Retried 2 pending export(s)." in done.content.decode()
    assert set(PendingExport.objects.values_list("status", "error_count")) == {("pending", 0)}
    assert set(ApprovalAuditEntry.objects.values_list("action", "username", "reason")) == {
        ("retried", "olga", "ACL fixed")
    }


def test_bulk_discard_needs_a_reason_then_removes_them(admin_client, failing):
    pes = failed_creates(failing, "first", "second")

    page = _post_action(admin_client, "discard_selected", pes, confirm="yes", reason="")
    assert "Give a reason for discarding." in page.content.decode()
    assert PendingExport.objects.count() == 2

    done = _post_action(admin_client, "discard_selected", pes, confirm="yes", reason="bad data")

    assert "Discarded 2 pending export(s)." in done.content.decode()
    assert not PendingExport.objects.exists()
    assert ApprovalAuditEntry.objects.filter(action="discarded", reason="bad data").count() == 2


def test_only_failed_ones_are_acted_on_and_the_others_are_named(admin_client, failing):
    [failed] = failed_creates(failing, "first")
    failing.hr_row("2001", accountName="newbie")
    failing.sync()
    pending = failing.export_of("2001")

    done = _post_action(
        admin_client, "retry_selected", [failed, pending], confirm="yes", reason="ok"
    )

    html = done.content.decode()
    assert "Retried 1 pending export(s) (1 not failed, left alone)." in html
    assert (
        f"Pending export {pending.pk} (Directory create {dn('newbie')}) is pending, not failed"
        in html
    )
    assert list(ApprovalAuditEntry.objects.values_list("pending_export_ref", flat=True)) == [
        failed.pk
    ]


def test_a_selection_with_no_failed_export_is_refused_by_name(admin_client, failing):
    failing.hr_row("2001", accountName="newbie")
    failing.sync()
    pending = failing.export_of("2001")

    done = _post_action(admin_client, "discard_selected", [pending])

    html = done.content.decode()
    assert "None of the selected pending exports is failed." in html
    assert "is pending, not failed: only failed exports can be retried or discarded" in html
    assert PendingExport.objects.get() == pending


def test_failed_export_page_offers_retry_and_discard(admin_client, failing):
    [pe] = failed_creates(failing, "first")
    change = reverse("admin:exports_pendingexport_change", args=[pe.pk])

    html = admin_client.get(change).content.decode()
    assert "Retry now…" in html and "Discard…" in html

    url = reverse("admin:exports_pendingexport_discard", args=[pe.pk])
    assert "Discard 1" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"confirm": "yes", "reason": "gone"})
    assert response.status_code == 302
    assert response.url == reverse(CHANGELIST)  # its own page is gone
    assert not PendingExport.objects.exists()


def test_retry_button_returns_to_the_export(admin_client, failing):
    [pe] = failed_creates(failing, "first")
    url = reverse("admin:exports_pendingexport_retry", args=[pe.pk])

    response = admin_client.post(url, {"confirm": "yes", "reason": ""})

    assert response.url == reverse("admin:exports_pendingexport_change", args=[pe.pk])
    pe.refresh_from_db()
    assert pe.status == "pending"
    html = admin_client.get(response.url).content.decode()
    assert "Retry now…" not in html  # not failed any more


def test_discard_while_a_sync_runs_says_why_nothing_was_done(admin_client, failing):
    [pe] = failed_creates(failing, "first")
    sync = failing.directory.activities.create(
        profile_type="full_sync", profile_name="Full Sync", status="in_progress"
    )

    with held(sync):
        done = _post_action(admin_client, "discard_selected", [pe], confirm="yes", reason="x")

    assert "Nothing was done: a sync is running" in done.content.decode()
    assert PendingExport.objects.get().status == "failed"


def test_a_user_without_the_permission_cannot_retry_or_discard(client, failing):
    [pe] = failed_creates(failing, "first")
    approver = user_with("alice", "view_pendingexport", is_staff=True)
    approver.groups.add(Group.objects.get(name="Approvers"))
    client.force_login(approver)

    changelist = client.get(reverse(CHANGELIST)).content.decode()
    assert "retry_selected" not in changelist and "discard_selected" not in changelist
    page = client.get(reverse("admin:exports_pendingexport_change", args=[pe.pk]))
    assert "Retry now…" not in page.content.decode()
    for name in ("retry", "discard"):
        url = reverse(f"admin:exports_pendingexport_{name}", args=[pe.pk])
        assert client.post(url, {"confirm": "yes", "reason": "x"}).status_code == 403
    refused = _post_action(client, "discard_selected", [pe], confirm="yes", reason="x")
    assert "No action selected." in refused.content.decode()
    assert PendingExport.objects.get().status == "failed"
    assert not ApprovalAuditEntry.objects.exists()
