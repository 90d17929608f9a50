"""Queued runs on django-q2, waiting turns, schedules, cancel and stale-worker recovery."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule as QSchedule

from connectors import activity as activity_module
from connectors.choices import RunProfileType
from connectors.models import Activity, ConnectorSpaceObject, RunProfile, Schedule, ScheduleStep
from runs import tasks
from runs.runner import AlreadyRunning, execute, start_activity
from tests.builders import make_csv_system, people
from tests.support.runs import held

pytestmark = pytest.mark.django_db

PROJECT = Path(settings.BASE_DIR)


@pytest.fixture
def sync_mode(monkeypatch):
    """django-q2 runs tasks in the calling process (its documented test mode)."""
    monkeypatch.setattr(Conf, "SYNC", True)


def _profile(system, name="Full Import") -> RunProfile:
    return RunProfile.objects.get(connected_system=system, name=name)


def test_queued_run_executes_the_same_code_as_jim_run(tmp_path, sync_mode):
    system = make_csv_system(tmp_path, people(3))

    activity = tasks.queue_run(_profile(system), initiated_by_name="tester")

    activity.refresh_from_db()
    assert activity.status == "complete"
    assert activity.counts == {"added": 3}
    assert activity.initiated_by_name == "tester"


def test_second_run_of_a_busy_system_is_refused_but_a_queued_one_waits(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, people(2))
    running = start_activity(system, _profile(system))
    Activity.objects.filter(pk=running.pk).update(status="in_progress", heartbeat_at=timezone.now())
    waiting = start_activity(system, _profile(system))
    polls = []

    def finish_running(seconds):
        polls.append(seconds)
        Activity.objects.filter(pk=running.pk).update(status="complete")

    monkeypatch.setattr(tasks.time, "sleep", finish_running)
    with held(running):
        with pytest.raises(AlreadyRunning, match="already running activity"):
            execute(waiting)
        assert tasks.execute_activity(waiting.pk) == "complete"
    assert len(polls) == 1


def test_cancelled_while_queued_never_runs(tmp_path):
    system = make_csv_system(tmp_path, people(2))
    activity = start_activity(system, _profile(system))
    Activity.objects.filter(pk=activity.pk).update(cancel_requested=True)

    assert tasks.execute_activity(activity.pk) == "cancelled"


def test_cancel_stops_a_run_at_the_next_batch_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(activity_module, "PROGRESS_INTERVAL", 0)  # check at every page
    system = make_csv_system(tmp_path, people(50), page_size=5)
    activity = start_activity(system, _profile(system))

    def cancel_after_first_page(recorder):
        if recorder.processed >= 5:
            Activity.objects.filter(pk=activity.pk).update(cancel_requested=True)

    finished = execute(activity, on_progress=cancel_after_first_page)

    assert finished.status == "cancelled"
    assert finished.counts == {}  # cancelled while staging: nothing was written
    assert not ConnectorSpaceObject.objects.filter(connected_system=system).exists()


def test_schedule_runs_steps_in_order_and_stops_on_failure(tmp_path):
    hr = make_csv_system(
        tmp_path, people(2), profiles=[RunProfileType.FULL_IMPORT, RunProfileType.FULL_SYNC]
    )
    broken = make_csv_system(tmp_path, None, name="Broken", file_name="missing.csv")
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    for order, profile in enumerate([_profile(hr), _profile(broken), _profile(hr, "Full Sync")]):
        ScheduleStep.objects.create(schedule=schedule, order=order, run_profile=profile)

    outcome = tasks.run_schedule(schedule.pk)

    runs = list(Activity.objects.filter(schedule=schedule).order_by("pk"))
    assert [(a.connected_system.name, a.profile_name, a.status) for a in runs] == [
        ("HR", "Full Import", "complete"),
        ("Broken", "Full Import", "failed"),
    ]
    assert outcome.endswith("stopped")

    schedule.stop_on_failure = False
    schedule.save()
    tasks.run_schedule(schedule.pk)
    assert Activity.objects.filter(schedule=schedule).count() == 5


def test_schedule_is_mirrored_into_django_q(tmp_path):
    schedule = Schedule.objects.create(name="Every 15", cron="*/15 * * * *")
    q = QSchedule.objects.get(name=f"jim:{schedule.pk}")
    assert (q.func, q.cron, q.schedule_type) == (
        "runs.tasks.run_schedule",
        "*/15 * * * *",
        "C",
    )

    schedule.enabled = False
    schedule.save()
    assert not QSchedule.objects.filter(name=f"jim:{schedule.pk}").exists()


def test_recovery_fails_the_activities_whose_process_is_gone_and_no_other(tmp_path):
    dead = start_activity(system := make_csv_system(tmp_path, people(1)), _profile(system))
    quiet = start_activity(
        other := make_csv_system(tmp_path, people(1), name="Other", file_name="o.csv"),
        _profile(other),
    )
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Activity.objects.filter(pk__in=[dead.pk, quiet.pk]).update(
        status="in_progress", heartbeat_at=long_ago
    )

    with held(quiet):  # alive, however long it has been quiet
        assert tasks.recover_stale_activities() == [dead.pk]

    dead.refresh_from_db()
    assert dead.status == "failed"
    assert dead.message == (
        "The process running it stopped (killed or crashed) before it finished; "
        "recorded when a worker started."
    )
    assert Activity.objects.get(pk=quiet.pk).status == "in_progress"


def _database_url() -> str:
    s = connection.settings_dict
    return f"postgresql://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_real_qcluster_executes_a_queued_run(tmp_path):
    system = make_csv_system(tmp_path, people(4))
    activity = tasks.queue_run(_profile(system))
    assert activity.status == "queued"
    env = {**os.environ, "DATABASE_URL": _database_url(), "JIM_Q_WORKERS": "1"}
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            activity.refresh_from_db()
            if activity.status not in ("queued", "in_progress"):
                break
            time.sleep(0.3)
    finally:
        cluster.terminate()
        try:
            _, err = cluster.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            cluster.kill()
            _, err = cluster.communicate()
    assert activity.status == "complete", err.decode(errors="replace")[-2000:]
    assert activity.counts == {"added": 4}
