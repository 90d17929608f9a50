"""Hostile HR values through a whole cycle into a CSV target (issue 11), on real files
and PostgreSQL: HR file → import → sync → export to the target file → confirming
import of the target → export again.

The case seen: an HR department ``"\\r=1+1"`` was written unquoted into the target;
from then on every import of the target reported ``invalid_data`` and every export to
it failed. And a NUL in one HR cell changes nothing in the target.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport
from tests.builders import errors, run

pytestmark = pytest.mark.django_db

CONFIG = """
version: 1
metaverse:
  object_types:
    person:
      attributes:
        employeeId: text
        department: text
        groups: {type: text, multivalued: true}
connected_systems:
  - name: HR
    connector: csv
    settings: {path: hr.csv}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          groups: {multivalued: true}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
  - name: Target
    connector: csv
    settings: {path: target.csv}
    object_types:
      - name: person
        external_id: employeeId
        attributes:
          groups: {multivalued: true}
    run_profiles:
      - {name: Full Import, type: full_import}
      - {name: Full Sync, type: full_sync}
      - {name: Export, type: export}
sync_rules:
  - name: HR in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{cs: employeeId, mv: employeeId}]
    project: true
    flows:
      - {mv: employeeId, from: employeeId}
      - {mv: department, from: department}
      - {mv: groups, from: groups}
  - name: Target join
    connected_system: Target
    direction: import
    object_type: person
    metaverse_object_type: person
    join: [{cs: employeeId, mv: employeeId}]
    project: false
    flows: []
  - name: Target out
    connected_system: Target
    direction: export
    object_type: person
    metaverse_object_type: person
    provision: true
    flows:
      - {cs: employeeId, from: employeeId}
      - {cs: department, from: department}
      - {cs: groups, from: groups}
"""

HOSTILE = {
    "1001": ("\r=1+1", "staff"),
    "1002": ('Sales\r\nand, "Marketing"', "=cmd|' /C calc'!A0"),
    "1003": ("\uff1dSUM(A1)", "'\t@x;+y"),  # escaped in HR: the values \t@x and +y
    "1004": ("Plain", "a"),
}


@pytest.fixture
def folder(tmp_path) -> Path:
    write_hr(tmp_path, {})
    (tmp_path / "jim.yaml").write_text(textwrap.dedent(CONFIG))
    call_command("jim", "apply", str(tmp_path / "jim.yaml"))
    return tmp_path


def write_hr(folder: Path, rows: dict[str, tuple[str, str]]) -> None:
    """The HR file, every cell quoted (a lone CR must be quoted to be read)."""
    with (folder / "hr.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(["employeeId", "department", "groups"])
        writer.writerows([key, department, groups] for key, (department, groups) in rows.items())


def step(system: str, profile: str):
    activity = run(ConnectedSystem.objects.get(name=system), profile)
    assert activity.status == "complete", (system, profile, activity.message, errors(activity))
    return activity


def target_cells(folder: Path) -> list[list[str]]:
    with (folder / "target.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle, strict=True))


def test_hostile_hr_values_reach_the_target_quoted_escaped_and_read_back(folder):
    write_hr(folder, HOSTILE)
    step("HR", "Full Import")
    step("HR", "Full Sync")

    assert step("Target", "Export").counts == {"provisioned": 4}
    confirming = step("Target", "Full Import")

    assert errors(confirming) == []
    assert not PendingExport.objects.exists()  # every export confirmed: values read back
    target = {
        cso.external_id: cso.attributes
        for cso in ConnectorSpaceObject.objects.filter(connected_system__name="Target")
    }
    assert {key: attributes["department"] for key, attributes in target.items()} == {
        key: [department] for key, (department, _) in HOSTILE.items()
    }
    assert target["1003"]["groups"] == ["\t@x", "+y"]
    for row in target_cells(folder)[1:]:
        assert all(cell[:1] not in "=+-@\t\r\uff1d\uff0b\uff0d\uff20" for cell in row), row
    # The target stays writable: the next change is exported and confirmed.
    write_hr(folder, {**HOSTILE, "1004": ("Moved", "a")})
    step("HR", "Full Import")
    step("HR", "Full Sync")
    assert step("Target", "Export").counts == {"exported": 1}
    assert errors(step("Target", "Full Import")) == []
    assert not PendingExport.objects.exists()


def test_a_nul_in_an_hr_cell_changes_nothing_in_the_target(folder):
    write_hr(folder, {"1001": ("Sales", "a")})
    step("HR", "Full Import")
    step("HR", "Full Sync")
    step("Target", "Export")
    step("Target", "Full Import")
    before = (folder / "target.csv").read_bytes()

    write_hr(folder, {"1001": ("Sa\x00les", "a")})
    imported = run(ConnectedSystem.objects.get(name="HR"), "Full Import")
    step("HR", "Full Sync")

    assert imported.status == "complete_with_errors", imported.message
    assert errors(imported) == [("invalid_data", "1001")]
    assert not PendingExport.objects.exists()
    assert step("Target", "Export").counts == {}
    assert (folder / "target.csv").read_bytes() == before
