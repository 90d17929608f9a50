"""``make demo``: its HR file, its set-up and first cycle (on the test PostgreSQL, against
the demo's own slapd or its CSV directory), and how it stops what it started."""

from __future__ import annotations

import csv
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from bench.generate import COLUMNS
from connectors.models import ConnectorSpaceObject
from demo import cycle
from demo.data import write_hr_csv
from demo.directory import csv_target, ldap_target, open_target
from demo.processes import Supervisor
from exports.models import PendingExport
from jim_project.devservers import slapd as slapd_server
from metaverse.models import MetaverseObject


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))[1:]


def test_the_hr_file_has_1000_people_a_few_duplicate_ids_and_one_malformed_row(tmp_path):
    hr = write_hr_csv(tmp_path / "hr.csv")

    rows = _rows(hr.path)
    well_formed = [row for row in rows if len(row) == len(COLUMNS)]
    malformed = [(number, row) for number, row in enumerate(rows, 2) if len(row) != len(COLUMNS)]
    ids = Counter(row[0] for row in well_formed)
    assert len(ids) == 1000 and len(well_formed) == hr.people == 1003
    assert sorted(i for i, n in ids.items() if n > 1) == list(hr.duplicate_ids)
    assert all(ids[i] == 2 for i in hr.duplicate_ids) and len(hr.duplicate_ids) == 3
    assert [number for number, _ in malformed] == [hr.malformed_line]
    assert len({row[4] for row in well_formed}) == 1003  # every person has their own account
    people = {row[0]: row for row in well_formed}
    assert all(not row[-1] or row[-1] in people for row in well_formed)  # managers exist
    assert len({row[6] for row in well_formed}) > 5  # departments
    assert write_hr_csv(tmp_path / "again.csv").path.read_bytes() == hr.path.read_bytes()


def _active(hr_path: Path) -> set[str]:
    """The accounts the directory should get: Active people whose id is not duplicated."""
    rows = [row for row in _rows(hr_path) if len(row) == len(COLUMNS)]
    ids = Counter(row[0] for row in rows)
    return {row[4] for row in rows if ids[row[0]] == 1 and row[10] == "Active"}


def _check_first_cycle(summaries: list[dict], hr_path: Path, malformed_line: int) -> None:
    assert [(s["system"], s["profile"]) for s in summaries] == list(cycle.FIRST_CYCLE)
    hr_import, *rest = summaries
    assert hr_import["status"] == "complete_with_errors"
    errors = Counter(error["error_type"] for error in hr_import["errors"])
    assert errors == {"duplicate_object": 6, "invalid_data": 1}
    assert any(f"line {malformed_line}:" in e["message"] for e in hr_import["errors"])
    assert [s["status"] for s in rest] == ["complete"] * 4, [cycle.describe(s) for s in rest]

    accounts = _active(hr_path)
    assert summaries[2]["counts"]["provisioned"] == len(accounts)
    assert MetaverseObject.objects.count() == len(accounts)  # Terminated: out of scope
    directory = ConnectorSpaceObject.objects.filter(connected_system__name=cycle.DIRECTORY)
    assert {cso.attributes["uid"][0] for cso in directory} == accounts
    assert {(cso.status, cso.join_type) for cso in directory} == {("normal", "provisioned")}
    assert PendingExport.objects.count() == 0  # every export confirmed


@pytest.mark.django_db
@pytest.mark.ldap
def test_set_up_and_first_cycle_provision_the_demo_slapd(tmp_path):
    hr = write_hr_csv(tmp_path / "hr.csv")
    target = ldap_target(tmp_path, keep=False)
    try:
        assert target.kind == "ldap" and not target.kept
        report = cycle.apply_configuration(target, {})
        assert report.count("create") > 20

        summaries = cycle.first_cycle()

        _check_first_cycle(summaries, hr.path, hr.malformed_line)
        connection = target.slapd.connection()
        try:
            entries = connection.extend.standard.paged_search(
                "ou=people,dc=example,dc=org",
                "(uid=*)",
                attributes=["uid", "mail"],
                generator=False,
            )
        finally:
            connection.unbind()
        assert {e["attributes"]["uid"][0] for e in entries} == _active(hr.path)
        assert cycle.known_directory() == {"ldap": True}
        # Run again: the configuration is already there and the cycle finds nothing to do.
        assert cycle.apply_configuration(target, {}).changes == []
        again = cycle.first_cycle()
        assert [s["counts"]["provisioned"] + s["counts"]["exported"] for s in again] == [0] * 5
    finally:
        target.slapd.stop()
    # The slapd keeps its data: started again, it is the same directory.
    again = ldap_target(tmp_path, keep=True)
    try:
        assert again.kept and again.variables["JIM_LDAP_PASSWORD"] == target.slapd.service_password
    finally:
        again.slapd.stop()


@pytest.mark.django_db
def test_the_csv_directory_replaces_a_directory_jim_no_longer_has(tmp_path):
    hr = write_hr_csv(tmp_path / "hr.csv")
    target = csv_target(tmp_path, keep=False)
    cycle.apply_configuration(target, {})
    _check_first_cycle(cycle.first_cycle(), hr.path, hr.malformed_line)
    assert {row[0] for row in _rows(tmp_path / "directory.csv")} == _active(hr.path)
    assert cycle.known_directory() == {"csv": True}

    # The file is gone: the demo starts the directory empty and forgets the old one.
    (tmp_path / "directory.csv").unlink()
    target = csv_target(tmp_path, keep=True)
    assert not target.kept
    cycle.forget_directory()
    cycle.apply_configuration(target, {})
    summaries = cycle.first_cycle()
    assert summaries[2]["counts"]["provisioned"] == len(_active(hr.path))
    assert PendingExport.objects.count() == 0


def test_without_slapd_the_directory_is_a_csv_file(tmp_path, monkeypatch):
    monkeypatch.setattr(slapd_server, "SLAPD", tmp_path / "no-slapd")

    target = open_target(tmp_path, keep={"csv": True})

    assert (target.kind, target.slapd, target.kept) == ("csv", None, False)
    assert "no-slapd is not installed" in target.note
    assert target.config.name == "csv.yaml" and target.variables == {"JIM_DEMO_DATA": str(tmp_path)}


@pytest.mark.django_db
def test_the_admin_user_is_made_once_and_gets_a_new_password_each_time():
    user, first = cycle.ensure_admin()
    again, second = cycle.ensure_admin()
    admin = get_user_model().objects.get(username=user)
    assert user == again == "admin" and first != second
    assert admin.is_superuser and admin.is_staff and admin.check_password(second)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(") ", 1)[1][0] != "Z"


def test_stopping_the_servers_leaves_none_of_their_processes(tmp_path):
    """A child that stops on Ctrl-C, and one that ignores it and started another
    process: both stopped, with what they started."""
    pid_file = tmp_path / "grandchild.pid"
    stubborn = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"p = subprocess.Popen(['sleep', '60']); open({str(pid_file)!r}, 'w').write(str(p.pid)); "
        "time.sleep(60)"
    )
    supervisor = Supervisor()
    stopped = []
    polite = supervisor.start("polite", [sys.executable, "-c", "import time; time.sleep(60)"])
    supervisor.start("stubborn", [sys.executable, "-c", stubborn])
    supervisor.stop_later(lambda: stopped.append(True))
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    children = [child.process for child in supervisor.children]

    begin = time.monotonic()
    supervisor.stop_all(timeout=1)

    assert time.monotonic() - begin < 5
    assert polite.process.returncode != 0 and all(p.poll() is not None for p in children)
    deadline = time.monotonic() + 5
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the grandchild is still running"
        time.sleep(0.05)
    assert stopped == [True] and supervisor.children == []
