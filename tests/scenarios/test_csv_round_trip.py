"""CSV target round trip (issue 5), against real files and the real PostgreSQL:
HR CSV → import → sync → provision to a CSV *target* file (the CSV connector rewrites
the whole file atomically) → confirming full import of that same file; then a mover
(one attribute changes in HR) and a leaver (deprovisioned by deleting its row).

The configuration is applied with ``jim apply``, as the LDAP scenarios are; the HR
file uses their columns and :func:`~tests.scenarios.conftest.person` rows.
"""

from __future__ import annotations

import csv
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command

from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.builders import run, write_csv
from tests.scenarios.estate import PEOPLE_HEADER, person

pytestmark = pytest.mark.django_db

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        accountName: text
        givenName: text
        sn: text
        displayName: text
        department: text
        employeeStatus: text
connected_systems:
  - name: HR
    connector: csv
    settings: {path: hr.csv}
    object_types:
      - {name: person, external_id: employeeId}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
      - {name: Delta Sync, type: delta_sync}
  - name: Badges
    connector: csv
    settings: {path: badges.csv}
    object_types:
      - {name: person, external_id: employeeId}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
      - {name: Export, type: export}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    scope: "cs.status != 'Terminated'"
    join: [{cs: employeeId, mv: employeeId}]
    project: true
    flows:
      - {mv: employeeId, from: employeeId}
      - {mv: accountName, from: accountName}
      - {mv: givenName, from: firstName}
      - {mv: sn, from: lastName}
      - {mv: displayName, expression: "cs.firstName ~ ' ' ~ cs.lastName"}
      - {mv: department, from: department}
      - {mv: employeeStatus, from: status}
  - name: Badges people join
    connected_system: Badges
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{cs: employeeId, mv: employeeId}]
    project: false
    flows: []
  - name: Badges people out
    connected_system: Badges
    direction: export
    object_type: person
    metaverse_object_type: person
    scope: "mv.employeeStatus == 'Active'"
    provision: true
    deprovision: delete
    enforce_state: true
    flows:
      - {cs: employeeId, from: employeeId}
      - {cs: login, from: accountName}
      - {cs: name, from: displayName}
      - {cs: department, from: department}
      - {cs: mail, expression: "(mv.givenName ~ '.' ~ mv.sn) | lower ~ '@example.org'"}
"""

#: The columns of the target file: the external id first, then what the export rule flows.
TARGET_COLUMNS = {"employeeId", "login", "name", "department", "mail"}


@dataclass
class CsvEstate:
    """The HR file, the target (badges) file, and how to run things."""

    folder: Path

    @property
    def target(self) -> Path:
        return self.folder / "badges.csv"

    def write_people(self, rows: list[dict]) -> None:
        write_csv(self.folder / "hr.csv", rows, header=PEOPLE_HEADER)

    def run(self, system: str, profile: str) -> Activity:
        activity = run(ConnectedSystem.objects.get(name=system), profile)
        problems = [(i.error_type, i.message) for i in activity.items.exclude(error_type="")]
        assert activity.status == "complete", (system, profile, activity.message, problems)
        return activity

    def target_rows(self) -> tuple[list[str], dict[str, dict[str, str]]]:
        """The target file's header and its rows by employeeId, read with the csv module."""
        with self.target.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = list(reader.fieldnames or [])
        assert header[0] == "employeeId" and set(header) == TARGET_COLUMNS, header
        by_id = {row["employeeId"]: row for row in rows}
        assert len(by_id) == len(rows), "one row per employeeId"
        return header, by_id

    def assert_no_temporary_file(self) -> None:
        """The export wrote a temporary file beside the target and renamed it into place."""
        assert sorted(p.name for p in self.folder.iterdir()) == ["badges.csv", "hr.csv", "jim.yaml"]

    def target_csos(self) -> list[ConnectorSpaceObject]:
        return list(
            ConnectorSpaceObject.objects.filter(connected_system__name="Badges").order_by("pk")
        )

    def assert_confirmed(self, count: int) -> None:
        """Nothing left to export or confirm; ``count`` normal, joined CSOs in the target."""
        assert list(PendingExport.objects.values_list("change_type", "status")) == []
        csos = self.target_csos()
        assert [(c.status, c.join_type) for c in csos] == [("normal", "provisioned")] * count
        assert not ConnectorSpaceObject.objects.filter(status="obsolete").exists()


@pytest.fixture
def estate(tmp_path) -> CsvEstate:
    estate = CsvEstate(tmp_path)
    estate.write_people([])
    config = tmp_path / "jim.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    call_command("jim", "apply", str(config))
    return estate


STAFF = [
    person("1001", "Ada", "Lovelace", "alovelace", department="Engineering"),
    person("1002", "Grace", "Hopper", "ghopper", department="Navy"),
    person("1003", "Alan", "Turing", "aturing", department="Research"),
]


def _provision_and_confirm(estate: CsvEstate) -> None:
    estate.write_people(STAFF)
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    creates = PendingExport.objects.order_by("pk")
    assert [(pe.change_type, pe.status) for pe in creates] == [("create", "pending")] * 3
    assert not estate.target.exists()  # nothing is written before the export runs

    exported = estate.run("Badges", "Export")

    assert exported.counts == {"provisioned": 3}
    assert set(PendingExport.objects.values_list("status", flat=True)) == {"exported"}
    _, rows = estate.target_rows()
    assert rows == {
        "1001": {
            "employeeId": "1001",
            "login": "alovelace",
            "name": "Ada Lovelace",
            "department": "Engineering",
            "mail": "ada.lovelace@example.org",
        },
        "1002": {
            "employeeId": "1002",
            "login": "ghopper",
            "name": "Grace Hopper",
            "department": "Navy",
            "mail": "grace.hopper@example.org",
        },
        "1003": {
            "employeeId": "1003",
            "login": "aturing",
            "name": "Alan Turing",
            "department": "Research",
            "mail": "alan.turing@example.org",
        },
    }
    estate.assert_no_temporary_file()

    confirming = estate.run("Badges", "Full Import")

    assert confirming.counts.get("added", 0) == 0  # the exported rows were found, not new
    estate.assert_confirmed(3)
    assert {c.external_id for c in estate.target_csos()} == {"1001", "1002", "1003"}
    cso = ConnectorSpaceObject.objects.get(connected_system__name="Badges", external_id="1002")
    assert cso.attributes["mail"] == ["grace.hopper@example.org"]
    assert cso.metaverse_object == MetaverseObject.objects.get(display_name="Grace Hopper")


def test_joiners_are_written_to_the_target_file_and_confirmed(estate):
    _provision_and_confirm(estate)

    # The round trip is closed: syncing either side again stages nothing.
    estate.run("Badges", "Full Sync")
    estate.run("HR", "Full Sync")
    assert PendingExport.objects.count() == 0
    before = estate.target.read_bytes()
    assert estate.run("Badges", "Export").counts == {}
    assert estate.target.read_bytes() == before


def test_mover_is_exported_as_one_update_and_confirmed(estate):
    _provision_and_confirm(estate)
    header_before, rows_before = estate.target_rows()
    moved = [dict(row) for row in STAFF]
    moved[1]["department"] = "Research"  # Grace moves
    estate.write_people(moved)
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.cs_object.external_id) == ("update", "1002")
    assert [
        (c.attribute, c.change_type, c.previous_values, c.values)
        for c in pe.attribute_changes.all()
    ] == [("department", "update", ["Navy"], ["Research"])]

    inode = estate.target.stat().st_ino

    assert estate.run("Badges", "Export").counts == {"exported": 1}

    assert estate.target.stat().st_ino != inode  # a new file replaced the old one whole
    estate.assert_no_temporary_file()

    header, rows = estate.target_rows()
    assert header == header_before  # the same columns, in the same order
    assert rows["1002"] == {**rows_before["1002"], "department": "Research"}
    assert {k: v for k, v in rows.items() if k != "1002"} == {
        k: v for k, v in rows_before.items() if k != "1002"
    }
    estate.run("Badges", "Full Import")
    estate.assert_confirmed(3)
    cso = ConnectorSpaceObject.objects.get(connected_system__name="Badges", external_id="1002")
    assert cso.attributes["department"] == ["Research"]


def test_leaver_is_deprovisioned_by_removing_its_row(estate):
    _provision_and_confirm(estate)
    header_before, rows_before = estate.target_rows()
    leaving = [dict(row) for row in STAFF]
    leaving[0]["status"] = "Terminated"  # Ada leaves
    estate.write_people(leaving)
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.cs_object.external_id) == ("delete", "1001")

    assert estate.run("Badges", "Export").counts == {"deprovisioned": 1}
    estate.assert_no_temporary_file()

    header, rows = estate.target_rows()
    assert header == header_before
    assert rows == {k: v for k, v in rows_before.items() if k != "1001"}
    confirming = estate.run("Badges", "Full Import")
    assert confirming.counts.get("deleted", 0) == 0  # the delete was JIM's own, confirmed
    estate.assert_confirmed(2)
    assert {c.external_id for c in estate.target_csos()} == {"1002", "1003"}
