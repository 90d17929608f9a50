"""From the dashboard to a way out of ``failed``, in a real headless Chromium: an
operator sees the failed exports with their last errors, follows the link to the
admin and retries them with a reason."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from exports.models import ApprovalAuditEntry, PendingExport, PendingExportAttributeChange
from tests.sync.scenario import build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ERROR = "uid=ada,ou=people,dc=example,dc=org: insufficientAccessRights"


@pytest.fixture
def failed() -> list[PendingExport]:
    """Two creates for the directory, failed as an export run leaves them at max retries."""
    scenario = build_scenario()
    scenario.hr_row("1", accountName="ada", firstName="Ada", lastName="Lovelace")
    scenario.hr_row("2", accountName="alan", firstName="Alan", lastName="Turing")
    scenario.sync()
    PendingExport.objects.update(status="failed", error_count=5, last_error=ERROR)
    PendingExportAttributeChange.objects.update(status="failed")
    return list(PendingExport.objects.order_by("pk"))


def test_operator_retries_failed_exports_from_the_dashboard(
    logged_in: Page,
    live_server,
    failed,
):
    tab = logged_in
    tab.goto(live_server.url + reverse("console:dashboard"))

    panel = tab.locator("#failed-exports")
    assert "Failed exports: 2" in panel.text_content()
    assert ERROR in panel.text_content()
    tab.click("#failed-exports >> text=Retry or discard failed exports")
    tab.wait_for_selector("#changelist")
    # The admin's actions script sets the select-all box from the rows' boxes when the
    # page is shown (``pageshow``, after ``load``): a click before that is undone.
    tab.wait_for_load_state("load")
    assert "status__exact=failed" in tab.url
    tab.check("#action-toggle")  # every failed export of the list
    tab.select_option("select[name=action]", "retry_selected")
    tab.click("button[name=index]")
    tab.wait_for_selector("text=Retry pending exports")
    assert tab.locator(".jim-decision").count() == 2
    assert ERROR in tab.text_content(".jim-decision")
    tab.fill("#id_reason", "ACL fixed on the directory")
    tab.click("input[type=submit][value='Retry 2']")
    tab.wait_for_selector(".messagelist >> text=Retried 2 pending export(s).")

    assert set(PendingExport.objects.values_list("status", "error_count")) == {("pending", 0)}
    assert set(ApprovalAuditEntry.objects.values_list("action", "username", "reason")) == {
        ("retried", "operator", "ACL fixed on the directory")
    }
    tab.goto(live_server.url + reverse("console:dashboard"))
    assert not tab.is_visible("#failed-exports")
