"""A sync that dies half way loses nothing (issue 10, item 5).

A real ``python manage.py jim run HR "Full Sync"`` of 20,000 people is killed
(``kill -9``) or has every database connection it holds terminated
(``pg_terminate_backend``) after a known number of batches. Each batch commits its
pending exports with its objects, so the next delta sync starts at once, finishes
the work and leaves every in-scope person exactly one create pending export.

The source is a CSV file (bench/generate.py's people); the target a CSV system whose
pending exports are only inspected (no export runs).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from bench.generate import write_people_csv
from connectors import run_lock
from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseObject
from metaverse.sync import processor
from tests.builders import run
from tests.support.postgres import subprocess_database_url
from tests.sync.scenario import build_scenario, changes

REPO = Path(__file__).resolve().parents[2]
PEOPLE = 20_000
#: The run is stopped once this many objects are recorded as processed (3 batches).
STOP_AFTER = 3 * processor.BATCH_SIZE
DEADLINE_SECONDS = 120
#: A target CSO's person, as a lookup path from the CSO.
PERSON = "metaverse_object__attributes__employeeId__0"

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        accountName: text
        displayName: text
        department: text
        employeeStatus: text
        manager: reference
connected_systems:
  - name: HR
    connector: csv
    settings: {path: hr.csv}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          managerId: {type: reference, references: person}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
      - {name: Delta Sync, type: delta_sync}
  - name: Badges
    connector: csv
    settings: {path: badges.csv}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          manager: {type: reference, references: person}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Export, type: export}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{cs: employeeId, mv: employeeId}]
    project: true
    flows:
      - {mv: employeeId, from: employeeId}
      - {mv: accountName, from: accountName}
      - {mv: displayName, from: displayName}
      - {mv: department, from: department}
      - {mv: employeeStatus, from: status}
      - {mv: manager, from: managerId}
  - name: Badges people out
    connected_system: Badges
    direction: export
    object_type: person
    metaverse_object_type: person
    scope: "mv.employeeStatus == 'Active'"
    provision: true
    deprovision: delete
    flows:
      - {cs: employeeId, from: employeeId}
      - {cs: login, from: accountName}
      - {cs: name, from: displayName}
      - {cs: department, from: department}
      - {cs: manager, from: manager}
"""


@dataclass
class Estate:
    folder: Path
    active: set[str]
    manager_of: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start_full_sync(self) -> subprocess.Popen[bytes]:
        """``jim run HR "Full Sync"`` in a process of its own."""
        env = {**os.environ, "DATABASE_URL": subprocess_database_url()}
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "jim", "run", "HR", "Full Sync"],
            cwd=REPO,
            env=env,
            stdout=(self.folder / "stdout").open("wb"),
            stderr=(self.folder / "stderr").open("wb"),
        )
        return self.process

    def stderr(self) -> str:
        return (self.folder / "stderr").read_text()


@pytest.fixture
def estate(tmp_path) -> Iterator[Estate]:
    write_people_csv(tmp_path / "hr.csv", PEOPLE)
    with (tmp_path / "hr.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    (tmp_path / "jim.yaml").write_text(textwrap.dedent(CONFIG))
    call_command("jim", "apply", str(tmp_path / "jim.yaml"))
    imported = run(ConnectedSystem.objects.get(name="HR"), "Full Import")
    assert imported.status == "complete", imported.message
    estate = Estate(
        tmp_path,
        active={row["employeeId"] for row in rows if row["status"] == "Active"},
        manager_of={row["employeeId"]: row["managerId"] for row in rows if row["managerId"]},
    )
    yield estate
    if estate.process is not None and estate.process.poll() is None:
        estate.process.kill()  # a failed test: not into the database being emptied
        estate.process.wait()


def _wait_for_batches(process: subprocess.Popen[bytes]) -> Activity:
    """The running Full Sync once it has recorded STOP_AFTER objects processed."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the sync ended before it could be stopped"
        activity = Activity.objects.filter(profile_name="Full Sync").order_by("-pk").first()
        if activity is not None and activity.objects_processed >= STOP_AFTER:
            return activity
        time.sleep(0.02)
    raise AssertionError(f"the sync did not process {STOP_AFTER} objects")


def _finish_with_a_delta_sync(estate: Estate, stopped: Activity) -> None:
    """The next delta sync starts at once (the stopped run is recognised as failed),
    completes, and finishes the work."""
    hr = ConnectedSystem.objects.get(name="HR")
    assert ConnectorSpaceObject.objects.filter(connected_system=hr, sync_pending=True).exists()

    finished = run(hr, "Delta Sync")

    assert finished.status == "complete", finished.message
    stopped.refresh_from_db()
    assert stopped.status == "failed", (stopped.status, stopped.message)
    assert STOP_AFTER <= stopped.objects_processed < PEOPLE
    assert finished.objects_processed < PEOPLE  # the work left, not everything again
    _assert_one_create_per_active_person(estate)


def _assert_one_create_per_active_person(estate: Estate) -> None:
    assert MetaverseObject.objects.count() == PEOPLE
    assert not ConnectorSpaceObject.objects.filter(sync_pending=True).exists()
    badges = ConnectedSystem.objects.get(name="Badges")
    targets = dict(
        ConnectorSpaceObject.objects.filter(connected_system=badges).values_list(PERSON, "pk")
    )
    assert ConnectorSpaceObject.objects.filter(connected_system=badges).count() == len(targets)
    assert set(targets) == estate.active
    exports = PendingExport.objects.filter(connected_system=badges)
    per_person = Counter(exports.values_list(f"cs_object__{PERSON}", flat=True))
    assert set(per_person) == estate.active
    assert set(per_person.values()) == {1}
    assert set(exports.values_list("change_type", "status")) == {("create", "pending")}
    managers = dict(
        PendingExportAttributeChange.objects.filter(
            pending_export__connected_system=badges, attribute="manager"
        ).values_list(f"pending_export__cs_object__{PERSON}", "values")
    )
    expected = {
        employee_id: [targets[manager]]
        for employee_id, manager in estate.manager_of.items()
        if employee_id in estate.active and manager in estate.active
    }
    assert {k: v for k, v in managers.items() if v} == expected


@pytest.mark.django_db(transaction=True)
def test_a_full_sync_killed_mid_run_is_finished_by_the_next_delta_sync(estate):
    process = estate.start_full_sync()
    stopped = _wait_for_batches(process)

    process.send_signal(signal.SIGKILL)
    process.wait()

    assert "Traceback" not in estate.stderr(), estate.stderr()

    _finish_with_a_delta_sync(estate, stopped)


@pytest.mark.django_db(transaction=True)
def test_a_full_sync_whose_connections_are_terminated_fails_cleanly_and_loses_nothing(estate):
    process = estate.start_full_sync()
    stopped = _wait_for_batches(process)

    with connection.cursor() as cursor:  # every backend of the run, its lock's included
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [run_lock.application_name(stopped.pk)],
        )
        assert cursor.rowcount >= 2
    returncode = process.wait(timeout=DEADLINE_SECONDS)

    assert returncode != 0
    assert "Traceback" not in estate.stderr(), estate.stderr()
    _finish_with_a_delta_sync(estate, stopped)


@pytest.mark.django_db
@pytest.mark.parametrize("delta", [False, True], ids=["full sync", "delta sync"])
def test_a_provisioned_object_without_a_pending_export_gets_a_create(delta):
    """A ``pending_provisioning`` CSO whose create was never written (as a run that
    died between them could leave before) is provisioned, not taken for an object
    that exists: the next sync stages a create with every attribute and its DN."""
    scenario = build_scenario()
    scenario.hr_row("1", accountName="jdoe", lastName="Doe")
    scenario.sync()
    cso = scenario.dir_cso_of("1")
    assert cso.status == "pending_provisioning"
    PendingExport.objects.filter(cs_object=cso).delete()
    scenario.update_hr("1")  # marked for sync, nothing changed

    scenario.sync(delta=delta)

    pe = scenario.export_of("1")
    assert (pe.change_type, pe.status) == ("create", "pending")
    assert pe.dn == "uid=jdoe,ou=people,dc=example,dc=org"
    assert changes(pe) == {
        ("uid", "update"): ["jdoe"],
        ("cn", "update"): ["John Doe"],
        ("sn", "update"): ["Doe"],
        ("mail", "update"): ["john.doe@example.org"],
    }
    assert ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).count() == 1


@pytest.mark.django_db
def test_a_provisioned_object_an_export_wrote_is_not_created_again():
    """The other side: a ``pending_provisioning`` CSO an export has written (it holds
    the values sent) whose pending export is gone is an existing object: a change
    is staged as an update of that attribute only."""
    scenario = build_scenario()
    scenario.hr_row("1", accountName="jdoe", lastName="Doe")
    scenario.sync()
    cso = scenario.dir_cso_of("1")
    cso.attributes = {
        "uid": ["jdoe"],
        "cn": ["John Doe"],
        "sn": ["Doe"],
        "mail": ["john.doe@example.org"],
    }
    cso.save()  # as the export of the create records what it sent
    PendingExport.objects.filter(cs_object=cso).delete()
    scenario.update_hr("1", lastName="Dough")

    scenario.sync(delta=True)

    pe = scenario.export_of("1")
    assert (pe.change_type, pe.status, pe.dn) == ("update", "pending", "")
    assert changes(pe) == {
        ("cn", "update"): ["John Dough"],
        ("sn", "update"): ["Dough"],
        ("mail", "update"): ["john.dough@example.org"],
    }
