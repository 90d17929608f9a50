"""Every console page readable in Debian's Chromium: axe-core's WCAG A/AA checks, no sideways
scroll, and a screenshot of each page for the README and docs.

The pages are data (:data:`PAGES`): a name, how to reach it in the data :func:`console_data`
builds, and whether it must also be usable at 375 px (phone width). Adding a page is one
line. axe-core comes bundled with axe-playwright-python, so the check runs offline. Every
rule counts on every element, the admin's own markup included: nothing is excluded (the
admin's unlabelled inline inputs got labels, see :mod:`console.admin.layout`).

Screenshots go to ``$JIM_SCREENSHOTS`` (default ``build/screenshots/``), one PNG per page
and width, named ``<page>-<width>.png``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.db.models import F
from django.urls import reverse
from playwright.sync_api import Page

from connectors.choices import ActivityStatus, CsoStatus, RunProfileType
from connectors.models import Activity, RunProfileExecutionItem
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.builders import add_run_profile
from tests.console.builders import make_activity
from tests.sync.scenario import Scenario, build_scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: The two widths every page is checked at: a laptop and a phone.
WIDE, NARROW = 1280, 375
#: The WCAG 2.1 A and AA rules axe-core knows (2.2's target size is left out: the admin's
#: filter lists and inline links are Django's own compact markup).
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: Impacts that fail the test (besides colour contrast, which fails at any impact).
BLOCKING = {"serious", "critical"}


@dataclass(frozen=True)
class ConsoleData:
    """What the pages show: the demo's shape in small."""

    scenario: Scenario
    sync: Activity
    errors: Activity
    heidi: MetaverseObject
    update: PendingExport


@dataclass(frozen=True)
class ConsolePage:
    """A page to check: its name (also the screenshot's), its URL, phone-width too or not,
    and the elements (a list's key columns) that must show at 1,280 px without scrolling."""

    name: str
    url: Callable[[ConsoleData], str]
    narrow: bool = False
    in_view: tuple[str, ...] = ()


PAGES = [
    ConsolePage("dashboard", lambda d: reverse("console:dashboard"), narrow=True),
    ConsolePage("activity", lambda d: reverse("console:activity", args=[d.sync.pk]), narrow=True),
    ConsolePage(
        "activity-errors", lambda d: reverse("console:activity", args=[d.errors.pk]), narrow=True
    ),
    ConsolePage("mvo", lambda d: reverse("console:mvo", args=[d.heidi.pk]), narrow=True),
    ConsolePage(
        "run-profile-history",
        lambda d: reverse("console:run-profile-history", args=[d.errors.run_profile_id]),
    ),
    ConsolePage("search", lambda d: reverse("console:search") + "?q=Heidi"),
    ConsolePage("admin-index", lambda d: reverse("admin:index")),
    ConsolePage(
        "connected-system",
        lambda d: reverse("admin:connectors_connectedsystem_change", args=[d.scenario.hr.pk]),
    ),
    ConsolePage(
        "sync-rule",
        lambda d: reverse("admin:metaverse_syncrule_change", args=[d.scenario.dir_out.pk]),
    ),
    ConsolePage(
        "pending-exports",
        lambda d: reverse("admin:exports_pendingexport_changelist"),
        in_view=("th.column-target", "th.column-status", "th.column-approval"),
    ),
    ConsolePage(
        "pending-export",
        lambda d: reverse("admin:exports_pendingexport_change", args=[d.update.pk]),
        narrow=True,
    ),
    ConsolePage(
        "activities",
        lambda d: reverse("admin:connectors_activity_changelist"),
        in_view=("th.column-duration", "th.column-processed", "th.column-error_count"),
    ),
    ConsolePage(
        "metaverse-objects",
        lambda d: reverse("admin:metaverse_metaverseobject_changelist") + "?q=Heidi",
        in_view=tuple(f"th.column-jim_attribute_{n}" for n in range(3)),
    ),
]


def screenshots_folder() -> Path:
    folder = Path(os.environ.get("JIM_SCREENSHOTS") or settings.BASE_DIR / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def console_data() -> ConsoleData:
    """Three people named Heidi Jones, one provisioned and renamed (an update awaits
    approval), HR runs with errors in their history."""
    scenario = build_scenario(approval_mode="all")
    for employee_id, account, department in [
        ("1001", "hjones", "Sales"),
        ("1002", "hjones2", "Finance"),
        ("1003", "hjones3", "Legal"),
    ]:
        scenario.hr_row(
            employee_id,
            firstName="Heidi",
            lastName="Jones",
            accountName=account,
            department=department,
        )
    for number in range(1010, 1022):
        scenario.hr_row(str(number), firstName="Person", lastName=f"Number {number}")
    scenario.sync()
    _confirm_provisioning(scenario, "1001")
    scenario.update_hr("1001", lastName="Jones-Okafor")
    sync = scenario.sync(delta=True)
    return ConsoleData(
        scenario=scenario,
        sync=sync,
        errors=_import_history(scenario),
        heidi=scenario.mvo_of("1001"),
        update=scenario.export_of("1001"),
    )


def _confirm_provisioning(scenario: Scenario, employee_id: str) -> None:
    """As if the create had been exported and the confirming import had seen it."""
    target = scenario.dir_cso_of(employee_id)
    create = PendingExport.objects.get(cs_object=target)
    target.attributes = {c.attribute: c.values for c in create.attribute_changes.all()}
    target.status = CsoStatus.NORMAL
    target.external_id = f"uuid-{employee_id}"
    target.sync_pending = False
    target.save()
    create.delete()


def _import_history(scenario: Scenario) -> Activity:
    """A week of HR full imports; the last one met seven errors."""
    profile = add_run_profile(scenario.hr, RunProfileType.FULL_IMPORT)
    for day in range(7, 0, -1):
        make_activity(
            profile,
            phase="done",
            started_seconds_ago=day * 86_400,
            duration=0.4 + day,
            objects_total=15,
            objects_processed=15,
            counts={"updated": day},
        )
    last = make_activity(
        profile,
        status=ActivityStatus.COMPLETE_WITH_ERRORS,
        phase="done",
        started_seconds_ago=600,
        duration=12,
        objects_total=22,
        objects_processed=22,
        counts={"added": 15},
        error_count=7,
    )
    RunProfileExecutionItem.objects.bulk_create(
        RunProfileExecutionItem(
            activity=last,
            error_type="duplicate_object",
            external_id=f"10{n:02d}",
            message=f"Employee id 10{n:02d} is given to two rows (lines {n} and {n + 40}): "
            "fix the HR file, then import again.",
        )
        for n in range(7)
    )
    # Queued when they started (make_activity queues them now).
    Activity.objects.filter(run_profile=profile).update(created_at=F("started_at"))
    return last


def _violations(page: Page) -> list[str]:
    """axe-core's blocking WCAG A/AA violations on ``page``, one line per element."""
    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]},
    )
    found = []
    for violation in results.response["violations"]:
        if violation["id"] != "color-contrast" and violation["impact"] not in BLOCKING:
            continue
        for node in violation["nodes"]:
            found.append(
                f"{violation['id']} ({violation['impact']}): {node['target']} — "
                f"{node.get('failureSummary', '').splitlines()[-1:]}"
            )
    return found


#: Whether an element shows without scrolling: inside the window and inside every
#: scrolling box around it.
IN_VIEW = """(selector) => {
  const element = document.querySelector(selector);
  if (!element) return "missing";
  let right = document.documentElement.clientWidth;
  for (let box = element.parentElement; box; box = box.parentElement) {
    if (getComputedStyle(box).overflowX !== "visible") {
      right = Math.min(right, box.getBoundingClientRect().right);
    }
  }
  return element.getBoundingClientRect().right <= right + 1 ? "" : "off the right edge";
}"""


def _out_of_view(page: Page, selectors: tuple[str, ...]) -> list[str]:
    """The elements of ``selectors`` that do not show without scrolling, and why."""
    return [
        f"{selector} is {why}"
        for selector in selectors
        if (why := page.evaluate(IN_VIEW, selector))
    ]


def _sideways_scroll(page: Page) -> int:
    """How many pixels the page is wider than the window (0: no sideways scroll)."""
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


#: The elements that stick out of the window while their parent does not: where a
#: sideways scroll starts (what to fix).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const out = (e) => e.getBoundingClientRect().right > width + 1;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + [...e.classList].map((c) => "." + c).join("");
  return [...document.body.querySelectorAll("*")]
    .filter((e) => out(e) && !out(e.parentElement)
      && getComputedStyle(e.parentElement).overflowX === "visible")
    .slice(0, 5)
    .map((e) => name(e.parentElement) + " > " + name(e)
      + " (" + Math.round(e.getBoundingClientRect().right) + " px)");
}"""


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_console_pages_are_readable(logged_in, live_server, console_data, width, theme):
    page = logged_in
    page.set_viewport_size({"width": width, "height": 800})
    page.emulate_media(color_scheme=theme)
    folder = screenshots_folder()
    problems: dict[str, list[str]] = {}
    for console_page in PAGES:
        page.goto(live_server.url + console_page.url(console_data))
        page.wait_for_load_state("networkidle")
        found = _violations(page)
        if (width == WIDE or console_page.narrow) and (overflow := _sideways_scroll(page)):
            found.append(
                f"the page scrolls sideways by {overflow} px: "
                + ", ".join(page.evaluate(OVERFLOWING))
            )
        if width == WIDE:
            found += _out_of_view(page, console_page.in_view)
        if found:
            problems[console_page.name] = found
        if theme == "light":
            page.screenshot(path=folder / f"{console_page.name}-{width}.png")
    assert not problems, "\n".join(
        f"{name} at {width} px, {theme}:\n  " + "\n  ".join(lines)
        for name, lines in problems.items()
    )
