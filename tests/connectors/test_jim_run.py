"""`jim run` and `jim activity`: exit codes, the JSON contract, refusals, and the
runner's handling of whatever a run meets."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from connectors.choices import COUNTED_CHANGE_TYPES, ActivityStatus
from connectors.models import Activity, ConnectorSpaceObject, RunProfile
from runs import runner
from tests.builders import make_csv_system, people, person, run, write_csv
from tests.support.cli import jim
from tests.support.runs import held

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# --------------------------------------------------------------------------- jim run


def test_jim_run_json_has_every_key_of_the_contract(tmp_path):
    make_csv_system(tmp_path, people(3))

    status, out, err = jim("run", "HR", "Full Import", "--json")

    assert status == 0
    assert out.count("\n") == 1  # exactly one JSON object, on one line
    summary = json.loads(out)
    activity = Activity.objects.get()
    assert {k: summary[k] for k in ("activity", "system", "profile", "status")} == {
        "activity": activity.pk,
        "system": "HR",
        "profile": "Full Import",
        "status": "complete",
    }
    assert summary["objects_processed"] == 3
    assert list(summary["counts"]) == [*COUNTED_CHANGE_TYPES, "errors"]
    assert summary["counts"]["added"] == 3
    assert sum(summary["counts"].values()) == 3
    assert summary["errors"] == []
    assert err == ""


def test_jim_run_exits_1_with_object_errors_listed_in_the_json(tmp_path):
    make_csv_system(tmp_path, [person("1001"), person("1001"), person("1002")])

    status, out, _ = jim("run", "HR", "Full Import", "--json")

    summary = json.loads(out)
    assert status == 1
    assert summary["status"] == "complete_with_errors"
    assert summary["counts"]["errors"] == 2
    assert summary["counts"]["added"] == 1
    assert [(e["external_id"], e["error_type"]) for e in summary["errors"]] == [
        ("1001", "duplicate_object"),
        ("1001", "duplicate_object"),
    ]
    assert summary["errors"][0]["message"].startswith("hr.csv line 2: external id '1001'")


def test_a_missing_file_exits_2_without_a_traceback(tmp_path):
    make_csv_system(tmp_path, None)

    status, out, err = jim("run", "HR", "Full Import", "--json")

    assert status == 2
    summary = json.loads(out)
    assert summary["status"] == "failed"
    assert summary["message"].endswith("hr.csv: no such file")
    assert summary["errors"][0]["error_type"] == "connector_error"
    assert "no such file" in err
    assert "Traceback" not in err + out


def test_the_deletion_threshold_exits_2_and_allow_deletions_passes(tmp_path):
    make_csv_system(tmp_path, people(20))
    jim("run", "HR", "Full Import")
    write_csv(tmp_path / "hr.csv", people(10))

    status, out, err = jim("run", "HR", "Full Import", "--json")

    summary = json.loads(out)
    assert status == 2
    assert summary["status"] == "failed"
    assert "would mark 10 of 20 objects obsolete, more than the threshold 2" in err
    assert summary["errors"][0]["error_type"] == "deletion_threshold_exceeded"
    assert ConnectorSpaceObject.objects.filter(status="obsolete").count() == 0

    status, out, _ = jim("run", "HR", "Full Import", "--json", "--allow-deletions")

    assert status == 0
    assert json.loads(out)["counts"]["deleted"] == 10


def test_an_unknown_system_or_profile_exits_2_naming_what_exists(tmp_path):
    make_csv_system(tmp_path, people(1))

    status, out, err = jim("run", "Payroll", "Full Import")
    assert (status, out) == (2, "")
    assert err == "jim: no connected system named 'Payroll' (known: HR)\n"

    status, out, err = jim("run", "HR", "Full Sink")
    assert (status, out) == (2, "")
    assert err == "jim: HR has no run profile named 'Full Sink' (known: Full Import)\n"
    assert not Activity.objects.exists()


def test_a_run_is_refused_while_the_system_is_running(tmp_path):
    system = make_csv_system(tmp_path, people(1))
    running = Activity.objects.create(
        connected_system=system,
        profile_type="full_import",
        profile_name="Full Import",
        status=ActivityStatus.IN_PROGRESS,
    )

    with held(running):
        status, out, err = jim("run", "HR", "Full Import", "--json")

    assert status == 2
    assert f"HR is already running activity #{running.pk} (Full Import" in err
    refused = Activity.objects.exclude(pk=running.pk).get()
    assert refused.status == "failed"
    assert refused.message.startswith("Not run: HR is already running")
    assert json.loads(out)["activity"] == refused.pk
    assert not ConnectorSpaceObject.objects.exists()


def test_a_sync_is_refused_while_another_sync_runs(tmp_path):
    system = make_csv_system(tmp_path, people(1), profiles=("full_sync",))
    other = make_csv_system(tmp_path, people(1), name="Other", file_name="other.csv")
    running = Activity.objects.create(
        connected_system=other,
        profile_type="full_sync",
        profile_name="Full Sync",
        status=ActivityStatus.IN_PROGRESS,
    )
    activity = runner.start_activity(system, RunProfile.objects.get(connected_system=system))

    with (
        held(running),
        pytest.raises(
            runner.AlreadyRunning,
            match=f"a sync is already running: activity #{running.pk} \\(Other — Full Sync",
        ),
    ):
        runner.execute(activity)

    activity.refresh_from_db()
    assert activity.status == "queued"  # left for the caller: jim run refuses, a worker waits


def test_jim_run_prints_a_summary_for_people(tmp_path):
    make_csv_system(tmp_path, [person("1001"), person("1001"), person("1002")])

    status, out, _ = jim("run", "HR", "Full Import")

    assert status == 1
    lines = out.splitlines()
    assert lines[0].endswith("HR — Full Import: complete_with_errors")
    assert "added 1, errors 2" in out
    assert "duplicate_object: 1001: hr.csv line 2" in out


def test_a_progress_bar_is_drawn_only_on_a_terminal(tmp_path):
    make_csv_system(tmp_path, people(5))

    _, _, plain = jim("run", "HR", "Full Import")
    _, _, drawn = jim("run", "HR", "Full Import", stderr=Terminal())

    assert plain == ""
    assert "\r[" in drawn and "importing" in drawn


# --------------------------------------------------------------------------- jim activity


def test_jim_activity_shows_the_same_json_as_jim_run(tmp_path):
    make_csv_system(tmp_path, people(2))
    _, run_json, _ = jim("run", "HR", "Full Import", "--json")
    activity_id = json.loads(run_json)["activity"]

    status, out, _ = jim("activity", str(activity_id), "--json")

    assert status == 0
    assert json.loads(out) == json.loads(run_json)


def test_jim_activity_shows_the_progress_of_a_running_activity(tmp_path):
    system = make_csv_system(tmp_path, people(1))
    activity = Activity.objects.create(
        connected_system=system,
        profile_type="full_import",
        profile_name="Full Import",
        status=ActivityStatus.IN_PROGRESS,
        phase="importing",
        objects_processed=450,
        objects_total=1000,
        counts={"added": 450},
    )

    status, out, _ = jim("activity", str(activity.pk))
    _, as_json, _ = jim("activity", str(activity.pk), "--json")

    assert status == 0
    assert "in_progress" in out
    assert "45% 450/1,000 importing" in out
    summary = json.loads(as_json)
    assert (summary["status"], summary["objects_processed"], summary["counts"]["added"]) == (
        "in_progress",
        450,
        450,
    )


def test_jim_activity_of_an_unknown_id_exits_2():
    assert jim("activity", "999999") == (2, "", "jim: no activity 999999\n")


# --------------------------------------------------------------------------- the runner


def test_a_processor_that_is_not_installed_fails_the_run_clearly(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, people(1))
    monkeypatch.setitem(runner.PROCESSORS, "full_import", "connectors.nowhere:run")

    activity = run(system)

    assert activity.status == "failed"
    assert activity.message == (
        "The full import processor is not available in this installation "
        "(connectors.nowhere:run cannot be imported)."
    )


def test_an_unexpected_error_fails_the_run_with_one_line(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, people(1))
    monkeypatch.setitem(
        runner.PROCESSORS, "full_import", "tests.connectors.test_jim_run:exploding_processor"
    )

    activity = run(system)

    assert activity.status == "failed"
    assert activity.message == "Unexpected error: ZeroDivisionError: the pipes burst"
    assert activity.finished_at is not None
    assert list(activity.items.values_list("error_type", flat=True)) == ["unhandled_error"]


def exploding_processor(activity, recorder):
    raise ZeroDivisionError("the pipes burst\nsecond line")


def test_a_cancel_request_stops_the_run_at_a_batch_boundary(tmp_path, monkeypatch):
    system = make_csv_system(tmp_path, people(3))
    monkeypatch.setitem(
        runner.PROCESSORS, "full_import", "tests.connectors.test_jim_run:cancelled_import"
    )

    activity = run(system)

    assert activity.status == "cancelled"
    assert activity.message == "Cancelled on request."


def cancelled_import(activity, recorder):
    from runs.processors import full_import

    Activity.objects.filter(pk=activity.pk).update(cancel_requested=True)
    full_import(activity, recorder)


def test_execute_refuses_an_activity_that_is_not_queued(tmp_path):
    system = make_csv_system(tmp_path, people(1))
    activity = run(system)

    with pytest.raises(runner.NotQueued, match="is complete, not queued"):
        runner.execute(activity)


# --------------------------------------------------------------------------- a real process


@pytest.mark.django_db(transaction=True)
def test_manage_py_jim_run_in_a_process(tmp_path):
    make_csv_system(tmp_path, [person("1"), person("1"), person("2")])
    settings = connection.settings_dict
    url = (
        f"postgresql://{settings['USER']}:{settings['PASSWORD'] or ''}@{settings['HOST']}:"
        f"{settings['PORT']}/{settings['NAME']}"
    )

    done = subprocess.run(
        [sys.executable, "manage.py", "jim", "run", "HR", "Full Import", "--json"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["counts"]["errors"] == 2
    assert "Traceback" not in done.stderr
