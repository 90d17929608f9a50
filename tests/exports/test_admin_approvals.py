"""Approving and rejecting pending exports in the admin."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from exports.models import ApprovalAuditEntry, PendingExport
from tests.sync.scenario import build_scenario

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:exports_pendingexport_changelist"


@pytest.fixture
def awaiting():
    s = build_scenario(approval_mode="all")
    s.hr_row("1", accountName="first")
    s.hr_row("2", accountName="second")
    s.sync()
    return list(PendingExport.objects.order_by("pk"))


def _staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def approver(client):
    user = _staff("alice")
    user.groups.add(Group.objects.get(name="Approvers"))
    client.force_login(user)
    return user


def test_bulk_approve_asks_for_confirmation_showing_before_and_after(client, approver, awaiting):
    ids = [str(pe.pk) for pe in awaiting]
    page = client.post(
        reverse(CHANGELIST), {"action": "approve_selected", ACTION_CHECKBOX_NAME: ids}
    )
    html = page.content.decode()
    assert page.status_code == 200
    assert "Approve 2" in html and "first" in html and "mail" in html
    assert PendingExport.objects.filter(approval="awaiting_approval").count() == 2

    done = client.post(
        reverse(CHANGELIST),
        {"action": "approve_selected", ACTION_CHECKBOX_NAME: ids, "confirm": "yes", "reason": "ok"},
        follow=True,
    )
    assert "Approved 2 pending export(s)" in done.content.decode()
    assert set(PendingExport.objects.values_list("approval", flat=True)) == {"approved"}
    assert set(ApprovalAuditEntry.objects.values_list("username", "reason")) == {("alice", "ok")}


def test_reject_needs_a_reason(client, approver, awaiting):
    url = reverse("admin:exports_pendingexport_reject", args=[awaiting[0].pk])
    assert "Reject 1" in client.get(url).content.decode()

    page = client.post(url, {"confirm": "yes", "reason": ""})
    assert "Give a reason" in page.content.decode()
    assert PendingExport.objects.get(pk=awaiting[0].pk).approval == "awaiting_approval"

    client.post(url, {"confirm": "yes", "reason": "not this one"})
    pe = PendingExport.objects.get(pk=awaiting[0].pk)
    assert (pe.approval, pe.approval_reason, pe.approved_by.username) == (
        "rejected",
        "not this one",
        "alice",
    )


def test_change_page_offers_approve_and_reject_to_approvers(client, approver, awaiting):
    html = client.get(reverse("admin:exports_pendingexport_change", args=[awaiting[0].pk])).content
    assert "Approve…".encode() in html and "Reject…".encode() in html


def test_a_viewer_cannot_approve(client, awaiting):
    viewer = _staff("bob", "view_pendingexport")
    client.force_login(viewer)
    changelist = client.get(reverse(CHANGELIST)).content.decode()
    assert "approve_selected" not in changelist
    page = client.get(reverse("admin:exports_pendingexport_change", args=[awaiting[0].pk]))
    assert b"Approve\xe2\x80\xa6" not in page.content  # "Approve…" button
    response = client.post(
        reverse("admin:exports_pendingexport_approve", args=[awaiting[0].pk]), {"confirm": "yes"}
    )
    assert response.status_code == 403
    assert PendingExport.objects.get(pk=awaiting[0].pk).approval == "awaiting_approval"


def test_audit_trail_cannot_be_edited(client, approver, awaiting):
    client.post(
        reverse("admin:exports_pendingexport_approve", args=[awaiting[0].pk]),
        {"confirm": "yes"},
    )
    entry = ApprovalAuditEntry.objects.get()
    superuser = User.objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    url = reverse("admin:exports_approvalauditentry_change", args=[entry.pk])
    assert client.post(url, {"reason": "tampered"}).status_code == 403
    assert (
        client.post(
            reverse("admin:exports_approvalauditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
