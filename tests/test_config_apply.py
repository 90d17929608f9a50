"""`jim apply`: the spec's example, idempotence, --check, --prune, secrets, exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    RunProfile,
    Schedule,
)
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObject,
    MetaverseObjectType,
    SyncRule,
)
from tests.support.cli import jim
from tests.support.configuration import (
    CONFIG_MODELS,
    EXAMPLE,
    PASSWORD,
    config_state,
    example,
    no_writes,
    write_config,
)

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def applied(ldap_password: str) -> None:
    """The spec's example, applied."""
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0, err


# --------------------------------------------------------------------------- the example


def test_the_example_applies(ldap_password: str) -> None:
    status, out, err = jim("apply", str(EXAMPLE))

    assert status == 0, err
    assert "created connected system 'HR'" in out
    assert out.strip().endswith("31 created, 0 updated, 0 removed.")  # + inferred manager reference
    assert set(MetaverseObjectType.objects.values_list("name", flat=True)) == {"person", "group"}
    assert MetaverseAttribute.objects.filter(object_type__name="person").count() == 9
    member = MetaverseAttribute.objects.get(object_type__name="group", name="member")
    assert (member.data_type, member.multivalued) == ("reference", True)
    assert ConnectedSystem.objects.count() == 2
    assert RunProfile.objects.filter(connected_system__name="Directory").count() == 5
    assert SyncRule.objects.count() == 3


def test_the_example_maps_onto_the_models(applied: None) -> None:
    person = MetaverseObjectType.objects.get(name="person")
    assert person.deletion_rule == "last_connector_removed"
    assert person.deletion_grace_period_days == 0

    hr = ConnectedSystem.objects.get(name="HR")
    assert hr.connector == "csv"
    assert hr.settings == {"path": "hr.csv", "delimiter": ",", "multivalue_separator": ";"}
    assert hr.config_base_dir == str(EXAMPLE.parent)
    assert hr.deletion_threshold == "20%"
    manager_id = ConnectedSystemAttribute.objects.get(object_type__connected_system=hr)
    assert (manager_id.name, manager_id.data_type, manager_id.references) == (
        "managerId",
        "reference",
        "person",
    )

    directory = ConnectedSystem.objects.get(name="Directory")
    assert "bind_password" not in directory.settings
    assert directory.settings["page_size"] == 500
    assert directory.secret_settings == {
        "bind_password": PASSWORD,
        "_secret_env": {"bind_password": "JIM_LDAP_PASSWORD"},
    }
    assert (directory.approval_mode, directory.export_max_retries) == ("none", 5)
    assert directory.export_retry_backoff_seconds == 60
    people = directory.object_types.get(name="inetOrgPerson")
    assert people.container == "ou=people,dc=example,dc=org"
    assert (people.external_id_attribute, people.secondary_external_id_attribute) == (
        "entryUUID",
        "dn",
    )
    assert people.selected is True

    rules = list(SyncRule.objects.order_by("precedence"))
    assert [r.name for r in rules] == [
        "HR people in",
        "Directory people join",
        "Directory people out",
    ]
    hr_in, _, out = rules
    assert hr_in.scope == "cs.status != 'Terminated'"
    assert hr_in.project is True
    assert [(j.cs_attribute, j.mv_attribute) for j in hr_in.joins.all()] == [
        ("employeeId", "employeeId")
    ]
    display = hr_in.flows.get(target="displayName")
    assert (display.kind, display.expression) == ("expression", "cs.firstName ~ ' ' ~ cs.lastName")
    given = hr_in.flows.get(target="givenName")
    assert (given.kind, given.source) == ("direct", "firstName")
    assert out.direction == "export"
    assert out.provision and out.enforce_state
    assert out.deprovision_action == "delete"
    assert out.dn_template == "uid={{ mv.accountName }},ou=people,dc=example,dc=org"
    assert [f.target for f in out.flows.all()] == ["uid", "cn", "sn", "mail", "manager"]


def test_applying_twice_changes_nothing(applied: None) -> None:
    before = config_state()
    with no_writes():
        status, out, _ = jim("apply", str(EXAMPLE))
    assert status == 0
    assert "no changes" in out
    assert config_state() == before


def test_a_relative_csv_path_is_stored_as_written_with_the_files_folder(
    tmp_path: Path, ldap_password: str
) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    path = write_config(folder, example())

    assert jim("apply", str(path))[0] == 0

    hr = ConnectedSystem.objects.get(name="HR")
    assert hr.settings["path"] == "hr.csv"
    assert hr.config_base_dir == str(folder)


def test_base_dir_overrides_the_files_folder(tmp_path: Path, ldap_password: str) -> None:
    data = example()
    data["connected_systems"][0]["base_dir"] = "data"
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0
    assert ConnectedSystem.objects.get(name="HR").config_base_dir == str(tmp_path / "data")


def test_check_validates_without_changing_anything(ldap_password: str) -> None:
    status, out, _ = jim("apply", str(EXAMPLE), "--check")

    assert status == 0
    assert "would create connected system 'HR'" in out
    assert "valid" in out.splitlines()[-1]
    assert all(not model.objects.exists() for model in CONFIG_MODELS)


def test_check_of_an_applied_file_changes_nothing(applied: None) -> None:
    before = config_state()
    status, out, _ = jim("apply", str(EXAMPLE), "--check")
    assert status == 0
    assert "0 created, 0 updated, 0 removed" in out
    assert config_state() == before


# --------------------------------------------------------------------------- updates


def test_a_changed_flow_replaces_the_rules_flows(applied: None, tmp_path: Path) -> None:
    data = example()
    data["sync_rules"][0]["flows"][1] = {"mv": "givenName", "expression": "cs.firstName | upper"}
    status, out, _ = jim("apply", str(write_config(tmp_path, data)))

    assert status == 0
    assert "updated sync rule 'HR people in': flows" in out
    given = SyncRule.objects.get(name="HR people in").flows.get(target="givenName")
    assert (given.kind, given.source, given.expression) == (
        "expression",
        "",
        "cs.firstName | upper",
    )
    assert SyncRule.objects.get(name="HR people in").flows.count() == 8


def test_the_file_order_is_the_precedence(applied: None, tmp_path: Path) -> None:
    data = example()
    data["sync_rules"].reverse()
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0

    names = list(SyncRule.objects.order_by("precedence").values_list("name", flat=True))
    assert names == ["Directory people out", "Directory people join", "HR people in"]


def test_settings_and_export_policy_are_updated(applied: None, tmp_path: Path) -> None:
    data = example()
    directory = data["connected_systems"][1]
    directory["settings"]["page_size"] = 200
    del directory["settings"]["delta_method"]
    directory["export"] = {"approval": "deletes"}
    status, out, _ = jim("apply", str(write_config(tmp_path, data)))

    assert status == 0
    system = ConnectedSystem.objects.get(name="Directory")
    assert system.settings["page_size"] == 200
    assert "delta_method" not in system.settings
    assert system.approval_mode == "deletes"
    assert "updated connected system 'Directory': settings" in out


def test_a_variable_in_a_non_secret_setting_is_replaced(
    tmp_path: Path, ldap_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LDAP_URL", "ldaps://ldap.example.org")
    monkeypatch.setenv("PAGE", "250")
    data = example()
    data["connected_systems"][1]["settings"].update({"url": "${LDAP_URL}", "page_size": "${PAGE}"})
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0

    system = ConnectedSystem.objects.get(name="Directory")
    assert system.settings["url"] == "ldaps://ldap.example.org"
    assert system.settings["page_size"] == 250


def test_authoritative_systems_are_set(applied: None, tmp_path: Path) -> None:
    data = example()
    data["metaverse"]["object_types"]["person"]["deletion"] = {
        "when": "authoritative_connector_removed",
        "authoritative": ["HR"],
        "grace_period_days": 30,
    }
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0

    person = MetaverseObjectType.objects.get(name="person")
    assert person.deletion_rule == "authoritative_connector_removed"
    assert person.deletion_grace_period_days == 30
    assert list(person.authoritative_systems.values_list("name", flat=True)) == ["HR"]


def test_schedules_are_applied(applied: None, tmp_path: Path) -> None:
    data = example()
    data["schedules"] = [
        {
            "name": "Every 15 minutes",
            "cron": "*/15 * * * *",
            "steps": [
                {"system": "HR", "profile": "Full Import"},
                {"system": "HR", "profile": "Delta Sync"},
                {"system": "Directory", "profile": "Export"},
            ],
        }
    ]
    path = write_config(tmp_path, data)
    assert jim("apply", str(path))[0] == 0

    schedule = Schedule.objects.get(name="Every 15 minutes")
    assert schedule.cron == "*/15 * * * *"
    steps = [
        (s.run_profile.connected_system.name, s.run_profile.name) for s in schedule.steps.all()
    ]
    assert steps == [("HR", "Full Import"), ("HR", "Delta Sync"), ("Directory", "Export")]
    with no_writes():
        assert jim("apply", str(path))[0] == 0


# --------------------------------------------------------------------------- prune


def test_without_prune_nothing_is_removed(applied: None, tmp_path: Path) -> None:
    data = example()
    del data["sync_rules"][2]
    del data["connected_systems"][1]
    data["sync_rules"] = data["sync_rules"][:1]
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0
    assert SyncRule.objects.count() == 3
    assert ConnectedSystem.objects.filter(name="Directory").exists()


def test_prune_removes_what_the_file_no_longer_names(applied: None, tmp_path: Path) -> None:
    data = example()
    data["sync_rules"] = data["sync_rules"][:1]
    del data["connected_systems"][1]
    hr = data["connected_systems"][0]
    hr["run_profiles"] = hr["run_profiles"][:1]
    del data["metaverse"]["object_types"]["group"]
    del data["metaverse"]["object_types"]["person"]["attributes"]["mail"]

    status, out, err = jim("apply", str(write_config(tmp_path, data)), "--prune")

    assert status == 0, err
    assert "removed sync rule 'Directory people out'" in out
    assert "removed connected system 'Directory'" in out
    assert list(SyncRule.objects.values_list("name", flat=True)) == ["HR people in"]
    assert list(ConnectedSystem.objects.values_list("name", flat=True)) == ["HR"]
    assert list(RunProfile.objects.values_list("name", flat=True)) == ["Full Import"]
    assert list(MetaverseObjectType.objects.values_list("name", flat=True)) == ["person"]
    assert not MetaverseAttribute.objects.filter(name="mail").exists()
    # Connected-system attributes are never pruned.
    assert ConnectedSystemAttribute.objects.filter(name="managerId").exists()


def test_prune_removes_a_dropped_object_type(applied: None, tmp_path: Path) -> None:
    data = example()
    del data["connected_systems"][1]["object_types"][1]
    assert jim("apply", str(write_config(tmp_path, data)), "--prune")[0] == 0
    names = ConnectedSystemObjectType.objects.filter(connected_system__name="Directory")
    assert list(names.values_list("name", flat=True)) == ["inetOrgPerson"]


def test_prune_refuses_to_remove_a_metaverse_type_that_has_objects(
    applied: None, tmp_path: Path
) -> None:
    MetaverseObject.objects.create(object_type=MetaverseObjectType.objects.get(name="group"))
    data = example()
    del data["metaverse"]["object_types"]["group"]
    before = config_state()

    status, _, err = jim("apply", str(write_config(tmp_path, data)), "--prune")

    assert status == 2
    assert "--prune would remove metaverse object type 'group'" in err
    assert config_state() == before


def test_prune_of_the_same_file_changes_nothing(applied: None) -> None:
    with no_writes():
        assert jim("apply", str(EXAMPLE), "--prune")[0] == 0


# --------------------------------------------------------------------------- secrets


def test_an_unset_secret_variable_keeps_the_stored_secret(
    applied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JIM_LDAP_PASSWORD")
    with no_writes():
        status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0
    assert "JIM_LDAP_PASSWORD is not set; the stored bind_password is kept" in err
    assert (
        ConnectedSystem.objects.get(name="Directory").secret_settings["bind_password"] == PASSWORD
    )


def test_an_unset_secret_variable_with_no_stored_secret_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JIM_LDAP_PASSWORD", raising=False)
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 2
    assert (
        "connected_systems[1].settings.bind_password: environment variable JIM_LDAP_PASSWORD "
        "not set" in err
    )
    assert not ConnectedSystem.objects.exists()


def test_a_changed_secret_is_stored_encrypted(
    applied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "new-password")
    status, out, _ = jim("apply", str(EXAMPLE))
    assert status == 0
    assert "updated connected system 'Directory': secret settings bind_password" in out
    assert "new-password" not in out
    system = ConnectedSystem.objects.get(name="Directory")
    assert system.secret_settings["bind_password"] == "new-password"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_settings FROM connectors_connectedsystem WHERE id = %s", [system.pk]
        )
        raw = cursor.fetchone()[0]
    assert "new-password" not in raw


def test_a_clear_text_secret_is_applied_with_a_warning(tmp_path: Path) -> None:
    data = example()
    data["connected_systems"][1]["settings"]["bind_password"] = "in-clear"
    status, out, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 0
    assert "warning: Directory: bind_password is written in clear text" in err
    assert "${JIM_DIRECTORY_BIND_PASSWORD}" in err
    assert "in-clear" not in out + err
    system = ConnectedSystem.objects.get(name="Directory")
    assert system.secret_settings == {"bind_password": "in-clear"}
    assert "bind_password" not in system.settings


def test_a_secret_left_out_of_the_file_is_removed(applied: None, tmp_path: Path) -> None:
    data = example()
    del data["connected_systems"][1]["settings"]["bind_password"]
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0
    assert ConnectedSystem.objects.get(name="Directory").secret_settings == {}


def test_a_secret_variable_with_another_name_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_BIND", "pw")
    data = example()
    data["connected_systems"][1]["settings"]["bind_password"] = "${PROD_BIND}"
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0
    system = ConnectedSystem.objects.get(name="Directory")
    assert system.secret_settings["bind_password"] == "pw"
    assert system.secret_settings["_secret_env"] == {"bind_password": "PROD_BIND"}
    assert "_secret_env" not in system.settings


# --------------------------------------------------------------------------- exit status


def test_an_invalid_file_exits_2_and_lists_every_problem(tmp_path: Path) -> None:
    data = example()
    data["connected_systems"][0]["conector"] = data["connected_systems"][0].pop("connector")
    data["sync_rules"][2]["flows"][0]["cs"] = "uid"
    data["sync_rules"][0]["flows"][1]["mv"] = "givnName"
    status, out, err = jim("apply", str(write_config(tmp_path, data)))

    assert status == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("jim apply:") and "nothing was changed" in lines[0]
    assert any(
        line.startswith(
            "connected_systems[0].conector: unknown key 'conector' (did you mean 'connector'?)"
        )
        for line in lines
    )
    assert any(
        line.startswith("sync_rules[0].flows[1].mv: no metaverse attribute 'givnName' on person")
        for line in lines
    )
    assert "Traceback" not in err
    assert not ConnectedSystem.objects.exists()


def test_a_missing_file_exits_2_without_a_traceback() -> None:
    status, _, err = jim("apply", "/nonexistent/jim.yaml")
    assert status == 2
    assert "/nonexistent/jim.yaml: no such file" in err


def test_a_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write_config(tmp_path, "version: 1\nsync_rules:\n  - name: [unclosed\n")
    status, _, err = jim("apply", str(path))
    assert status == 2
    assert re.search(r"jim\.yaml, line \d+, column \d+: YAML syntax error", err)


def test_the_command_line_exit_status_of_a_bad_file(tmp_path: Path) -> None:
    """The real ``python manage.py jim apply bad.yaml`` process exits 2, no traceback."""
    bad = write_config(tmp_path, "version: 1\nconected_systems: []\n", name="bad.yaml")
    env = {**os.environ, "DATABASE_URL": _database_url(), "PYTHONPATH": str(settings.BASE_DIR)}
    result = subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "jim", "apply", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "conected_systems: unknown key 'conected_systems'" in result.stderr
    assert "did you mean 'connected_systems'?" in result.stderr
    assert "Traceback" not in result.stderr


def _database_url() -> str:
    """The test database's URL (the subprocess must see the migrated test schema)."""
    db = connection.settings_dict
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{user}{password}@{host}{port}/{db['NAME']}"
