"""A run whose process died is recognised at once, and a run that loses its database
connection ends cleanly (issue 10, item 4).

Real processes: ``manage.py jim run`` killed with SIGKILL during an import, a sync and
an export, a django-q2 cluster killed mid-run, ``pg_terminate_backend`` of a run's
connections, and the same on SQLite (the demo's database). A run is held in the
middle without timing: by a table lock it waits on (PostgreSQL; its connection shows
as waiting in ``pg_stat_activity``) or by a source file that is a FIFO nobody writes
(its ``open`` blocks).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from connectors import run_lock
from connectors.models import Activity, ConnectorSpaceObject, RunProfile
from demo.data import DUPLICATED, write_hr_csv
from exports.models import PendingExport
from runs import runner
from tests.builders import make_csv_system, people, run
from tests.support import held_runs
from tests.support.held_runs import (
    CONFIG,
    DEAD,
    count_sessions,
    environment,
    gone,
    hr_system,
    jim,
    kill,
    run_held_in_the_middle,
    running,
    start,
    table_locked,
    terminate_sessions,
    wait_for,
)

ROOT = Path(settings.BASE_DIR)
PEOPLE = 200
#: The HR file's people an import adds: both holders of a duplicated id are rejected.
ADDED = PEOPLE - len([index for index in DUPLICATED if index < PEOPLE])


@pytest.fixture
def demo_config(tmp_path, monkeypatch) -> Path:
    """The demo's CSV configuration, HR file of :data:`PEOPLE` people, in ``tmp_path``."""
    return held_runs.demo_config(tmp_path, monkeypatch, PEOPLE)


# --------------------------------------------------------------------------- in-process


@pytest.mark.django_db
def test_an_activity_in_the_way_whose_process_died_is_failed_and_the_run_goes_on(tmp_path, caplog):
    system = make_csv_system(tmp_path, people(3))
    dead = Activity.objects.create(
        connected_system=system,
        profile_type="full_import",
        profile_name="Full Import",
        status="in_progress",
    )

    activity = run(system)

    assert activity.status == "complete"
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.finished_at is not None
    assert dead.message == f"{DEAD} activity #{activity.pk} was started."
    assert (
        f"Activity #{dead.pk} (HR — Full Import) was in progress, but the process running it "
        "stopped (killed or crashed): recorded as failed." in caplog.messages
    )


@pytest.mark.django_db
def test_a_dead_sync_of_another_system_does_not_keep_a_sync_waiting(tmp_path):
    system = make_csv_system(tmp_path, people(1), profiles=("full_sync",))
    other = make_csv_system(tmp_path, people(1), name="Other", file_name="other.csv")
    dead = Activity.objects.create(
        connected_system=other, profile_type="full_sync", profile_name="Full Sync"
    )
    Activity.objects.filter(pk=dead.pk).update(status="in_progress")

    assert run(system, "Full Sync").status == "complete"
    assert Activity.objects.get(pk=dead.pk).status == "failed"


@pytest.mark.django_db
def test_the_run_lock_lives_as_long_as_its_session():
    lock = run_lock.hold(123_456)
    try:
        assert run_lock.is_held(123_456)
        with pytest.raises(run_lock.AlreadyHeld, match="activity #123456 is being run"):
            run_lock.hold(123_456)
        lock.check()
        # The refused attempt closed its session; the server ends that backend a moment
        # after the client hangs up, and until then pg_stat_activity still lists it.
        wait_for(lambda: count_sessions(123_456) == 1, "the refused session to end")
        assert terminate_sessions(123_456) == 1
        wait_for(lambda: not run_lock.is_held(123_456), "the lock to be released")
        with pytest.raises(run_lock.LockLost, match="terminating connection"):
            lock.check()
    finally:
        lock.release()
        lock.release()  # idempotent


@pytest.mark.django_db
def test_a_run_that_loses_its_lock_stops_at_its_next_progress_point(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "LOCK_CHECK_INTERVAL", 0)
    monkeypatch.setitem(runner.PROCESSORS, "full_import", "tests.test_run_liveness:loses_its_lock")
    system = make_csv_system(tmp_path, people(1))

    activity = run(system)

    assert activity.status == "failed"
    assert activity.message.startswith(
        "The run lost the database connection that holds its lock (terminating connection"
    )
    assert activity.message.endswith("; it stopped, as another run may take its system now.")


def loses_its_lock(activity, recorder):
    """Terminate the run's lock session (this test's own connection carries the run's
    name too, so not that one), then report progress as a processor does."""
    assert terminate_sessions(activity.pk, but_this_one=True) == 1
    wait_for(lambda: not run_lock.is_held(activity.pk), "the lock session to end")
    recorder.progress(advance=1)
    raise AssertionError("the run went on without its lock")


def test_a_file_lock_is_freed_when_its_process_is_killed(tmp_path, monkeypatch):
    """SQLite's run lock: held by another process until the kernel drops it."""
    monkeypatch.setattr(run_lock, "lock_folder", lambda: tmp_path)
    path = tmp_path / "activity-7.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert run_lock._file_lock_held(path)
        with pytest.raises(run_lock.AlreadyHeld):
            run_lock._FileLock(7)
    finally:
        holder.kill()
        holder.wait()

    assert not run_lock._file_lock_held(path)
    assert not path.exists()  # cleared by whoever found its holder gone
    lock = run_lock._FileLock(7)
    assert run_lock._file_lock_held(path)  # a probe from the holder's own process too
    lock.release()
    assert not path.exists()


# --------------------------------------------------------------------------- real processes


@pytest.mark.django_db(transaction=True)
def test_kill_9_during_an_import_the_next_run_starts_at_once(demo_config):
    env = environment()
    with table_locked("connectors_connectorspaceobject"):
        process, dead_id = run_held_in_the_middle(
            env, "connectors_connectorspaceobject", "HR", "Full Import"
        )
        kill(process)
        # Its page write still waits on the table, on a connection of its own; the
        # run lock's session ended with the process.
        wait_for(lambda: gone(dead_id), "the server to end the dead run's lock session")
        assert Activity.objects.get(pk=dead_id).status == "in_progress"

    status, out, err = jim(env, "run", "HR", "Full Import", "--json")

    summary = json.loads(out)
    assert status == 1, err  # the demo file's duplicates and its malformed row
    assert summary["status"] == "complete_with_errors"
    assert summary["counts"]["added"] == ADDED
    assert ConnectorSpaceObject.objects.count() == ADDED  # nothing of the dead run's
    dead = Activity.objects.get(pk=dead_id)
    assert dead.status == "failed"
    assert dead.message == f"{DEAD} activity #{summary['activity']} was started."
    assert f"Activity #{dead_id} (HR — Full Import) was in progress, but the process" in err
    assert "Traceback" not in err


@pytest.mark.django_db(transaction=True)
def test_kill_9_during_a_sync_the_next_sync_starts_at_once(demo_config):
    assert run(hr_system(), "Full Import").status == "complete_with_errors"
    env = environment()
    with table_locked("metaverse_metaverseobject"):
        process, dead_id = run_held_in_the_middle(
            env, "metaverse_metaverseobject", "HR", "Full Sync"
        )
        kill(process)
        wait_for(lambda: gone(dead_id), "the server to end the dead run's lock session")

    # Another system's sync: only the installation-wide one-sync rule was in its way.
    status, out, err = jim(env, "run", "Directory", "Full Sync", "--json")
    assert status == 0, err
    directory_sync = json.loads(out)["activity"]
    dead = Activity.objects.get(pk=dead_id)
    assert dead.status == "failed"
    assert dead.message == f"{DEAD} activity #{directory_sync} was started."

    status, out, err = jim(env, "run", "HR", "Full Sync", "--json")
    summary = json.loads(out)
    assert status == 0, err
    assert summary["status"] == "complete"
    assert summary["counts"]["projected"] > 0
    assert "Traceback" not in err


@pytest.mark.django_db(transaction=True)
def test_kill_9_during_an_export_its_executing_exports_become_retryable(demo_config):
    hr = hr_system()
    run(hr, "Full Import")
    run(hr, "Full Sync")
    exports = PendingExport.objects.filter(connected_system__name="Directory")
    waiting = exports.count()
    assert waiting > 0
    target = demo_config / "directory.csv"
    os.mkfifo(target)  # the export blocks when it opens the directory file
    env = environment()

    process = start(env, "jim", "run", "Directory", "Export", "--json")
    dead_id = wait_for(lambda: running("Directory"), "the export to start", process)
    wait_for(lambda: exports.filter(status="executing").exists(), "exports executing", process)
    kill(process)
    wait_for(lambda: gone(dead_id), "the server to end the dead run's lock session")
    assert exports.filter(status="executing").exists()
    target.unlink()

    status, out, err = jim(env, "run", "Directory", "Export", "--json")

    summary = json.loads(out)
    assert status == 0, err
    assert summary["counts"]["provisioned"] == waiting
    assert Activity.objects.get(pk=dead_id).status == "failed"
    assert set(exports.values_list("status", flat=True)) == {"exported"}
    assert len(target.read_text(encoding="utf-8").splitlines()) == waiting + 1


@pytest.mark.django_db(transaction=True)
def test_a_killed_qcluster_leaves_the_system_free_for_the_next_run(demo_config):
    from runs.tasks import queue_run

    source = demo_config / "hr.csv"
    source.unlink()
    os.mkfifo(source)  # the queued import blocks when it opens its file
    profile = RunProfile.objects.get(connected_system__name="HR", name="Full Import")
    queued = queue_run(profile)
    env = environment(JIM_Q_WORKERS="1")

    cluster = start(env, "qcluster")
    try:
        wait_for(lambda: running("HR") == queued.pk, "the worker to start the run", cluster)
    finally:
        kill(cluster)
    wait_for(lambda: gone(queued.pk), "the server to end the dead worker's lock session")
    source.unlink()
    write_hr_csv(source, PEOPLE)

    status, out, err = jim(env, "run", "HR", "Full Import", "--json")

    assert status == 1, err
    assert json.loads(out)["status"] == "complete_with_errors"
    queued.refresh_from_db()
    assert queued.status == "failed"
    assert queued.message.startswith(DEAD)


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_connections_are_terminated_fails_cleanly_and_frees_its_system(
    demo_config,
):
    env = environment()
    with table_locked("connectors_connectorspaceobject"):
        process, activity_id = run_held_in_the_middle(
            env, "connectors_connectorspaceobject", "HR", "Full Import"
        )
        terminated = terminate_sessions(activity_id)
    assert terminated >= 3  # its own, the write-behind thread's, the run lock's

    out, err = process.communicate(timeout=300)

    lost = "The run lost the database connection: terminating connection due to administrator"
    assert process.returncode == 2, err
    assert "Traceback" not in err
    assert err.splitlines() == [f"jim: Full Import of HR failed: {lost} command"]
    summary = json.loads(out)
    assert (summary["activity"], summary["status"]) == (activity_id, "failed")
    activity = Activity.objects.get(pk=activity_id)
    assert activity.status == "failed" and activity.message.startswith(lost)
    assert not run_lock.is_held(activity_id)

    status, out, err = jim(env, "run", "HR", "Full Import", "--json")
    assert status == 1, err
    assert "was in progress" not in err  # nothing left for the next run to clear


def test_kill_9_on_sqlite_the_next_run_starts_at_once(tmp_path):
    database = tmp_path / "jim.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "JIM_DEMO_DATA": str(tmp_path),
    }
    migrated = start(env, "migrate", "--verbosity", "0")
    assert migrated.wait(timeout=300) == 0, migrated.communicate()[1]
    assert jim(env, "apply", str(CONFIG))[0] == 0
    source = tmp_path / "hr.csv"
    os.mkfifo(source)

    def running() -> int | None:
        with sqlite3.connect(database) as db:
            row = db.execute(
                "SELECT id FROM connectors_activity WHERE status = 'in_progress'"
            ).fetchone()
        return row[0] if row else None

    process = start(env, "jim", "run", "HR", "Full Import", "--json")
    dead_id = wait_for(running, "the import to start", process)
    lock_file = tmp_path / "jim.sqlite3.runs" / f"activity-{dead_id}.lock"
    assert lock_file.exists()
    kill(process)
    source.unlink()
    write_hr_csv(source, PEOPLE)

    status, out, err = jim(env, "run", "HR", "Full Import", "--json")

    assert status == 1, err
    assert json.loads(out)["status"] == "complete_with_errors"
    with sqlite3.connect(database) as db:
        dead = db.execute(
            "SELECT status, message FROM connectors_activity WHERE id = ?", [dead_id]
        ).fetchone()
    assert dead[0] == "failed" and dead[1].startswith(DEAD)
    assert list(lock_file.parent.iterdir()) == []


@pytest.mark.django_db
def test_a_run_whose_lock_cannot_be_taken_is_refused_with_the_reason(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, people(1))

    def no_slot_left(activity_id: int) -> run_lock.RunLock:
        # What the server answers when every connection slot is taken.
        raise psycopg.OperationalError("FATAL:  sorry, too many clients already")

    monkeypatch.setattr(run_lock, "hold", no_slot_left)

    with pytest.raises(runner.NotQueued, match="could not take the run lock") as refused:
        run(system)

    activity = Activity.objects.get(connected_system=system)
    assert activity.status == "failed"
    assert activity.message == f"Not run: {refused.value}"
    assert "too many clients" in activity.message
