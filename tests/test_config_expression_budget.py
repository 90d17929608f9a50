"""`jim apply --check` warns about expressions that exceed their budget on current data.

The file is valid (exit 0, nothing changed); each expression that exceeds the memory
or time budget on one of the stored objects it would run on gets a warning on stderr
naming its key path, the object and the limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.models import ConnectedSystem
from tests.builders import run, write_csv
from tests.support.cli import jim
from tests.support.configuration import config_state

pytestmark = pytest.mark.django_db

#: A person whose "width" asks an expression for 300 million characters.
ROWS = [
    {"employeeId": "1001", "firstName": "Ada", "lastName": "Lovelace", "width": "10"},
    {"employeeId": "1002", "firstName": "Grace", "lastName": "Hopper", "width": "300000000"},
]

CONFIG = """\
version: 1
metaverse:
  object_types:
    person:
      attributes: {{employeeId: text, displayName: text, width: text}}
connected_systems:
  - name: HR
    connector: csv
    settings: {{path: hr.csv}}
    object_types:
      - {{name: person, external_id: employeeId}}
    run_profiles:
      - {{name: Full Import, type: full_import}}
      - {{name: Full Sync, type: full_sync}}
  - name: Badges
    connector: csv
    settings: {{path: badges.csv}}
    object_types:
      - name: badge
        external_id: employeeId
        attributes: {{employeeId: text, label: text}}
    run_profiles:
      - {{name: Export, type: export}}
sync_rules:
  - name: HR people in
    connected_system: HR
    direction: import
    object_type: person
    metaverse_object_type: person
    scope: "{scope}"
    join: [{{cs: employeeId, mv: employeeId}}]
    project: true
    flows:
      - {{mv: employeeId, from: employeeId}}
      - {{mv: displayName, expression: "{display_name}"}}
      - {{mv: width, from: width}}
  - name: Badges out
    connected_system: Badges
    direction: export
    object_type: badge
    metaverse_object_type: person
    provision: true
    flows:
      - {{cs: employeeId, from: employeeId}}
      - {{cs: label, expression: "{label}"}}
"""

PLAIN = {
    "scope": "true",
    "display_name": "cs.firstName ~ ' ' ~ cs.lastName",
    "label": "mv.displayName | upper",
}


def write_config(folder: Path, **expressions: str) -> Path:
    path = folder / "jim.yaml"
    path.write_text(CONFIG.format(**{**PLAIN, **expressions}))
    return path


@pytest.fixture
def synced(tmp_path: Path) -> Path:
    """The plain configuration applied, and HR's two people imported and synced."""
    write_csv(tmp_path / "hr.csv", ROWS)
    assert jim("apply", str(write_config(tmp_path)))[0] == 0
    hr = ConnectedSystem.objects.get(name="HR")
    assert run(hr, "Full Import").status == "complete"
    assert run(hr, "Full Sync").status == "complete"
    return tmp_path


def check(path: Path) -> tuple[int, str, str]:
    """``jim apply --check``, asserting that it changed nothing."""
    before = config_state()
    result = jim("apply", str(path), "--check")
    assert config_state() == before
    return result


def test_a_flow_that_exceeds_the_budget_on_a_stored_object_is_a_warning(synced: Path) -> None:
    path = write_config(synced, display_name="cs.firstName | center(cs.width | int)")

    status, out, err = check(path)

    assert status == 0
    assert "valid" in out
    [warning] = err.splitlines()
    assert warning.startswith("warning: sync_rules[0].flows[1].expression: exceeds its budget")
    assert "HR person '1002'" in warning
    assert "JIM_EXPRESSION_MAX_TEXT" in warning


def test_scopes_export_flows_and_dn_templates_are_tried_too(synced: Path) -> None:
    path = write_config(
        synced,
        scope="(cs.lastName * (cs.width | int)) != ''",
        label="'%0*d' % (mv.width | int, 1)",
    )

    status, _, err = check(path)

    assert status == 0
    assert [line.split(":")[1].strip() for line in err.splitlines()] == [
        "sync_rules[0].scope",
        "sync_rules[1].flows[1].expression",
    ]
    assert "metaverse person 'Grace Hopper'" in err.splitlines()[1]


def test_the_time_limit_is_reported_too(synced: Path, settings) -> None:
    settings.JIM_EXPRESSION_TIME_LIMIT_MS = 50
    slow = "range(20000) | select('in', range(20000) | list) | list | length"
    path = write_config(synced, display_name=f"cs.firstName ~ ({slow})")

    status, _, err = check(path)

    assert status == 0
    assert "sync_rules[0].flows[1].expression" in err and "JIM_EXPRESSION_TIME_LIMIT_MS" in err


def test_expressions_within_the_budget_and_other_failures_give_no_warning(synced: Path) -> None:
    path = write_config(synced, display_name="cs.firstName ~ (1 / 0)")

    status, _, err = check(path)

    assert (status, err) == (0, "")


def test_with_no_objects_yet_there_is_nothing_to_warn_about(tmp_path: Path) -> None:
    write_csv(tmp_path / "hr.csv", ROWS)
    path = write_config(tmp_path, display_name="cs.firstName | center(cs.width | int)")

    status, _, err = check(path)

    assert (status, err) == (0, "")


def test_an_invalid_file_is_still_an_error(synced: Path) -> None:
    path = write_config(synced, display_name="cs.firstName | center(cs.width | int")

    status, _, err = check(path)

    assert status == 2
    assert "sync_rules[0].flows[1].expression: does not compile" in err
    assert "warning" not in err


def test_an_expression_nested_past_python_s_stack_is_an_invalid_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "hr.csv", ROWS)
    path = write_config(tmp_path, display_name="(" * 5000 + "1" + ")" * 5000)

    status, _, err = check(path)

    assert status == 2
    assert "sync_rules[0].flows[1].expression: does not compile: nested too deeply" in err
