""" "What would a sync do?" in a real headless Chromium: on an MVO page after an HR
change, the button brings the outcome into the page (HTMX) — each value old → new and
the update it would export — and nothing changes.

The browser fixtures (``page``, ``logged_in``) are in ``tests/console/conftest.py``.
"""

from __future__ import annotations

import os

import pytest
from django.urls import reverse

from connectors.models import Activity
from metaverse.models import MetaverseObject
from tests.console.test_previews import PEOPLE, synced
from tests.previews.fidelity import assert_unchanged, database_state
from tests.scenarios.estate import Estate, make_estate, person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


def test_what_would_a_sync_do_shows_the_old_and_new_values_inline(logged_in, live_server, estate):
    synced(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    ada = MetaverseObject.objects.get(attributes__employeeId=["1001"])
    page = logged_in
    page.goto(live_server.url + reverse("console:mvo", args=[ada.pk]))
    before = database_state()

    page.get_by_role("button", name="What would a sync do?").click()

    outcome = page.locator("#what-if-outcome")
    outcome.get_by_text("Preview — nothing was changed.").wait_for()
    assert page.url == live_server.url + reverse("console:mvo", args=[ada.pk])  # inline
    flow = outcome.locator("table.jim-what-if-items tr", has_text="Attribute Flow")
    sn = flow.locator("table.jim-changes tr", has_text="sn")
    assert sn.locator(".jim-old").inner_text() == "Lovelace"
    assert sn.locator(".jim-new").inner_text() == "King"
    export = outcome.locator("table.jim-previewed-exports-table tbody tr").first
    assert "uid=alovelace" in export.inner_text() and "update" in export.inner_text()
    export_sn = export.locator("table.jim-changes tr", has_text="sn")
    assert export_sn.locator(".jim-old").inner_text() == "Lovelace"
    assert export_sn.locator(".jim-new").inner_text() == "King"
    if folder := os.environ.get("JIM_SCREENSHOTS"):
        page.screenshot(path=os.path.join(folder, "what-if.png"), full_page=True)

    preview = Activity.objects.get(preview=True)
    assert_unchanged(before, database_state(but=preview))
