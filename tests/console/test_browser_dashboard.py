"""Operating from the dashboard, in a real headless Chromium (Debian's): an operator
runs a schedule (a cycle) now, sees its first step queued on the dashboard, follows it
to its live page and watches it finish there — Started and Finished filled in, the
end state shown — without a reload, while a real django-q2 cluster runs it; back on
the dashboard, the cycle's last step finishes and nothing is left running.

The cluster is the one the live-page tests use (:class:`tests.console.test_browser.QCluster`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from connectors.models import Activity, RunProfile, Schedule, ScheduleStep
from tests.builders import make_csv_system, people
from tests.console.browser import OPERATOR
from tests.console.test_browser import QCluster, never_reloaded, seen_states, watch_live_part
from tests.support import tail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: How long a real cluster may take to start and run a small import.
RUN_MS = 30_000
#: Rows of the HR file the schedule's first step imports.
ROWS = 1_000
#: A date and time as the activity page writes them.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[QCluster]:
    """A real django-q2 cluster, not started yet; stopped at teardown."""
    cluster = QCluster(tmp_path / "qcluster.log")
    yield cluster
    cluster.stop()


@pytest.fixture
def nightly(tmp_path: Path) -> Schedule:
    """A cycle of two steps: import HR, then import the badges."""
    hr = make_csv_system(tmp_path, people(ROWS), page_size=100)
    badges = make_csv_system(tmp_path, people(20), name="Badges", file_name="badges.csv")
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    for order, system in enumerate((hr, badges)):
        ScheduleStep.objects.create(
            schedule=schedule,
            order=order,
            run_profile=RunProfile.objects.get(connected_system=system),
        )
    return schedule


def wait_or_explain(page: Page, selector: str, cluster: QCluster) -> None:
    """Wait for ``selector``; on a timeout, fail with the runs' states and the cluster's log."""
    try:
        page.wait_for_selector(selector, timeout=RUN_MS)
    except PlaywrightTimeout:
        runs = [(a.pk, a.profile_name, a.status, a.message) for a in Activity.objects.all()]
        pytest.fail(f"{selector} never showed; runs {runs}; cluster log:\n{tail(cluster.log)}")


def test_run_a_schedule_from_the_dashboard_and_watch_it_finish(
    logged_in: Page, live_server, nightly: Schedule, cluster: QCluster
):
    page = logged_in
    dashboard = live_server.url + reverse("console:dashboard")
    page.goto(dashboard)
    assert "Nothing is running or queued." in page.text_content("#dashboard-runs")

    page.click("button[aria-label='Run Nightly now']")
    page.wait_for_selector(".messagelist >> text=Schedule Nightly handed to the workers")

    first = Activity.objects.get()
    assert (first.status, first.schedule, first.initiated_by.username) == (
        "queued",
        nightly,
        OPERATOR[0],
    )
    row = page.locator(f"#dashboard-runs #active-run-{first.pk}")
    assert row.get_attribute("data-status") == "queued"
    assert "HR" in row.text_content() and "Nightly" in row.text_content()
    assert "Running and queued: 1" in page.text_content("#dashboard-runs h2")

    row.locator(f"a:has-text('#{first.pk}')").click()
    page.wait_for_url(live_server.url + reverse("console:activity", args=[first.pk]))
    assert page.get_attribute("#activity-live", "data-status") == "queued"
    assert page.text_content("#activity-started").strip() == "—"
    assert page.text_content("#activity-finished").strip() == "—"
    watch_live_part(page)

    cluster.start()  # only now: the page has shown the run queued
    wait_or_explain(page, "#activity-live[data-status='complete']", cluster)

    assert never_reloaded(page)
    states = seen_states(page)
    assert states[0] == ("queued", 0) and states[-1] == ("complete", 100), states
    assert TIMESTAMP.match(page.text_content("#activity-started").strip())
    assert TIMESTAMP.match(page.text_content("#activity-finished").strip())
    assert page.get_attribute("#activity-live", "hx-trigger") is None  # polling stopped
    assert "Nightly" in page.text_content("#activity-facts")
    processed = page.text_content("#activity-live .jim-processed").split()
    assert processed[:3] == [str(ROWS), "of", str(ROWS)]
    assert page.is_visible("#activity-items h2")  # the RPEI list arrived out of band

    # Back on the dashboard: the cycle's second step runs, then nothing is left.
    page.goto(dashboard)
    page.evaluate("window.__notReloaded = true")
    wait_or_explain(page, "#dashboard-runs >> text=Nothing is running or queued.", cluster)
    last = Activity.objects.order_by("pk").last()
    assert (last.profile_name, last.connected_system.name, last.status) == (
        "Full Import",
        "Badges",
        "complete",
    )
    wait_or_explain(page, f"#schedule-{nightly.pk} a[href='/activities/{last.pk}/']", cluster)
    assert "Complete" in page.text_content(f"#schedule-{nightly.pk}")
    assert never_reloaded(page)
