"""Run metrics (progress, rate, time left) and a run profile's history chart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.models import Activity
from runs.progress import (
    RunPoint,
    activity_progress,
    format_duration,
    history_chart,
    objects_per_second,
    percent_done,
    seconds_remaining,
)
from tests.builders import add_run_profile, make_connected_system
from tests.console.builders import make_activity

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def history_url(profile) -> str:
    return reverse("console:run-profile-history", args=[profile.pk])


def point(n: int, duration: float, objects: int, status: str = "complete") -> RunPoint:
    return RunPoint(n, NOW + timedelta(hours=n), status, duration, objects)


# -- progress arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("processed", "total", "status", "expected"),
    [
        (250, 1000, "in_progress", 25),
        (999, 1000, "in_progress", 99),
        (1200, 1000, "in_progress", 100),  # capped
        (10, None, "in_progress", None),  # total unknown
        (10, 0, "in_progress", None),
        (10, None, "complete", 100),
        (3, 10, "complete_with_errors", 100),
        (3, 10, "failed", 30),
        (3, 10, "cancelled", 30),
    ],
)
def test_percent_done(processed, total, status, expected):
    assert percent_done(processed, total, status) == expected


def test_rate_and_time_left():
    assert objects_per_second(500, 100.0) == 5.0
    assert objects_per_second(500, 0) is None
    assert objects_per_second(500, None) is None
    assert seconds_remaining(500, 1500, 5.0) == 200.0
    assert seconds_remaining(1600, 1500, 5.0) == 0
    assert seconds_remaining(500, None, 5.0) is None
    assert seconds_remaining(500, 1500, None) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0 s"),
        (0.04, "< 0.1 s"),
        (0.4, "0.4 s"),
        (0.96, "1.0 s"),
        (4.25, "4.2 s"),
        (9.96, "10 s"),
        (42.4, "42 s"),
        (59.6, "1 min 00 s"),
        (185, "3 min 05 s"),
        (7620, "2 h 07 min"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_admin_writes_durations_as_the_console_does():
    from console.admin import connectors

    assert connectors.format_duration is format_duration


def test_activity_progress_of_a_running_activity():
    activity = Activity(
        status="in_progress",
        started_at=NOW - timedelta(seconds=100),
        objects_processed=250,
        objects_total=1000,
    )

    progress = activity_progress(activity, NOW)

    assert progress.running and progress.percent == 25
    assert progress.rate == 2.5 and progress.remaining_seconds == 300
    assert (progress.elapsed, progress.remaining) == ("1 min 40 s", "5 min 00 s")


def test_activity_progress_of_a_finished_activity_uses_its_finish_time():
    activity = Activity(
        status="complete",
        started_at=NOW - timedelta(seconds=300),
        finished_at=NOW - timedelta(seconds=200),
        objects_processed=50,
        objects_total=50,
    )

    progress = activity_progress(activity, NOW)

    assert not progress.running
    assert progress.elapsed_seconds == 100 and progress.rate == 0.5
    assert progress.remaining_seconds is None and progress.percent == 100


def test_activity_not_started_has_no_rate():
    progress = activity_progress(Activity(status="queued"), NOW)

    assert progress.running and progress.elapsed_seconds is None and progress.rate is None


# -- chart geometry ----------------------------------------------------------------------


def test_chart_scales_each_series_to_its_own_maximum():
    chart = history_chart([point(1, 30, 1000), point(2, 60, 500)], width=300, height=200)

    first, second = chart.bars
    plot_height = chart.bottom - chart.top
    assert second.height == pytest.approx(plot_height) and second.y == pytest.approx(chart.top)
    assert first.height == pytest.approx(plot_height / 2)
    assert first.point_y == pytest.approx(chart.top)  # 1000 objects: the top
    assert second.point_y == pytest.approx(chart.top + plot_height / 2)
    assert first.x < first.point_x < first.x + first.width < second.x
    assert chart.left <= first.x and second.x + second.width <= chart.right
    assert (chart.max_duration, chart.max_objects) == ("1 min 00 s", 1000)
    assert chart.line_points.count(",") == 2


def test_chart_of_runs_that_did_nothing_stays_on_the_baseline():
    chart = history_chart([point(1, 0, 0), point(2, 0, 0)])

    assert all(bar.height == 0 and bar.point_y == chart.bottom for bar in chart.bars)


@pytest.mark.parametrize(
    ("status", "errors", "outcome"),
    [
        ("complete", 0, "clean"),
        ("complete", 2, "errors"),
        ("complete_with_errors", 0, "errors"),
        ("failed", 0, "failed"),
        ("cancelled", 0, "failed"),
        ("in_progress", 3, "running"),
    ],
)
def test_a_run_with_any_error_is_not_drawn_as_clean(status, errors, outcome):
    assert RunPoint(1, NOW, status, 1.0, 10, errors).outcome == outcome


def test_legend_names_the_outcomes_drawn_in_a_fixed_order():
    chart = history_chart([point(1, 1, 1, "failed"), RunPoint(2, NOW, "complete", 1, 1, 4)])

    assert chart.legend == [
        ("errors", "Completed with errors", "!"),
        ("failed", "Failed or cancelled", "\N{MULTIPLICATION SIGN}"),
    ]


def test_chart_without_runs_is_empty():
    chart = history_chart([])

    assert chart.bars == () and chart.line_points == "" and chart.first is None


# -- the page ----------------------------------------------------------------------------


@pytest.fixture
def profile(db):
    return add_run_profile(make_connected_system("HR", profiles=()), "full_import")


def test_anonymous_user_is_sent_to_the_admin_login(client, profile):
    response = client.get(history_url(profile))

    assert response.status_code == 302 and response.url.startswith(reverse("admin:login"))


def test_staff_without_view_permission_is_refused(client, profile):
    client.force_login(User.objects.create_user("bare", password="x", is_staff=True))

    assert client.get(history_url(profile)).status_code == 403


def test_unknown_run_profile_is_404(viewer_client):
    assert viewer_client.get("/run-profiles/999999/history/").status_code == 404


def test_page_draws_the_last_50_runs_as_inline_svg(viewer_client, profile):
    for n in range(55):
        make_activity(profile, started_seconds_ago=10_000 - n * 100, duration=n + 1)
    other = add_run_profile(profile.connected_system, "delta_import")
    make_activity(other, duration=999)
    make_activity(profile, status="queued", started_seconds_ago=0, duration=None)

    response = viewer_client.get(history_url(profile))
    html = response.text

    assert response.status_code == 200
    assert '<svg id="history-chart"' in html and "<script" not in html.split("<svg")[1]
    assert len(re.findall(r'<rect class="jim-bar ', html)) == 50
    assert len(re.findall(r'<circle class="jim-objects-point"', html)) == 50
    runs = response.context["chart"].bars
    assert [bar.run.duration_seconds for bar in runs] == [float(n + 1) for n in range(5, 55)]
    assert "999" not in html.split("<svg")[1].split("</svg>")[0]


def test_bars_link_to_their_activity(viewer_client, profile):
    activity = make_activity(profile, objects_processed=1234)

    html = viewer_client.get(history_url(profile)).text

    assert f'<a href="{reverse("console:activity", args=[activity.pk])}">' in html
    assert "1234 objects" in html


def test_running_activity_is_drawn_up_to_now(viewer_client, profile):
    make_activity(profile, status="in_progress", started_seconds_ago=90, duration=None)

    [bar] = viewer_client.get(history_url(profile)).context["chart"].bars

    assert bar.run.duration_seconds == pytest.approx(90, abs=5)


def test_profile_that_never_ran_says_so(viewer_client, profile):
    html = viewer_client.get(history_url(profile)).text

    assert "has not run yet" in html and "<svg id" not in html


def test_page_runs_a_fixed_number_of_queries(viewer_client, profile):
    make_activity(profile)
    with CaptureQueriesContext(connection) as one:
        viewer_client.get(history_url(profile))

    for n in range(60):
        make_activity(profile, started_seconds_ago=10_000 - n)
    with CaptureQueriesContext(connection) as many:
        viewer_client.get(history_url(profile))

    assert len(many) == len(one) <= 8


def test_sub_second_runs_are_not_labelled_zero(viewer_client, profile):
    make_activity(profile, duration=0.4, started_seconds_ago=100)
    make_activity(profile, duration=0.03, started_seconds_ago=50)

    html = viewer_client.get(history_url(profile)).text

    svg = html.split('<svg id="history-chart"')[1].split("</svg>")[0]
    assert ": 0.4 s, " in svg and ": &lt; 0.1 s, " in svg  # the bars' titles
    assert '<text class="jim-axis-label jim-duration-label"' in svg and ">0.4 s</text>" in svg
    assert "<td>0.4 s</td>" in html and "<td>&lt; 0.1 s</td>" in html
    assert not re.search(r">0s<|: 0s,", html)


def test_runs_with_errors_are_drawn_with_a_pattern_a_marker_and_a_legend(viewer_client, profile):
    clean = make_activity(profile, started_seconds_ago=300)
    flawed = make_activity(profile, started_seconds_ago=200, error_count=3)
    failed = make_activity(profile, status="failed", started_seconds_ago=100)

    html = viewer_client.get(history_url(profile)).text

    svg = html.split('<svg id="history-chart"')[1].split("</svg>")[0]
    bars = dict(
        re.findall(r'<a href="/activities/(\d+)/">\s*<rect class="jim-bar jim-bar-(\w+)"', svg)
    )
    assert bars == {str(clean.pk): "clean", str(flawed.pk): "errors", str(failed.pk): "failed"}
    assert '<pattern id="jim-fill-errors"' in svg and '<pattern id="jim-fill-failed"' in svg
    markers = re.findall(
        r'<text class="jim-bar-marker jim-bar-marker-(\w+)"[^>]*>([^<]+)</text>', svg
    )
    assert markers == [("errors", "!"), ("failed", "\N{MULTIPLICATION SIGN}")]
    assert "3 errors (Complete)" in svg  # the bar's title says it too
    legend = html.split('<figcaption class="jim-chart-legend">')[1].split("</figcaption>")[0]
    assert re.findall(r'data-outcome="(\w+)"', legend) == ["clean", "errors", "failed"]
    for label in ("Completed without errors", "Completed with errors", "Failed or cancelled"):
        assert label in legend
    assert f'href="/activities/{flawed.pk}/?error_type=any">3</a>' in html  # the table
