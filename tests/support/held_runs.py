"""Real ``manage.py jim`` processes held in the middle of a run, killed, or cut off
from the database: the helpers of the liveness tests (tests/test_run_liveness.py)
and of the preview's (tests/previews/test_preview_faults.py).

A run is held without timing: by a table lock it waits on (PostgreSQL; its
connection shows as waiting in ``pg_stat_activity``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from connectors import run_lock
from connectors.models import Activity, ConnectedSystem
from demo.data import write_hr_csv
from tests.support.postgres import subprocess_database_url

ROOT = Path(settings.BASE_DIR)
CONFIG = ROOT / "demo" / "csv.yaml"
#: How long a condition that must come true may take before the test fails.
DEADLINE_SECONDS = 90.0
DEAD = "The process running it stopped (killed or crashed) before it finished; recorded when"

T = TypeVar("T")


# --------------------------------------------------------------------------- helpers


def wait_for(condition: Callable[[], T], what: str, process: Any = None) -> T:
    """Poll ``condition`` until it is true; fail (with the process's stderr) when the
    process ends first or nothing happens for :data:`DEADLINE_SECONDS`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the process ended (status {process.returncode}) before {what}:\n{err}")
        time.sleep(0.05)
    pytest.fail(f"waited {DEADLINE_SECONDS:.0f} s for {what}")


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": subprocess_database_url(), **extra}


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def jim(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = start(env, "jim", *args)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process and everything it started (its own process group)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def running(system: str) -> int | None:
    return (
        Activity.objects.filter(connected_system__name=system, status="in_progress")
        .values_list("pk", flat=True)
        .first()
    )


#: The sessions of a run (by name: this database only, activity ids repeat in others).
RUN_SESSIONS = "FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s"


def waiting_on_a_lock(activity_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) {RUN_SESSIONS} AND wait_event_type = 'Lock'",
            [run_lock.application_name(activity_id)],
        )
        return cursor.fetchone()[0] > 0


def count_sessions(activity_id: int) -> int:
    """How many sessions carry the run's name (read afresh: inside a transaction,
    pg_stat_activity otherwise answers from the snapshot its first read took)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(f"SELECT count(*) {RUN_SESSIONS}", [run_lock.application_name(activity_id)])
        return cursor.fetchone()[0]


def terminate_sessions(activity_id: int, *, but_this_one: bool = False) -> int:
    """``pg_terminate_backend`` of the run's sessions; how many."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_terminate_backend(pid) {RUN_SESSIONS}"
            + (" AND pid <> pg_backend_pid()" if but_this_one else ""),
            [run_lock.application_name(activity_id)],
        )
        return cursor.rowcount


@contextmanager
def table_locked(table: str) -> Iterator[None]:
    """Hold a lock on ``table`` that lets readers in and keeps writers waiting."""
    with psycopg.connect(subprocess_database_url()) as session:
        session.execute(f'LOCK TABLE "{table}" IN SHARE ROW EXCLUSIVE MODE')
        try:
            yield
        finally:
            session.rollback()


def run_held_in_the_middle(env: dict[str, str], table: str, system: str, profile: str):
    """Start ``jim run`` and return (process, activity id) once it waits on ``table``
    (locked by the caller)."""
    process = start(env, "jim", "run", system, profile, "--json")
    activity_id = wait_for(lambda: running(system), f"{system} {profile} to start", process)
    wait_for(lambda: waiting_on_a_lock(activity_id), f"{profile} to wait on {table}", process)
    return process, activity_id


def gone(activity_id: int) -> bool:
    """The server has ended the dead run's lock session (it saw the client go)."""
    return not run_lock.is_held(activity_id)


def demo_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, people: int) -> Path:
    """The demo's CSV configuration applied, with an HR file of ``people`` people, in
    ``tmp_path``."""
    monkeypatch.setenv("JIM_DEMO_DATA", str(tmp_path))
    call_command("jim", "apply", str(CONFIG))
    write_hr_csv(tmp_path / "hr.csv", people)
    return tmp_path


def hr_system() -> ConnectedSystem:
    return ConnectedSystem.objects.get(name="HR")
