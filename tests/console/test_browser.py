"""The live activity page in a real headless Chromium (Debian's, never a downloaded one).

The page is driven against pytest-django's live server: an operator logs in through
the admin's login form, opens a running activity, and the test advances the activity
in the database as a run would. The progress bar must follow by HTMX polling, without
the page ever reloading, and polling must stop once the activity has finished.

Then the whole way round (issue 6): the operator clicks a connected system's Run
button in the admin, lands on the queued activity's live page, a real django-q2
cluster (``manage.py qcluster`` on the test database) runs the import, and the bar
reaches complete by polling alone. And an approver approves pending exports in the
admin, through the bulk action and through a pending export's own Approve button.

The browser fixtures (``browser``, ``page``, ``logged_in``) are in
``tests/console/conftest.py``, the helpers they share in :mod:`tests.console.browser`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from connectors.models import Activity
from exports.models import ApprovalAuditEntry, PendingExport
from tests.builders import add_run_profile, make_connected_system, make_csv_system, people
from tests.console.browser import APPROVER, OPERATOR, log_in
from tests.console.builders import make_activity
from tests.support import die_with_parent, tail
from tests.support.postgres import subprocess_database_url
from tests.sync.scenario import build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: How long a real cluster may take to start and run a small import (about 2 s here).
RUN_MS = 30_000
#: Rows of the HR file a run from the admin imports.
ROWS = 2_000


class QCluster:
    """A real django-q2 cluster (``manage.py qcluster``, one worker) on the test database.

    It sees committed rows only, so its tests are transactional (as every browser test
    is: the live server answers from another thread). It gets SIGTERM if this process
    dies.
    """

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "DATABASE_URL": subprocess_database_url(), "JIM_Q_WORKERS": "1"}
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=settings.BASE_DIR,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()  # the cluster stops its workers, then itself
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture
def qcluster(tmp_path: Path) -> Iterator[QCluster]:
    """A :class:`QCluster`, not started yet; stopped at teardown."""
    cluster = QCluster(tmp_path / "qcluster.log")
    yield cluster
    cluster.stop()


def progress_value(page: Page) -> float:
    """The value of the activity page's progress bar (0 to 100)."""
    return page.eval_on_selector("#activity-progress", "bar => bar.value")


def wait_for_progress(page: Page, at_least: float) -> float:
    """Wait until the progress bar shows at least ``at_least`` percent; return its value."""
    page.wait_for_function(
        "least => document.querySelector('#activity-progress').value >= least", arg=at_least
    )
    return progress_value(page)


#: Records each state the live part shows, as "status:progress", from now on; sets a
#: marker that a reload of the page would lose.
WATCH_LIVE_PART = """() => {
    window.__notReloaded = true;
    window.__states = [];
    const record = () => {
        const live = document.querySelector('#activity-live');
        const bar = document.querySelector('#activity-progress');
        if (!live || !bar) return;
        const state = live.dataset.status + ':' + bar.value;
        if (window.__states[window.__states.length - 1] !== state) window.__states.push(state);
    };
    record();
    new MutationObserver(record).observe(
        document.body, {childList: true, subtree: true, attributes: true}
    );
}"""


def watch_live_part(page: Page) -> None:
    """Start recording the activity page's states (see :func:`seen_states`)."""
    page.evaluate(WATCH_LIVE_PART)


def seen_states(page: Page) -> list[tuple[str, float]]:
    """(status, progress) of every state the live part showed since :func:`watch_live_part`."""
    states = page.evaluate("window.__states")
    return [(status, float(value)) for status, value in (s.split(":") for s in states)]


def never_reloaded(page: Page) -> bool:
    return page.evaluate("window.__notReloaded === true")


def advance(activity: Activity, **fields) -> None:
    """Write progress as the activity recorder does: an update of the row."""
    Activity.objects.filter(pk=activity.pk).update(heartbeat_at=timezone.now(), **fields)


def test_progress_bar_follows_the_run_live_and_stops_polling_when_done(logged_in, live_server):
    page = logged_in
    activity = make_activity(
        add_run_profile(make_connected_system("HR", profiles=()), "full_import"),
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


def test_run_from_the_admin_is_followed_live_to_complete(
    logged_in, live_server, tmp_path, qcluster
):
    page = logged_in
    system = make_csv_system(tmp_path, people(ROWS), page_size=100)
    page.goto(
        live_server.url + reverse("admin:connectors_connectedsystem_change", args=[system.pk])
    )

    page.click("button:has-text('Run Full Import')")
    page.wait_for_url(re.compile(r"/activities/\d+/$"))

    activity = Activity.objects.get()
    assert page.url == live_server.url + reverse("console:activity", args=[activity.pk])
    assert (activity.status, activity.initiated_by.username) == ("queued", OPERATOR[0])
    assert activity.task_id  # handed to the cluster's queue
    assert "Queued Full Import of HR" in page.text_content(".messagelist")
    assert page.get_attribute("#activity-live", "data-status") == "queued"
    assert page.get_attribute("#activity-live", "hx-trigger") == "every 1s"
    watch_live_part(page)

    qcluster.start()  # only now: the page has shown the run queued
    try:
        page.wait_for_selector("#activity-live[data-status='complete']", timeout=RUN_MS)
    except PlaywrightTimeout:
        activity.refresh_from_db()
        pytest.fail(
            f"activity {activity.status} {activity.message!r}; cluster log:\n" + tail(qcluster.log)
        )

    assert never_reloaded(page)
    states = seen_states(page)
    assert states[0] == ("queued", 0) and states[-1] == ("complete", 100), states
    assert [s for s, _ in states] == sorted(
        (s for s, _ in states), key=["queued", "in_progress", "complete"].index
    ), states
    assert [p for _, p in states] == sorted(p for _, p in states), states  # never backwards
    assert progress_value(page) == 100
    processed = page.text_content("#activity-live .jim-processed").split()
    assert processed[:3] == [str(ROWS), "of", str(ROWS)]
    assert page.get_attribute("#activity-live", "hx-trigger") is None  # polling stopped
    assert page.is_visible("#activity-items h2")  # the RPEI list arrived out of band
    activity.refresh_from_db()
    assert (activity.status, activity.counts) == ("complete", {"added": ROWS})
    assert system.cs_objects.count() == ROWS


@pytest.fixture
def awaiting() -> list[PendingExport]:
    """Two creates for the directory, awaiting approval (its policy: ``all``)."""
    scenario = build_scenario(approval_mode="all")
    scenario.hr_row("1", accountName="ada", firstName="Ada", lastName="Lovelace")
    scenario.hr_row("2", accountName="alan", firstName="Alan", lastName="Turing")
    scenario.sync()
    exports = list(PendingExport.objects.order_by("pk"))
    assert [(pe.change_type, pe.approval) for pe in exports] == [
        ("create", "awaiting_approval")
    ] * 2
    return exports


@pytest.fixture
def approver(page: Page, live_server) -> Page:
    """``page`` logged in as a member of the "Approvers" group (staff, not superuser)."""
    user = User.objects.create_user(APPROVER[0], password=APPROVER[1], is_staff=True)
    user.groups.add(Group.objects.get(name="Approvers"))
    return log_in(page, live_server, *APPROVER)


def test_approver_approves_pending_exports_in_the_admin(approver, live_server, awaiting):
    page = approver
    ada, alan = awaiting
    changelist = live_server.url + reverse("admin:exports_pendingexport_changelist")

    # The bulk action on the changelist, for Ada's create.
    page.goto(changelist)
    page.check(f"input.action-select[value='{ada.pk}']")
    page.select_option("select[name=action]", "approve_selected")
    page.click("button[name=index]")
    page.wait_for_selector("text=Approve pending exports")
    assert page.locator(".jim-decision").count() == 1  # only the selected export
    decision = page.text_content(".jim-decision")  # before → after, attribute by attribute
    assert "uid=ada,ou=people,dc=example,dc=org" in decision and "Ada Lovelace" in decision
    page.fill("#id_reason", "joiner, contract signed")
    page.click("input[type=submit][value='Approve 1']")
    page.wait_for_selector(".messagelist >> text=Approved 1 pending export(s).")
    assert page.url.startswith(changelist)

    # The Approve… button of Alan's own page.
    page.goto(live_server.url + reverse("admin:exports_pendingexport_change", args=[alan.pk]))
    page.click("a:has-text('Approve…')")
    page.wait_for_selector("input[type=submit][value='Approve 1']")
    assert "uid=alan,ou=people,dc=example,dc=org" in page.text_content(".jim-decision")
    page.fill("#id_reason", "joiner too")
    page.click("input[type=submit][value='Approve 1']")
    page.wait_for_selector(".messagelist >> text=Approved 1 pending export(s).")
    assert not page.is_visible("a:has-text('Approve…')")  # decided: no more buttons

    alice = User.objects.get(username=APPROVER[0])
    decided = {
        pe.pk: (pe.approval, pe.approved_by, pe.approval_reason, pe.approved_at is not None)
        for pe in PendingExport.objects.all()
    }
    assert decided == {
        ada.pk: ("approved", alice, "joiner, contract signed", True),
        alan.pk: ("approved", alice, "joiner too", True),
    }
    trail = ApprovalAuditEntry.objects.order_by("at", "pk")
    assert [(e.pending_export_ref, e.action, e.user, e.username, e.reason) for e in trail] == [
        (ada.pk, "approved", alice, "alice", "joiner, contract signed"),
        (alan.pk, "approved", alice, "alice", "joiner too"),
    ]
    assert trail[0].target == "uid=ada,ou=people,dc=example,dc=org"
    assert {c["attribute"] for c in trail[0].changes} >= {"uid", "cn", "sn"}
