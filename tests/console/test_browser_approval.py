"""An approver approves a leaver's delete in a real headless Chromium, and the page
tells them whom it deletes and why before they do.

HR's import rule leaves terminated people out of scope (as the demo's does); Heidi
Jones is terminated, sync disconnects her HR record, her MVO is deleted (its last
connector removed, no grace period) and her Directory account waits for approval.
The approver opens the pending delete from the list: the page names her (from the
snapshot sync kept, as the MVO is gone), gives her employee id, says she left HR's
scope with HR now holding status = Terminated, and what approving does.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from playwright.sync_api import Page

from exports.models import ApprovalAuditEntry, PendingExport
from metaverse.models import MetaverseObject
from tests.console.browser import APPROVER, log_in
from tests.console.test_approval_story import provisioned
from tests.sync.scenario import build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DN = "uid=hjones,ou=people,dc=example,dc=org"


@pytest.fixture
def approver(page: Page, live_server) -> Page:
    """``page`` logged in as a member of the "Approvers" group (staff, not superuser)."""
    user = User.objects.create_user(APPROVER[0], password=APPROVER[1], is_staff=True)
    user.groups.add(Group.objects.get(name="Approvers"))
    return log_in(page, live_server, *APPROVER)


@pytest.fixture
def leaver() -> PendingExport:
    """Heidi Jones's Directory account, to be deleted now that HR says Terminated."""
    scenario = build_scenario(approval_mode="deletes")
    scenario.hr_in.scope = "cs.status != 'Terminated'"
    scenario.hr_in.save()
    provisioned(scenario, "1001", "hjones", "Heidi", "Jones")
    scenario.update_hr("1001", status="Terminated")
    scenario.sync()
    assert not MetaverseObject.objects.exists()
    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.approval, pe.metaverse_object_id) == (
        "delete",
        "awaiting_approval",
        None,
    )
    return pe


def test_approver_approves_a_delete_whose_page_names_the_person_and_the_reason(
    approver: Page, live_server, leaver
):
    page = approver
    page.goto(live_server.url + reverse("admin:exports_pendingexport_changelist"))
    page.click(f"a[href$='/exports/pendingexport/{leaver.pk}/change/']")

    story = page.locator("#export-story")
    story.wait_for()
    told = story.text_content() or ""
    assert f"Deletes Heidi Jones ({DN}) from Directory" in told
    assert "1001" in told  # her employee id
    assert "left the scope of the import rule “HR people in”" in told
    assert "HR holds status = Terminated" in told
    assert "On approval, the next export run deletes Heidi Jones's account" in told
    assert "Metaverse object: -" not in (page.text_content("#content") or "")

    page.click("a:has-text('Approve…')")
    page.wait_for_selector("input[type=submit][value='Approve 1']")
    decision = page.text_content(".jim-decision") or ""
    assert "Heidi Jones" in decision and "HR holds status = Terminated" in decision
    page.fill("#id_reason", "leaver confirmed with HR")
    page.click("input[type=submit][value='Approve 1']")
    page.wait_for_selector(".messagelist >> text=Approved 1 pending export(s).")

    leaver.refresh_from_db()
    alice = User.objects.get(username=APPROVER[0])
    assert (leaver.approval, leaver.approved_by, leaver.approval_reason) == (
        "approved",
        alice,
        "leaver confirmed with HR",
    )
    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.change_type, entry.target) == ("approved", "delete", DN)
