"""The sync dashboard: counts per connected system, last runs, exports, in fixed queries."""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from audit.models import AuditEntry
from connectors.choices import RunProfileType
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfile,
    Schedule,
    ScheduleStep,
)
from exports.models import PendingExport
from tests.builders import add_run_profile, make_connected_system, make_csv_system, people
from tests.console.builders import HTMX, make_activity, make_cso, make_mvo, require_admin_for

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"


def populate(system_name: str, objects: int = 3) -> dict:
    """A system with joined, unjoined and obsolete CSOs, two run profiles and exports."""
    system = make_connected_system(system_name, profiles=())
    joined = [
        make_cso(system, f"{system_name}-j{i}", mvo=make_mvo(f"{system_name} {i}"))
        for i in range(objects)
    ]
    unjoined = make_cso(system, f"{system_name}-u1")
    make_cso(system, f"{system_name}-o1", status="obsolete")
    import_profile = add_run_profile(system, "full_import")
    add_run_profile(system, "export")  # never run
    make_activity(import_profile, started_seconds_ago=3600, error_count=9)
    latest = make_activity(import_profile, started_seconds_ago=120, duration=65, error_count=3)
    PendingExport.objects.create(connected_system=system, cs_object=joined[0], change_type="update")
    PendingExport.objects.create(
        connected_system=system,
        cs_object=unjoined,
        change_type="delete",
        approval="awaiting_approval",
    )
    return {"system": system, "latest": latest}


def section_of(html: str, section_id: str) -> str:
    """The HTML of the dashboard's section ``section_id``, up to its end."""
    start = html.index(f'id="{section_id}"')
    return html[start : html.index("</section>", start)]


def system_section(html: str, system) -> str:
    start = html.index(f'id="system-{system.pk}"')
    end = html.find('<section class="module jim-system"', start)
    return html[start : end if end != -1 else len(html)]


# -- access ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/", DASHBOARD])
def test_anonymous_user_is_sent_to_the_admin_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={url}"


def test_user_who_is_not_staff_is_sent_to_the_login(client, outsider):
    client.force_login(outsider)

    response = client.get(DASHBOARD)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_view_permission_is_refused(client):
    client.force_login(User.objects.create_user("bare", password="x", is_staff=True))

    assert client.get(DASHBOARD).status_code == 403


def test_htmx_poll_after_logout_redirects_the_whole_page(client):
    response = client.get(DASHBOARD, headers=HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("admin:login"))


def test_root_and_dashboard_url_serve_the_same_page(viewer_client):
    populate("HR")

    assert reverse("console:dashboard") == DASHBOARD
    for url in ("/", DASHBOARD):
        response = viewer_client.get(url)
        assert response.status_code == 200
        assert "Sync dashboard" in response.text


# -- content -----------------------------------------------------------------------------


def test_dashboard_counts_csos_by_status_and_join(viewer_client):
    hr = populate("HR", objects=3)["system"]
    populate("Directory", objects=1)

    html = viewer_client.get(DASHBOARD).text
    section = system_section(html, hr)

    assert re.search(r'<th scope="row">Joined</th><td class="jim-number"><a [^>]*>3</a>', section)
    assert re.search(
        r'<th scope="row">Not joined</th><td class="jim-number"><a [^>]*>2</a>', section
    )
    assert re.search(r'<th scope="row">Total</th><td class="jim-number"><a [^>]*>5</a>', section)
    summary = viewer_client.get(DASHBOARD).context["summaries"]
    by_name = {s.system.name: s for s in summary}
    assert by_name["HR"].cso_by_status == {"normal": 4, "obsolete": 1}
    assert (by_name["Directory"].joined, by_name["Directory"].not_joined) == (1, 2)


def test_dashboard_shows_the_last_run_of_each_run_profile(viewer_client):
    data = populate("HR")
    latest = data["latest"]

    section = system_section(viewer_client.get(DASHBOARD).text, data["system"])

    assert f'href="/activities/{latest.pk}/"' in section
    assert f"#{latest.pk}" in section
    assert "1 min 05 s" in section  # how long the last run took
    assert "Never run" in section  # the export profile
    assert f'href="/activities/{latest.pk - 1}/"' not in section  # the older run


def test_dashboard_links_errors_of_the_last_runs(viewer_client):
    data = populate("HR")
    latest = data["latest"]

    section = system_section(viewer_client.get(DASHBOARD).text, data["system"])

    assert f'href="/activities/{latest.pk}/?error_type=any">3</a>' in section
    assert "3 errors in the last runs" in section  # not the 9 of the older run


def test_dashboard_counts_pending_exports_and_approvals(viewer_client):
    data = populate("HR")

    summaries = viewer_client.get(DASHBOARD).context["summaries"]

    [hr] = [s for s in summaries if s.system == data["system"]]
    assert hr.pending_exports_by_status == {"pending": 2}
    assert hr.awaiting_approval == 1


def test_pending_export_counts_link_to_the_filtered_admin_changelist(viewer_client):
    require_admin_for(PendingExport, ConnectorSpaceObject)
    system = populate("HR")["system"]

    section = system_section(viewer_client.get(DASHBOARD).text, system)

    changelist = reverse("admin:exports_pendingexport_changelist")
    assert (
        f"{changelist}?connected_system__id__exact={system.pk}&amp;approval__exact=awaiting_approval"
        in section
    )
    assert f"{changelist}?connected_system__id__exact={system.pk}&amp;status__exact=pending" in (
        section
    )


# -- failed exports ----------------------------------------------------------------------


def fail(system, external_id: str, error: str, *, seconds_ago: float = 0) -> PendingExport:
    """A failed create, as an export run leaves it after its last attempt."""
    cso = make_cso(system, external_id, status="pending_provisioning")
    pe = PendingExport.objects.create(
        connected_system=system,
        cs_object=cso,
        change_type="create",
        dn=f"uid={external_id},ou=people,dc=example,dc=org",
        status="failed",
        error_count=5,
        last_error=error,
    )
    PendingExport.objects.filter(pk=pe.pk).update(
        updated_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return pe


def test_failed_exports_are_shown_with_their_last_error_and_a_way_to_act(viewer_client):
    require_admin_for(PendingExport, ConnectorSpaceObject)
    hr = populate("HR")["system"]
    directory = make_connected_system("Directory", "ldap", profiles=())
    older = fail(directory, "old", "insufficientAccessRights: no write access", seconds_ago=7200)
    newer = fail(directory, "new", "objectClassViolation: sn is required", seconds_ago=60)

    html = viewer_client.get(DASHBOARD).text

    panel = section_of(html, "failed-exports")
    assert "Failed exports: 2" in panel
    assert panel.index("objectClassViolation: sn is required") < panel.index(
        "insufficientAccessRights: no write access"
    )  # most recent first
    assert "uid=new,ou=people,dc=example,dc=org" in panel
    changelist = reverse("admin:exports_pendingexport_changelist")
    assert f'href="{changelist}?status__exact=failed"' in panel
    assert (
        f'href="{changelist}?connected_system__id__exact={directory.pk}&amp;status__exact=failed">'
        "2 failed</a>"
    ) in panel
    for pe in (older, newer):
        assert f'href="{reverse("admin:exports_pendingexport_change", args=[pe.pk])}"' in panel
    assert "HR:" not in panel  # no failed exports there
    section = system_section(html, directory)
    assert '<tr class="jim-attention"><th scope="row">Failed</th>' in section
    assert "Failed exports" not in system_section(html, hr)


def test_the_most_recent_failed_exports_only_are_listed(viewer_client):
    directory = make_connected_system("Directory", "ldap", profiles=())
    for n in range(12):
        fail(directory, f"p{n}", f"error {n}", seconds_ago=1000 - n)

    failed = viewer_client.get(DASHBOARD).context["failed"]

    assert failed.total == 12
    assert [item.export.last_error for item in failed.recent] == [
        f"error {n}" for n in range(11, 1, -1)
    ]
    assert "Most recent (10 of 12)" in viewer_client.get(DASHBOARD).text


def test_no_failed_exports_no_panel(viewer_client):
    populate("HR")

    html = viewer_client.get(DASHBOARD).text

    assert 'id="failed-exports"' not in html


def test_failed_exports_panel_is_refreshed_with_the_partial(viewer_client):
    fail(make_connected_system("Directory", "ldap", profiles=()), "p", "refused")

    response = viewer_client.get(DASHBOARD, headers=HTMX)

    assert 'id="failed-exports"' in response.text


def test_dashboard_with_no_systems_says_how_to_add_them(viewer_client):
    assert "jim apply" in viewer_client.get(DASHBOARD).text


def test_htmx_request_gets_the_refreshing_partial_only(viewer_client):
    populate("HR")

    response = viewer_client.get(DASHBOARD, headers=HTMX)

    assert "<html" not in response.text
    assert 'id="dashboard-systems"' in response.text
    assert 'hx-trigger="every 5s"' in response.text


# -- queries -----------------------------------------------------------------------------


def test_dashboard_runs_as_many_queries_with_five_systems_as_with_one(
    operator_client, django_assert_max_num_queries
):
    def add_system(n: int) -> None:
        data = populate(f"S{n}", objects=n * 4 + 1)
        fail(data["system"], f"f{n}", "refused")
        profiles = list(RunProfile.objects.filter(connected_system=data["system"]))
        make_activity(profiles[0], status="in_progress", started_seconds_ago=5, duration=None)
        make_activity(profiles[1], status="queued")
        schedule = make_schedule(f"Cycle {n}", *profiles)
        Activity.objects.filter(pk=data["latest"].pk).update(schedule=schedule)

    add_system(0)
    with CaptureQueriesContext(connection) as one_system:
        operator_client.get(DASHBOARD)

    for n in range(1, 5):
        add_system(n)
    with (
        django_assert_max_num_queries(len(one_system)),
        CaptureQueriesContext(connection) as five_systems,
    ):
        response = operator_client.get(DASHBOARD)

    assert response.status_code == 200
    assert len(response.context["summaries"]) == 5 and len(response.context["schedules"]) == 5
    assert len(response.context["active_runs"]) == 10
    assert len(five_systems) == len(one_system) <= 20


def test_failed_exports_cost_one_query_and_only_when_there_are_some(viewer_client):
    populate("S0", objects=1)
    with CaptureQueriesContext(connection) as no_failures:
        viewer_client.get(DASHBOARD)
    fail(make_connected_system("F0", profiles=()), "f0", "refused")
    with CaptureQueriesContext(connection) as failures:
        viewer_client.get(DASHBOARD)

    assert len(failures) == len(no_failures) + 1


def test_the_runs_panel_poll_is_one_query_for_any_number_of_runs(
    viewer_client, django_assert_max_num_queries
):
    profile = add_run_profile(make_connected_system("HR", profiles=()), "full_import")
    make_activity(profile, status="queued")
    with CaptureQueriesContext(connection) as one:
        viewer_client.get(RUNS, headers=HTMX)
    for n in range(5):
        system = make_connected_system(f"S{n}", profiles=())
        make_activity(add_run_profile(system, "full_import"), status="queued")

    with django_assert_max_num_queries(len(one)):
        viewer_client.get(RUNS, headers=HTMX)


def test_admin_home_links_to_the_dashboard(viewer_client):
    html = viewer_client.get(reverse("admin:index")).text

    assert f'<a href="{DASHBOARD}">Sync dashboard</a>' in html


# -- running and queued ------------------------------------------------------------------

RUNS = "/dashboard/runs/"


def test_runs_in_progress_come_first_then_the_queued_ones_with_their_live_pages(viewer_client):
    profile = add_run_profile(make_connected_system("HR", profiles=()), "full_import")
    sync = add_run_profile(make_connected_system("Directory", profiles=()), "full_sync")
    queued = make_activity(profile, status="queued", initiated_by_name="operator")
    running = make_activity(
        sync,
        status="in_progress",
        phase="synchronising",
        started_seconds_ago=30,
        objects_total=200,
        objects_processed=50,
    )
    make_activity(profile)  # finished: not listed

    html = viewer_client.get(DASHBOARD).text

    panel = section_of(html, "dashboard-runs")
    assert "Running and queued: 2" in panel
    assert panel.index(f'id="active-run-{running.pk}"') < panel.index(
        f'id="active-run-{queued.pk}"'
    )
    for activity in (running, queued):
        assert f'href="{reverse("console:activity", args=[activity.pk])}"' in panel
    assert "Synchronising" in panel and "50 of 200 (25 %)" in panel
    assert "running for 30 s" in panel


def test_the_runs_panel_polls_itself_every_two_seconds(viewer_client):
    response = viewer_client.get(RUNS, headers=HTMX)

    assert "<html" not in response.text
    section = re.search(r'<section id="dashboard-runs"[^>]*>', response.text).group(0)
    assert f'hx-get="{RUNS}"' in section and 'hx-trigger="every 2s"' in section
    assert "Nothing is running or queued." in response.text


def test_the_runs_panel_needs_the_dashboard_permission(client):
    client.force_login(User.objects.create_user("bare", password="x", is_staff=True))

    assert client.get(RUNS).status_code == 403


# -- awaiting approval -------------------------------------------------------------------


def test_exports_awaiting_approval_are_counted_with_links_to_approve_them(viewer_client):
    require_admin_for(PendingExport)
    hr = populate("HR")["system"]
    populate("Directory")

    html = viewer_client.get(DASHBOARD).text

    panel = section_of(html, "awaiting-approval")
    assert "Awaiting approval: 2" in panel
    changelist = reverse("admin:exports_pendingexport_changelist")
    assert f'href="{changelist}?approval__exact=awaiting_approval"' in panel
    assert (
        f'href="{changelist}?connected_system__id__exact={hr.pk}&amp;approval__exact=awaiting_approval">'
        "1 awaiting approval</a>"
    ) in panel


def test_no_exports_awaiting_approval_no_panel(viewer_client):
    make_connected_system("HR", profiles=())

    assert 'id="awaiting-approval"' not in viewer_client.get(DASHBOARD).text


# -- links -------------------------------------------------------------------------------


def test_system_names_link_to_their_system(viewer_client):
    require_admin_for(ConnectedSystem)
    hr = populate("HR")["system"]

    section = system_section(viewer_client.get(DASHBOARD).text, hr)

    url = reverse("admin:connectors_connectedsystem_change", args=[hr.pk])
    assert f'<h2><a href="{url}">HR</a>' in section


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("not_joined", {"HR-u1", "HR-o1"}),
        ("joined", {"HR-j0", "HR-j1", "HR-j2"}),
        ("cso_total", {"HR-j0", "HR-j1", "HR-j2", "HR-u1", "HR-o1"}),
    ],
)
def test_join_counts_open_the_csos_behind_them(viewer_client, number, expected):
    require_admin_for(ConnectorSpaceObject)
    hr = populate("HR", objects=3)["system"]
    populate("Directory", objects=1)
    response = viewer_client.get(DASHBOARD)
    [summary] = [s for s in response.context["summaries"] if s.system == hr]
    url = getattr(summary, f"{number}_url")

    assert f'<a href="{html_module.escape(url)}">{len(expected)}</a>' in system_section(
        response.text, hr
    )
    listed = viewer_client.get(url)
    assert listed.status_code == 200  # a lookup the admin refuses redirects with ?e=1
    assert {cso.external_id for cso in listed.context["cl"].result_list} == expected


def test_objects_of_the_last_run_link_to_its_activity(viewer_client):
    data = populate("HR")
    Activity.objects.filter(pk=data["latest"].pk).update(objects_processed=77)

    section = system_section(viewer_client.get(DASHBOARD).text, data["system"])

    assert f'<a href="/activities/{data["latest"].pk}/">77</a>' in section


# -- running profiles and schedules ------------------------------------------------------


def make_schedule(name: str, *profiles: RunProfile, **fields) -> Schedule:
    schedule = Schedule.objects.create(name=name, cron="0 2 * * *", **fields)
    for order, profile in enumerate(profiles):
        ScheduleStep.objects.create(schedule=schedule, order=order, run_profile=profile)
    return schedule


def run_url(profile: RunProfile) -> str:
    return reverse("console:run-profile-run", args=[profile.pk])


def schedule_url(schedule: Schedule) -> str:
    return reverse("console:schedule-run", args=[schedule.pk])


def queued_tasks() -> list[tuple[str, tuple]]:
    return [(q.task["func"], q.task["args"]) for q in OrmQ.objects.all()]


def test_operators_get_run_buttons_for_every_profile_and_schedule(runner):
    hr = populate("HR")["system"]
    profiles = list(RunProfile.objects.filter(connected_system=hr))
    schedule = make_schedule("Nightly", *profiles)

    html = runner.get(DASHBOARD).text

    for profile in profiles:
        assert f'action="{run_url(profile)}"' in html
        assert f'aria-label="Run {profile.name} of HR"' in html
    assert f'action="{schedule_url(schedule)}"' in html
    assert 'aria-label="Run Nightly now"' in html


def test_readers_see_no_run_buttons_and_are_refused(reader):
    hr = populate("HR")["system"]
    profile = RunProfile.objects.filter(connected_system=hr).first()
    schedule = make_schedule("Nightly", profile)

    html = reader.get(DASHBOARD).text

    assert "/run/" not in html and "Run now" not in html
    assert reader.post(run_url(profile)).status_code == 403
    assert reader.post(schedule_url(schedule)).status_code == 403
    assert not Activity.objects.filter(status="queued").exists()
    assert queued_tasks() == []


def test_run_buttons_are_post_only(runner):
    profile = add_run_profile(make_connected_system("HR", profiles=()), "full_import")

    assert runner.get(run_url(profile)).status_code == 405
    assert not Activity.objects.exists()


def test_run_queues_the_profile_for_the_workers_as_the_admin_does(runner, operator_role):
    hr = populate("HR")["system"]
    profile = RunProfile.objects.get(connected_system=hr, profile_type="export")

    response = runner.post(run_url(profile), follow=True)

    activity = Activity.objects.get(status="queued")
    assert response.redirect_chain == [(DASHBOARD, 302)]
    assert (activity.run_profile, activity.initiated_by) == (profile, operator_role)
    assert queued_tasks() == [("runs.tasks.execute_activity", (activity.pk,))]
    assert activity.task_id
    entry = AuditEntry.objects.get(action="run_started", object_id=str(activity.pk))
    assert (entry.actor, entry.via) == (operator_role, "console")
    text = response.content.decode()
    assert (
        f'Queued Export of HR as <a href="/activities/{activity.pk}/">activity #{activity.pk}</a>'
        in text
    )
    assert f'id="active-run-{activity.pk}" data-status="queued"' in text


def test_run_of_an_unknown_profile_is_404(runner):
    assert runner.post("/run-profiles/999999/run/").status_code == 404


def test_run_now_queues_the_schedules_first_step_at_once(runner, operator_role):
    hr = make_connected_system(
        "HR", profiles=(RunProfileType.FULL_IMPORT, RunProfileType.FULL_SYNC)
    )
    first, second = RunProfile.objects.filter(connected_system=hr).order_by("name")
    schedule = make_schedule("Nightly", first, second, enabled=False)  # disabled: runs anyway

    response = runner.post(schedule_url(schedule), follow=True)

    activity = Activity.objects.get()
    assert (activity.status, activity.run_profile, activity.schedule) == ("queued", first, schedule)
    assert activity.initiated_by == operator_role
    assert activity.initiated_by_name == "olga (schedule Nightly, run now)"
    assert queued_tasks() == [("runs.tasks.run_schedule", (schedule.pk, activity.pk))]
    entry = AuditEntry.objects.get(action="run_started")
    assert (entry.actor, entry.via) == (operator_role, "console")
    text = response.content.decode()
    assert "Schedule Nightly handed to the workers" in text
    assert f'id="active-run-{activity.pk}" data-status="queued"' in text


def test_a_schedule_without_steps_is_refused_with_what_to_do(runner):
    schedule = make_schedule("Empty")

    response = runner.post(schedule_url(schedule), follow=True)

    assert (
        "Schedule &#x27;Empty&#x27; has no steps: add run profiles to it"
        in response.content.decode()
    )
    assert not Activity.objects.exists() and queued_tasks() == []


def test_a_schedule_run_now_runs_every_step_for_whoever_ran_it(
    runner, operator_role, tmp_path, monkeypatch
):
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task in-process
    hr = make_csv_system(tmp_path, people(3))
    badges = make_csv_system(tmp_path, people(2), name="Badges", file_name="badges.csv")
    schedule = make_schedule(
        "Nightly",
        RunProfile.objects.get(connected_system=hr),
        RunProfile.objects.get(connected_system=badges),
    )

    runner.post(schedule_url(schedule))

    runs = list(Activity.objects.order_by("pk"))
    assert [(a.connected_system.name, a.status, a.schedule) for a in runs] == [
        ("HR", "complete", schedule),
        ("Badges", "complete", schedule),
    ]
    assert {(a.initiated_by, a.initiated_by_name) for a in runs} == {
        (operator_role, "olga (schedule Nightly, run now)")
    }


def test_schedules_show_their_steps_last_and_next_run(viewer_client):
    hr = populate("HR")["system"]
    profiles = list(RunProfile.objects.filter(connected_system=hr).order_by("name"))
    schedule = make_schedule("Nightly", *profiles)
    last = make_activity(profiles[0], status="complete_with_errors")
    Activity.objects.filter(pk=last.pk).update(schedule=schedule)
    make_schedule("Weekly", profiles[0], enabled=False)

    html = viewer_client.get(DASHBOARD).text

    panel = section_of(html, "schedules")
    row = panel[panel.index(f'id="schedule-{schedule.pk}"') :]
    assert "<li>HR Export</li><li>HR Full Import</li>" in row
    assert f'<a href="/activities/{last.pk}/"' in row and "Complete With Errors" in row
    next_run = response_next_run(viewer_client, schedule)
    assert next_run is not None and next_run.strftime("%Y-%m-%d %H:%M") in row
    assert "(disabled)" in panel


def response_next_run(client, schedule):
    [summary] = [s for s in client.get(DASHBOARD).context["schedules"] if s.schedule == schedule]
    return summary.next_run


def test_a_schedule_run_now_stops_at_a_failed_first_step(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)
    broken = make_csv_system(tmp_path, None, name="Broken", file_name="missing.csv")
    hr = make_csv_system(tmp_path, people(2))
    schedule = make_schedule(
        "Nightly",
        RunProfile.objects.get(connected_system=broken),
        RunProfile.objects.get(connected_system=hr),
    )

    runner.post(schedule_url(schedule))

    [only] = Activity.objects.all()  # the second step never started
    assert (only.connected_system, only.status) == (broken, "failed")
