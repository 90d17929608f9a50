"""The activity page: live progress polled by HTMX, Cancel, and the RPEIs once done."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connectors.models import Activity, ConnectorSpaceObject, RunProfileExecutionItem, Schedule
from metaverse.models import MetaverseObject
from tests.builders import add_run_profile, make_connected_system
from tests.console.builders import HTMX, make_activity, make_cso, make_mvo, require_admin_for
from tests.support.runs import held

pytestmark = pytest.mark.django_db


@pytest.fixture
def profile():
    return add_run_profile(make_connected_system("HR", profiles=()), "full_import")


@pytest.fixture
def running(profile):
    activity = make_activity(
        profile,
        status="in_progress",
        phase="importing",
        started_seconds_ago=100,
        objects_total=1000,
        objects_processed=250,
        counts={"added": 200, "updated": 50},
        error_count=4,
    )
    with held(activity):  # as the live process running it would
        yield activity


@pytest.fixture
def finished(profile):
    return make_activity(
        profile,
        status="complete_with_errors",
        phase="done",
        objects_total=6,
        objects_processed=6,
        counts={"added": 3, "updated": 2},
        error_count=1,
    )


def url(activity: Activity, query: str = "") -> str:
    return reverse("console:activity", args=[activity.pk]) + query


def add_items(activity: Activity, change_type: str, n: int, **fields) -> None:
    RunProfileExecutionItem.objects.bulk_create(
        RunProfileExecutionItem(
            activity=activity, change_type=change_type, external_id=f"{change_type}-{i}", **fields
        )
        for i in range(n)
    )


def external_ids(response) -> list[str]:
    return [row.item.external_id for row in response.context["items"].object_list]


# -- access ------------------------------------------------------------------------------


def test_anonymous_user_is_sent_to_the_admin_login(client, running):
    response = client.get(url(running))

    assert response.status_code == 302
    assert response.url == f"{reverse('admin:login')}?next={url(running)}"


def test_user_who_is_not_staff_is_sent_to_the_login(client, outsider, running):
    client.force_login(outsider)

    response = client.get(url(running))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_view_permission_on_activities_is_refused(client, running):
    client.force_login(User.objects.create_user("bare", password="x", is_staff=True))

    assert client.get(url(running)).status_code == 403


def test_unknown_activity_is_404(viewer_client):
    assert viewer_client.get("/activities/999999/").status_code == 404


# -- live progress -----------------------------------------------------------------------


def test_running_activity_shows_its_progress(viewer_client, running, monkeypatch):
    # The page reads the clock: pin it 100 s after the start, however slow the machine.
    at = running.started_at + timedelta(seconds=100)
    monkeypatch.setattr("console.views.timezone", SimpleNamespace(now=lambda: at))

    response = viewer_client.get(url(running))
    html = response.text

    assert response.status_code == 200
    assert "Importing" in html
    assert '<progress id="activity-progress" max="100" value="25">' in html
    assert "<strong>250</strong> of <strong>1000</strong> objects" in html
    assert "2.5 objects/s" in html
    assert "<dt>Elapsed</dt><dd>1 min 40 s</dd>" in html
    assert "<dt>Time left</dt><dd>5 min 00 s</dd>" in html
    assert '<span class="jim-errors">4</span>' in html
    counts = dict((key, n) for key, _, n in response.context["change_counts"])
    assert counts["added"] == 200 and counts["updated"] == 50 and counts["deleted"] == 0


def test_running_activity_without_a_total_shows_an_indeterminate_bar(viewer_client, profile):
    activity = make_activity(profile, status="in_progress", objects_processed=40)

    html = viewer_client.get(url(activity)).text

    assert '<progress id="activity-progress" max="100">' in html
    assert "<strong>40</strong> objects" in html


def test_partial_for_a_running_activity_polls_every_second(viewer_client, running):
    response = viewer_client.get(url(running), headers=HTMX)
    html = response.text

    assert "<html" not in html
    live = re.search(r'<section id="activity-live"[^>]*>', html).group(0)
    assert 'hx-trigger="every 1s"' in live
    assert f'hx-get="{url(running)}"' in live
    assert 'hx-swap="outerHTML"' in live
    assert 'id="activity-items"' not in html  # the items come only when the run is over


def test_partial_for_a_finished_activity_stops_polling(viewer_client, finished):
    html = viewer_client.get(url(finished), headers=HTMX).text

    live = re.search(r'<section id="activity-live"[^>]*>', html).group(0)
    assert "hx-trigger" not in live and "hx-get" not in live
    assert '<progress id="activity-progress" max="100" value="100">' in html
    assert '<section id="activity-items" class="jim-items" hx-swap-oob="true">' in html


def test_partial_follows_the_activity_as_it_advances(viewer_client, running):
    Activity.objects.filter(pk=running.pk).update(objects_processed=900)
    assert 'value="90"' in viewer_client.get(url(running), headers=HTMX).text

    Activity.objects.filter(pk=running.pk).update(objects_processed=1000, status="complete")
    html = viewer_client.get(url(running), headers=HTMX).text
    assert 'value="100"' in html and "hx-trigger" not in html


def facts(html: str) -> dict[str, str]:
    """The activity's facts (Queued, Started, Finished …) as the page or a poll shows them."""
    dl = re.search(r'<dl id="activity-facts"[^>]*>(.*?)</dl>', html, re.S).group(1)
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", dl, re.S)
    return {name: re.sub(r"<[^>]+>|\s+", " ", value).strip() for name, value in pairs}


def test_every_poll_updates_started_and_finished_out_of_band(viewer_client, profile):
    activity = make_activity(profile, status="queued")

    queued = viewer_client.get(url(activity), headers=HTMX).text
    assert '<dl id="activity-facts" class="jim-facts" hx-swap-oob="true">' in queued
    assert (facts(queued)["Started"], facts(queued)["Finished"]) == ("—", "—")

    started = timezone.now()
    Activity.objects.filter(pk=activity.pk).update(
        status="in_progress", phase="importing", started_at=started
    )
    with held(activity):
        going = viewer_client.get(url(activity), headers=HTMX).text
    assert facts(going)["Started"] == timezone.localtime(started).strftime("%Y-%m-%d %H:%M:%S")
    assert facts(going)["Finished"] == "—"
    assert "Importing" in going

    finished = started + timedelta(seconds=2.5)
    Activity.objects.filter(pk=activity.pk).update(
        status="complete", phase="done", finished_at=finished, objects_processed=7
    )
    done = viewer_client.get(url(activity), headers=HTMX).text
    assert facts(done)["Finished"] == timezone.localtime(finished).strftime("%Y-%m-%d %H:%M:%S")
    assert "<dt>Elapsed</dt><dd>2.5 s</dd>" in done


def test_the_last_poll_renders_the_finished_state_and_stops(operator_client, running):
    Activity.objects.filter(pk=running.pk).update(
        status="complete_with_errors",
        phase="done",
        objects_processed=1000,
        finished_at=timezone.now(),
        message="4 objects had errors",
    )

    html = operator_client.get(url(running), headers=HTMX).text

    live = re.search(r'<section id="activity-live"[^>]*>', html).group(0)
    assert 'data-status="complete_with_errors"' in live and "hx-trigger" not in live
    assert "Complete With Errors" in html and "Done" in html
    assert '<progress id="activity-progress" max="100" value="100">' in html
    assert "Time left" not in html and ">Cancel</button>" not in html
    assert "4 objects had errors" in html
    assert 'href="?error_type=any">4</a>' in html  # errors open the finished run's items
    assert facts(html)["Finished"] != "—"
    assert 'id="activity-items" class="jim-items" hx-swap-oob="true"' in html


def test_a_schedules_run_names_its_schedule(viewer_client, profile):
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    activity = make_activity(profile, schedule=schedule)

    assert facts(viewer_client.get(url(activity)).text)["Schedule"] == "Nightly"


def test_failed_activity_shows_why(viewer_client, profile):
    failed = make_activity(profile, status="failed", message="LDAP server unreachable")

    html = viewer_client.get(url(failed)).text

    assert "LDAP server unreachable" in html
    assert "hx-trigger" not in html.split('id="activity-live"')[1].split(">")[0]


# -- cancel ------------------------------------------------------------------------------


def test_operator_sees_cancel_while_the_activity_runs(operator_client, running):
    html = operator_client.get(url(running)).text

    assert f'action="{reverse("console:activity-cancel", args=[running.pk])}"' in html
    assert ">Cancel</button>" in html


def test_cancel_sets_the_flag_and_returns_to_the_page(operator_client, running):
    response = operator_client.post(reverse("console:activity-cancel", args=[running.pk]))

    assert response.status_code == 302 and response.url == url(running)
    running.refresh_from_db()
    assert running.cancel_requested is True
    assert running.status == "in_progress"  # the runner stops it at the next batch
    page = operator_client.get(url(running)).text
    assert "cancellation requested" in page.lower()


def test_cancel_of_an_activity_whose_process_died_records_it_failed(operator_client, profile):
    dead = make_activity(profile, status="in_progress", phase="importing", started_seconds_ago=100)

    response = operator_client.post(reverse("console:activity-cancel", args=[dead.pk]))

    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert "stopped (killed or crashed)" in dead.message
    page = operator_client.get(url(dead)).text
    assert "the process running it was gone" in page


def test_cancel_needs_a_csrf_token(operator, running):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    cancel = reverse("console:activity-cancel", args=[running.pk])

    assert client.post(cancel).status_code == 403
    running.refresh_from_db()
    assert running.cancel_requested is False

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get(url(running)).text)
    assert client.post(cancel, {"csrfmiddlewaretoken": token.group(1)}).status_code == 302
    running.refresh_from_db()
    assert running.cancel_requested is True


def test_viewer_sees_no_cancel_button_and_cannot_cancel(viewer_client, running):
    html = viewer_client.get(url(running)).text
    assert ">Cancel</button>" not in html
    assert "activity-cancel" not in html and "/cancel/" not in html

    response = viewer_client.post(reverse("console:activity-cancel", args=[running.pk]))

    assert response.status_code == 403
    running.refresh_from_db()
    assert running.cancel_requested is False


def test_anonymous_cancel_is_sent_to_the_login(client, running):
    response = client.post(reverse("console:activity-cancel", args=[running.pk]))

    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))
    running.refresh_from_db()
    assert running.cancel_requested is False


def test_finished_activity_has_no_cancel_and_is_not_flagged(operator_client, finished):
    assert ">Cancel</button>" not in operator_client.get(url(finished)).text

    response = operator_client.post(
        reverse("console:activity-cancel", args=[finished.pk]), follow=True
    )

    finished.refresh_from_db()
    assert finished.cancel_requested is False
    assert "already finished" in response.text


def test_cancel_is_post_only(operator_client, running):
    response = operator_client.get(reverse("console:activity-cancel", args=[running.pk]))

    assert response.status_code == 405


def test_cancel_of_an_unknown_activity_is_404(operator_client):
    assert operator_client.post("/activities/999999/cancel/").status_code == 404


# -- RPEIs -------------------------------------------------------------------------------


def test_running_activity_lists_no_items_yet(viewer_client, running):
    add_items(running, "added", 3)

    response = viewer_client.get(url(running))

    assert "items" not in response.context
    assert "Run-profile execution items" not in response.text


def test_finished_activity_lists_its_items(viewer_client, finished):
    add_items(finished, "added", 3)
    add_items(finished, "none", 1, error_type="duplicate_object", message="E1 appears twice")

    response = viewer_client.get(url(finished))

    assert external_ids(response) == ["added-0", "added-1", "added-2", "none-0"]
    assert "E1 appears twice" in response.text
    assert "<td>Duplicate Object</td>" in response.text


def test_items_filter_by_change_type(viewer_client, finished):
    add_items(finished, "added", 2)
    add_items(finished, "updated", 3)

    response = viewer_client.get(url(finished, "?change_type=updated"))

    assert external_ids(response) == ["updated-0", "updated-1", "updated-2"]


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("duplicate_object", ["none-0"]),
        ("any", ["none-0", "deleted-0"]),
        ("none", ["added-0"]),
        ("", ["added-0", "none-0", "deleted-0"]),
    ],
)
def test_items_filter_by_error_type(viewer_client, finished, error_type, expected):
    add_items(finished, "added", 1)
    add_items(finished, "none", 1, error_type="duplicate_object")
    add_items(finished, "deleted", 1, error_type="deletion_threshold_exceeded")

    response = viewer_client.get(url(finished, f"?error_type={error_type}"))

    assert external_ids(response) == expected


def test_both_filters_combine(viewer_client, finished):
    add_items(finished, "added", 2)
    add_items(finished, "added", 1, error_type="invalid_data")

    response = viewer_client.get(url(finished, "?change_type=added&error_type=any"))

    assert len(external_ids(response)) == 1


def test_unknown_filter_value_is_a_clear_400(viewer_client, finished):
    response = viewer_client.get(url(finished, "?change_type=exploded"))

    assert response.status_code == 400
    assert "exploded is not one of the available choices" in response.text


def test_items_are_paginated_by_100(viewer_client, finished):
    add_items(finished, "added", 250)

    first = viewer_client.get(url(finished))
    last = viewer_client.get(url(finished, "?page=3"))

    assert len(external_ids(first)) == 100 and external_ids(first)[0] == "added-0"
    assert external_ids(last)[0] == "added-200" and len(external_ids(last)) == 50
    assert "Page 1 of 3" in first.text
    assert 'href="?page=2"' in first.text


def test_pagination_keeps_the_filters(viewer_client, finished):
    add_items(finished, "updated", 150)

    html = viewer_client.get(url(finished, "?change_type=updated")).text

    assert 'href="?change_type=updated&amp;page=2"' in html


def test_item_links_to_its_mvo_page(viewer_client, finished):
    mvo = make_mvo("Jane Doe")
    cso = make_cso(finished.connected_system, "E1", mvo=mvo)
    add_items(finished, "projected", 1, cs_object=cso, metaverse_object=mvo)

    html = viewer_client.get(url(finished)).text

    assert f'href="{reverse("console:mvo", args=[mvo.pk])}"' in html


def test_item_links_to_the_cso_and_mvo_admin_pages(viewer_client, finished):
    require_admin_for(ConnectorSpaceObject, MetaverseObject)
    mvo = make_mvo("Jane Doe")
    cso = make_cso(finished.connected_system, "E1", mvo=mvo)
    add_items(finished, "projected", 1, cs_object=cso, metaverse_object=mvo)

    html = viewer_client.get(url(finished)).text

    assert reverse("admin:connectors_connectorspaceobject_change", args=[cso.pk]) in html
    assert reverse("admin:metaverse_metaverseobject_change", args=[mvo.pk]) in html


def test_change_counts_link_to_the_filtered_items(viewer_client, finished):
    html = viewer_client.get(url(finished)).text

    assert '<a href="?change_type=added">3</a>' in html
    assert 'href="?error_type=any">1</a>' in html


# -- queries -----------------------------------------------------------------------------


def test_page_runs_a_fixed_number_of_queries(viewer_client, finished, profile):
    mvo = make_mvo("Jane Doe")
    add_items(finished, "joined", 5, metaverse_object=mvo)
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(url(finished))

    other = make_activity(profile, status="complete")
    mvos = [make_mvo(f"P{i}") for i in range(100)]
    RunProfileExecutionItem.objects.bulk_create(
        RunProfileExecutionItem(activity=other, change_type="projected", metaverse_object=m)
        for m in mvos
    )
    with CaptureQueriesContext(connection) as many:
        viewer_client.get(url(other))

    assert len(many) == len(few) <= 10


def test_poll_runs_a_fixed_number_of_queries(viewer_client, running, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        viewer_client.get(url(running), headers=HTMX)


def test_queued_activity_polls_and_can_be_cancelled(operator_client, profile):
    queued = make_activity(profile, status="queued")

    html = operator_client.get(url(queued), headers=HTMX).text

    assert 'hx-trigger="every 1s"' in html
    assert '<progress id="activity-progress" max="100">' in html
    assert ">Cancel</button>" in html
