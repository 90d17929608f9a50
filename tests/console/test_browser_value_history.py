"""An MVO's value history in a real headless Chromium: the newest entries first, then
"Show older" brings the next page into the same list (HTMX), until the first entry.

The browser fixtures (``page``, ``logged_in``) are in ``tests/console/conftest.py``.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from console import value_history
from tests.sync.scenario import build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_show_older_brings_the_next_entries_into_the_timeline(logged_in, live_server, monkeypatch):
    monkeypatch.setattr(value_history, "PAGE_SIZE", 1)
    scenario = build_scenario()
    scenario.hr_row("1001", firstName="Jane", lastName="Doe")
    scenario.sync()
    scenario.update_hr("1001", lastName="Roe")
    scenario.sync(delta=True)
    page = logged_in

    page.goto(live_server.url + reverse("console:mvo", args=[scenario.mvo_of("1001").pk]))
    entries = page.locator("#value-history li.jim-history-entry")
    assert entries.count() == 1 and "Updated" in entries.first.inner_text()
    assert "Roe" in entries.first.inner_text()

    page.get_by_role("link", name="Show older").click()

    entries.nth(1).wait_for()
    assert "Created" in entries.nth(1).inner_text()
    assert page.get_by_role("link", name="Show older").count() == 0
