"""A preview is a run: it holds its system, can be cancelled, shows its progress while
it runs, and dies like a run — ``kill -9`` or ``pg_terminate_backend`` of its
connections leave nothing changed, and the next run starts at once.

Real ``manage.py jim run --preview`` processes, held in the middle without timing by a
table lock they wait on (as tests/test_run_liveness.py holds real runs)."""

from __future__ import annotations

import json
import os

import pytest

from connectors.models import Activity, RunProfile
from demo.data import write_hr_csv
from runs.runner import AlreadyRunning, execute, start_activity
from tests.builders import run
from tests.previews.fidelity import assert_unchanged, database_state
from tests.support.held_runs import (
    CONFIG,
    DEAD,
    environment,
    gone,
    hr_system,
    jim,
    kill,
    start,
    table_locked,
    terminate_sessions,
    wait_for,
    waiting_on_a_lock,
)

#: What each previewed profile writes first, and so waits on when it is locked.
HELD_AT = {
    "Full Import": "connectors_connectorspaceobject",
    "Full Sync": "metaverse_metaverseobject",
}


def _running_preview(system: str) -> int | None:
    return (
        Activity.objects.filter(connected_system__name=system, status="in_progress", preview=True)
        .values_list("pk", flat=True)
        .first()
    )


def _preview_held_in_the_middle(env: dict[str, str], profile: str):
    """Start ``jim run HR PROFILE --preview`` and return (process, activity id) once it
    waits on the table its profile writes first (locked by the caller)."""
    process = start(env, "jim", "run", "HR", profile, "--preview", "--json")
    activity_id = wait_for(lambda: _running_preview("HR"), f"the {profile} preview", process)
    wait_for(lambda: waiting_on_a_lock(activity_id), "the preview to wait", process)
    return process, activity_id


def _imported_if_syncing(profile: str) -> None:
    if profile == "Full Sync":
        assert run(hr_system(), "Full Import").status == "complete_with_errors"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("profile", list(HELD_AT))
def test_kill_9_of_a_preview_leaves_nothing_and_the_next_run_starts_at_once(demo_config, profile):
    _imported_if_syncing(profile)
    before = database_state()
    env = environment()
    with table_locked(HELD_AT[profile]):
        process, dead_id = _preview_held_in_the_middle(env, profile)
        kill(process)
        wait_for(lambda: gone(dead_id), "the server to end the dead preview's lock session")
        dead = Activity.objects.get(pk=dead_id)
        assert dead.status == "in_progress"
        assert_unchanged(before, database_state(but=dead))

    status, out, err = jim(env, "run", "HR", profile, "--json")

    assert status in (0, 1), err
    summary = json.loads(out)
    assert summary["status"] in ("complete", "complete_with_errors")
    assert summary["counts"]["added" if profile == "Full Import" else "projected"] > 0
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert dead.message == f"{DEAD} activity #{summary['activity']} was started."


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("profile", list(HELD_AT))
def test_a_preview_whose_connections_are_terminated_fails_and_changes_nothing(demo_config, profile):
    _imported_if_syncing(profile)
    before = database_state()
    env = environment()
    with table_locked(HELD_AT[profile]):
        process, activity_id = _preview_held_in_the_middle(env, profile)
        assert terminate_sessions(activity_id) >= 2  # its own, the run lock's

    _, err = process.communicate(timeout=300)

    assert process.returncode == 2, err
    assert "Traceback" not in err
    assert "The run lost the database connection" in err
    activity = Activity.objects.get(pk=activity_id)
    assert activity.status == "failed"
    assert_unchanged(before, database_state(but=activity))

    status, _, err = jim(env, "run", "HR", profile, "--json")
    assert status in (0, 1), err
    assert "was in progress" not in err  # the preview recorded its own failure


@pytest.mark.django_db(transaction=True)
def test_a_preview_holds_its_system_like_a_run(demo_config):
    _imported_if_syncing("Full Sync")
    profile = RunProfile.objects.get(connected_system__name="HR", name="Full Sync")
    queued = start_activity(hr_system(), profile)
    before = database_state()
    env = environment()
    with table_locked(HELD_AT["Full Sync"]):
        process, preview_id = _preview_held_in_the_middle(env, "Full Sync")
        with pytest.raises(AlreadyRunning) as refused:
            execute(queued)
        assert refused.value.running.pk == preview_id
        assert f"activity #{preview_id} (preview of Full Sync" in str(refused.value)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    preview = Activity.objects.get(pk=preview_id)
    assert preview.status == "complete" and preview.counts["projected"] > 0
    assert_unchanged(before, database_state(but=preview))
    real = execute(queued)  # refused, it stayed queued: it runs now
    assert real.status == "complete" and real.counts == preview.counts


@pytest.mark.django_db(transaction=True)
def test_a_preview_shows_its_progress_while_it_runs_and_can_be_cancelled(demo_config):
    before = database_state()
    env = environment()
    with table_locked(HELD_AT["Full Import"]):
        process, preview_id = _preview_held_in_the_middle(env, "Full Import")
        # Its progress is written through a connection of its own: this one sees it,
        # though the preview's transaction is still open.
        seen = Activity.objects.get(pk=preview_id)
        assert seen.phase == "writing" and seen.objects_processed > 0
        # Asking it to stop waits for nothing: the preview holds no lock on its activity.
        assert Activity.objects.filter(pk=preview_id).update(cancel_requested=True) == 1
    _, err = process.communicate(timeout=300)

    assert process.returncode != 0, err
    preview = Activity.objects.get(pk=preview_id)
    assert (preview.status, preview.message) == ("cancelled", "Cancelled on request.")
    assert_unchanged(before, database_state(but=preview))


def test_a_preview_on_sqlite_changes_nothing_and_predicts_the_run(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jim.sqlite3'}",
        "JIM_DEMO_DATA": str(tmp_path),
    }
    migrated = start(env, "migrate", "--verbosity", "0")
    assert migrated.wait(timeout=300) == 0, migrated.communicate()[1]
    assert jim(env, "apply", str(CONFIG))[0] == 0
    write_hr_csv(tmp_path / "hr.csv", 1000)
    status, out, err = jim(env, "run", "HR", "Full Import", "--preview", "--json")
    assert status == 1, err  # the demo file's duplicates and its malformed row
    preview = json.loads(out)
    assert preview["preview"] is True and preview["counts"]["added"] > 0
    assert preview["phase"] == "done" and preview["objects_processed"] > 0

    status, out, err = jim(env, "run", "HR", "Full Import", "--json")
    real = json.loads(out)
    for key in ("status", "counts", "objects_processed", "errors"):
        assert preview[key] == real[key], key

    status, out, err = jim(env, "run", "HR", "Full Sync", "--preview", "--json")
    assert status == 0, err
    synced_preview = json.loads(out)
    assert synced_preview["pending_exports"]["created"] > 900
    status, out, err = jim(env, "run", "HR", "Full Sync", "--json")
    assert status == 0, err
    assert synced_preview["counts"] == json.loads(out)["counts"]
    status, out, err = jim(env, "pending-exports", "--json")
    assert len(json.loads(out)) == synced_preview["pending_exports"]["created"]
