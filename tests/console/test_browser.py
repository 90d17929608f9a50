"""The live activity page in a real headless Chromium (Debian's, never a downloaded one).

The page is driven against pytest-django's live server: an operator logs in through
the admin's login form, opens a running activity, and the test advances the activity
in the database as a run would. The progress bar must follow by HTMX polling, without
the page ever reloading, and polling must stop once the activity has finished.

The fixtures (``browser``, ``page``, ``logged_in``) are meant to be reused: a test that
starts a real run from the admin can log in the same way and then watch its activity
with :func:`progress_value` and :func:`wait_for_progress`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, sync_playwright

from connectors.models import Activity
from tests.console.builders import make_activity, make_run_profile, make_system

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPERATOR = ("operator", "pw-operator-browser")
#: How long to wait for the page to catch up with the database (polling is every 1 s).
CATCH_UP_MS = 10_000


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch) -> None:
    """Playwright's sync API runs an event loop in this thread; let the ORM run too."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(allow_orm_beside_playwright) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # Inside sync_playwright() the ORM runs in another context, with its own
        # connection: close it, or the test database cannot be dropped afterwards.
        connections.close_all()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(CATCH_UP_MS)
    yield page
    context.close()


@pytest.fixture
def logged_in(page: Page, live_server) -> Page:
    """``page`` logged in to the admin as a superuser, through the login form."""
    User.objects.create_superuser(OPERATOR[0], "operator@example.org", OPERATOR[1])
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", OPERATOR[0])
    page.fill("#id_password", OPERATOR[1])
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + reverse("admin:index"))
    return page


def progress_value(page: Page) -> float:
    """The value of the activity page's progress bar (0 to 100)."""
    return page.eval_on_selector("#activity-progress", "bar => bar.value")


def wait_for_progress(page: Page, at_least: float) -> float:
    """Wait until the progress bar shows at least ``at_least`` percent; return its value."""
    page.wait_for_function(
        "least => document.querySelector('#activity-progress').value >= least", arg=at_least
    )
    return progress_value(page)


def advance(activity: Activity, **fields) -> None:
    """Write progress as the activity recorder does: an update of the row."""
    Activity.objects.filter(pk=activity.pk).update(heartbeat_at=timezone.now(), **fields)


def test_progress_bar_follows_the_run_live_and_stops_polling_when_done(logged_in, live_server):
    page = logged_in
    activity = make_activity(
        make_run_profile(make_system("HR")),
        status="in_progress",
        phase="importing",
        started_seconds_ago=5,
        objects_total=1000,
        objects_processed=0,
    )
    activity_url = live_server.url + reverse("console:activity", args=[activity.pk])
    polls: list[str] = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if "activities" in request.url else None,
    )

    page.goto(activity_url)
    assert progress_value(page) == 0
    assert page.is_visible("button:has-text('Cancel')")
    page.evaluate("window.__marker = 1")

    seen = []
    for processed in (250, 500, 750):
        advance(activity, objects_processed=processed, counts={"added": processed})
        seen.append(wait_for_progress(page, processed / 10))
    assert seen == [25, 50, 75]
    assert page.text_content("#activity-live .jim-processed").split()[:3] == ["750", "of", "1000"]

    advance(
        activity,
        objects_processed=1000,
        counts={"added": 1000},
        status="complete",
        phase="done",
        finished_at=timezone.now(),
    )
    page.wait_for_selector("#activity-live[data-status='complete']")

    assert progress_value(page) == 100
    assert page.evaluate("window.__marker") == 1  # the page was never reloaded
    assert page.get_attribute("#activity-live", "hx-trigger") is None
    assert not page.is_visible("button:has-text('Cancel')")
    assert page.is_visible("#activity-items h2")  # the RPEI list arrived out of band

    polls_when_done = len(polls)
    page.wait_for_timeout(2_500)
    assert len(polls) == polls_when_done  # polling stopped
