"""`jim dump`: the spec's format, secrets never shown, and dump → apply changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.models import (
    ConnectedSystem,
    Schedule,
    ScheduleStep,
)
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from tests.builders import add_object_type, make_connected_system
from tests.support.cli import jim
from tests.support.configuration import (
    EXAMPLE,
    PASSWORD,
    config_state,
    example,
    no_writes,
    write_config,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def applied(ldap_password: str) -> None:
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0, err


def dump() -> str:
    status, out, err = jim("dump")
    assert status == 0, err
    return out


def assert_round_trip(tmp_path: Path) -> None:
    """dump → apply changes no row, and dumping again prints the same text."""
    first = dump()
    path = tmp_path / "dumped.yaml"
    path.write_text(first)
    before = config_state()
    with no_writes():
        status, out, err = jim("apply", str(path))
    assert status == 0, err
    assert "no changes" in out
    assert config_state() == before
    assert dump() == first


def test_dump_then_apply_changes_nothing(applied: None, tmp_path: Path) -> None:
    assert_round_trip(tmp_path)


def test_dump_then_apply_with_prune_changes_nothing(applied: None, tmp_path: Path) -> None:
    path = tmp_path / "dumped.yaml"
    path.write_text(dump())
    with no_writes():
        assert jim("apply", str(path), "--prune")[0] == 0


def test_dump_follows_the_spec_layout(applied: None) -> None:
    text = dump()
    data = yaml.safe_load(text)

    assert list(data) == ["version", "metaverse", "connected_systems", "sync_rules"]
    assert data["version"] == 1
    person = data["metaverse"]["object_types"]["person"]
    assert person["attributes"]["manager"] == "reference"
    assert data["metaverse"]["object_types"]["group"]["attributes"]["member"] == {
        "type": "reference",
        "multivalued": True,
    }
    assert person["deletion"] == {"when": "last_connector_removed", "grace_period_days": 0}

    hr, directory = data["connected_systems"]
    assert list(hr) == [
        "name",
        "connector",
        "settings",
        "base_dir",
        "object_types",
        "deletion_threshold",
        "run_profiles",
    ]
    assert hr["deletion_threshold"] == "20%"
    assert hr["object_types"] == [
        {
            "name": "person",
            "external_id": "employeeId",
            "attributes": {"managerId": {"type": "reference", "references": "person"}},
        }
    ]
    assert list(directory["settings"]) == [
        "url",
        "bind_dn",
        "bind_password",
        "base_dn",
        "page_size",
        "delta_method",
    ]
    assert directory["export"] == {
        "approval": "none",
        "max_retries": 5,
        "retry_backoff_seconds": 60,
    }
    assert directory["run_profiles"][0] == {"name": "Full Import", "type": "full_import"}

    rules = data["sync_rules"]
    assert [r["name"] for r in rules] == [
        "HR people in",
        "Directory people join",
        "Directory people out",
    ]
    assert list(rules[0]) == [
        "name",
        "connected_system",
        "direction",
        "object_type",
        "metaverse_object_type",
        "scope",
        "join",
        "project",
        "flows",
    ]
    assert rules[1]["flows"] == []
    assert list(rules[2])[5:] == [
        "scope",
        "provision",
        "dn",
        "deprovision",
        "enforce_state",
        "flows",
    ]
    assert rules[2]["flows"][3] == {
        "cs": "mail",
        "expression": "(mv.givenName ~ '.' ~ mv.sn) | lower ~ '@example.org'",
    }
    # Short mappings are written on one line, expressions quoted, as in the spec.
    assert "      - {name: Full Import, type: full_import}\n" in text
    assert "    scope: \"cs.status != 'Terminated'\"\n" in text
    assert "      - {cs: employeeId, mv: employeeId}\n" in text


# --------------------------------------------------------------------------- secrets


def test_a_secret_is_dumped_as_its_variable_never_its_value(applied: None) -> None:
    text = dump()
    assert PASSWORD not in text
    assert "      bind_password: ${JIM_LDAP_PASSWORD}\n" in text
    assert "_secret_env" not in text


def test_a_secret_set_outside_the_file_is_dumped_as_the_default_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = make_connected_system(
        "Corp Directory",
        "ldap",
        {"url": "ldap://x", "base_dn": "dc=x"},
        object_type=None,
        profiles=(),
        secret_settings={"bind_password": "typed-in-the-admin"},
    )
    text = dump()
    assert "typed-in-the-admin" not in text
    assert "bind_password: ${JIM_CORP_DIRECTORY_BIND_PASSWORD}" in text

    # Applying the dump where the variable is unset keeps the stored secret.
    monkeypatch.delenv("JIM_CORP_DIRECTORY_BIND_PASSWORD", raising=False)
    path = tmp_path / "dumped.yaml"
    path.write_text(text)
    with no_writes():
        status, _, err = jim("apply", str(path))
    assert status == 0, err
    assert "the stored bind_password is kept" in err
    system.refresh_from_db()
    assert system.secret_settings == {"bind_password": "typed-in-the-admin"}


def test_a_secret_never_reaches_the_settings_column(applied: None) -> None:
    for system in ConnectedSystem.objects.all():
        assert PASSWORD not in str(system.settings)


# --------------------------------------------------------------------------- other sources


def test_a_configuration_built_in_the_admin_round_trips(tmp_path: Path) -> None:
    """Rows made without ``apply`` (equal precedences, no base folder, discovered attributes)."""
    person = MetaverseObjectType.objects.create(name="person")
    MetaverseAttribute.objects.create(object_type=person, name="employeeId")
    MetaverseAttribute.objects.create(object_type=person, name="groups", multivalued=True)
    hr = make_connected_system(
        "HR",
        "csv",
        {"path": "/data/hr.csv"},
        object_type=None,
        page_size=250,
        deletion_threshold="500",
    )
    hr_person = add_object_type(
        hr,
        "person",
        external_id="employeeId",
        attributes={
            "employeeId": "text",
            "startDate": "datetime",
            "badge": {"writability": "read_only"},
        },
        selected=False,
    )
    for name in ("B rule", "A rule"):
        rule = SyncRule.objects.create(
            name=name,
            connected_system=hr,
            direction="import",
            cs_object_type=hr_person,
            mv_object_type=person,
            enabled=name == "A rule",
        )
        SyncRuleJoin.objects.create(
            sync_rule=rule, cs_attribute="employeeId", mv_attribute="employeeId"
        )
        SyncRuleFlow.objects.create(sync_rule=rule, source="employeeId", target="employeeId")
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *", stop_on_failure=False)
    ScheduleStep.objects.create(schedule=schedule, run_profile=hr.run_profiles.get())

    text = dump()
    data = yaml.safe_load(text)
    system = data["connected_systems"][0]
    assert system["base_dir"] == ""
    assert system["deletion_threshold"] == 500
    assert system["object_types"][0]["selected"] is False
    assert system["object_types"][0]["attributes"] == {
        "startDate": "datetime",
        "badge": {"type": "text", "writability": "read_only"},
    }
    assert system["run_profiles"] == [
        {"name": "Full Import", "type": "full_import", "page_size": 250}
    ]
    assert "export" not in system
    assert [r["name"] for r in data["sync_rules"]] == ["A rule", "B rule"]
    assert data["sync_rules"][1]["enabled"] is False
    assert data["schedules"] == [
        {
            "name": "Nightly",
            "cron": "0 2 * * *",
            "stop_on_failure": False,
            "steps": [{"system": "HR", "profile": "Full Import"}],
        }
    ]
    assert_round_trip(tmp_path)


def test_an_empty_configuration_dumps_and_applies(tmp_path: Path) -> None:
    data = yaml.safe_load(dump())
    assert data == {
        "version": 1,
        "metaverse": {"object_types": {}},
        "connected_systems": [],
        "sync_rules": [],
    }
    assert_round_trip(tmp_path)


def test_dump_output_file_leaves_out_base_dir_of_its_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIM_LDAP_PASSWORD", PASSWORD)
    source = write_config(tmp_path, example())
    assert jim("apply", str(source))[0] == 0

    target = tmp_path / "dumped.yaml"
    status, _, err = jim("dump", "--output", str(target))
    assert status == 0, err
    text = target.read_text()
    assert "base_dir" not in text
    with no_writes():
        assert jim("apply", str(target))[0] == 0

    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert jim("dump", "-o", str(elsewhere / "d.yaml"))[0] == 0
    assert f"base_dir: {tmp_path}" in (elsewhere / "d.yaml").read_text()
    with no_writes():
        assert jim("apply", str(elsewhere / "d.yaml"))[0] == 0


def test_dump_to_an_unwritable_place_exits_2(applied: None) -> None:
    status, _, err = jim("dump", "--output", "/nonexistent/folder/d.yaml")
    assert status == 2
    assert "cannot write" in err
