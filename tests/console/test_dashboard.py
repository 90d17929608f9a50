"""The sync dashboard: counts per connected system, last runs, exports, in fixed queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport
from tests.builders import add_run_profile, make_connected_system
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

    assert '<th scope="row">Joined</th><td class="jim-number">3</td>' in section
    assert '<th scope="row">Not joined</th><td class="jim-number">2</td>' in section
    assert '<th scope="row">Total</th><td class="jim-number">5</td>' in section
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
    assert "1m 05s" in section  # how long the last run took
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

    panel = html[html.index('id="failed-exports"') : html.index('class="module jim-system"')]
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


def test_dashboard_runs_a_fixed_number_of_queries(viewer_client, django_assert_max_num_queries):
    populate("S0", objects=1)
    with CaptureQueriesContext(connection) as no_failures:
        viewer_client.get(DASHBOARD)
    fail(make_connected_system("F0", profiles=()), "f0", "refused")
    with CaptureQueriesContext(connection) as small:
        viewer_client.get(DASHBOARD)
    assert len(small) == len(no_failures) + 1  # the failed exports listed

    for n in range(1, 6):
        populate(f"S{n}", objects=n * 4)
        fail(ConnectedSystem.objects.get(name=f"S{n}"), f"f{n}", "refused")
    with django_assert_max_num_queries(len(small)), CaptureQueriesContext(connection) as large:
        response = viewer_client.get(DASHBOARD)

    assert response.status_code == 200
    assert len(large) == len(small)
    assert len(large) <= 10


def test_admin_home_links_to_the_dashboard(viewer_client):
    html = viewer_client.get(reverse("admin:index")).text

    assert f'<a href="{DASHBOARD}">Sync dashboard</a>' in html
