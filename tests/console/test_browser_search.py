"""The console search in a real headless Chromium (Debian's): a person found by
employee id from the header's box, their MVO opened; results on a phone's width.

The people are synced for real (:mod:`tests.sync.scenario`); the browser fixtures
(``page``, ``logged_in``) are in ``tests/console/conftest.py``.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page

from tests.sync.scenario import Scenario, build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Three people called Heidi Jones: (employee id, account, department).
HEIDIS = [("1042", "hjones", "Sales"), ("1043", "hjones2", "Legal"), ("2001", "heidij", "Research")]
#: A phone's width, in CSS pixels.
PHONE = {"width": 375, "height": 812}


@pytest.fixture
def heidis() -> Scenario:
    scenario = build_scenario()
    for employee_id, account, department in HEIDIS:
        scenario.hr_row(
            employee_id,
            firstName="Heidi",
            lastName="Jones",
            accountName=account,
            department=department,
        )
    scenario.sync()
    return scenario


def search_from_the_header(page: Page, text: str) -> None:
    page.fill("#jim-search-q", text)
    page.press("#jim-search-q", "Enter")
    page.wait_for_url("**/search/?q=*")


def test_a_person_is_found_by_employee_id_from_the_header_and_opened(
    logged_in, live_server, heidis
):
    page = logged_in
    page.goto(live_server.url + reverse("console:dashboard"))

    search_from_the_header(page, "1043")

    rows = page.locator("#search-mvos tr.jim-result-mvo")
    assert rows.count() == 1
    row_text = rows.first.inner_text()
    assert "Heidi Jones" in row_text and "hjones2" in row_text and "Legal" in row_text
    assert page.input_value("#jim-search-q") == "1043"  # the box keeps the query

    rows.first.get_by_role("link", name="Heidi Jones").click()

    mvo = heidis.mvo_of("1043")
    page.wait_for_url(live_server.url + reverse("console:mvo", args=[mvo.pk]))
    attributes = page.inner_text("#mvo-attributes")
    assert "1043" in attributes and "hjones2" in attributes


def test_results_fit_a_phone_without_scrolling_sideways(logged_in, live_server, heidis):
    page = logged_in
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + reverse("console:dashboard"))

    search_from_the_header(page, "Heidi Jones")

    assert page.locator("tr.jim-result-mvo").count() == 3
    assert page.locator("tr.jim-result-export").count() == 3
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"
    # Stacked: each cell is led by its column's name.
    first = page.locator("tr.jim-result-mvo td[data-label='employeeId']").first
    label = page.evaluate(
        "cell => getComputedStyle(cell, '::before').content", first.element_handle()
    )
    assert label == '"employeeId"'
