"""`jim apply` rejects every kind of mistake, naming its key path, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.models import (
    Activity,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
)
from jim_project.configuration.references import fixed_parent
from tests.builders import add_attribute
from tests.support.cli import jim
from tests.support.configuration import EXAMPLE, config_state, example, no_writes, write_config

pytestmark = pytest.mark.django_db

Mutation = Callable[[dict[str, Any]], None]


def _hr(data: dict[str, Any]) -> dict[str, Any]:
    return data["connected_systems"][0]


def _directory(data: dict[str, Any]) -> dict[str, Any]:
    return data["connected_systems"][1]


def _person(data: dict[str, Any]) -> dict[str, Any]:
    return data["metaverse"]["object_types"]["person"]


def _rule(index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: data["sync_rules"][index]


hr_in, dir_join, dir_out = _rule(0), _rule(1), _rule(2)


def _set(get: Callable[[dict[str, Any]], Any], key: Any, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        get(data)[key] = value

    return mutate


def _rename_key(get: Callable[[dict[str, Any]], Any], old: str, new: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = get(data)
        target[new] = target.pop(old)

    return mutate


def _delete(get: Callable[[dict[str, Any]], Any], key: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del get(data)[key]

    return mutate


def _duplicate(get: Callable[[dict[str, Any]], list[Any]], index: int) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        items = get(data)
        items.append(dict(items[index]))

    return mutate


MISTAKES: dict[str, tuple[Mutation, str]] = {
    # unknown keys, with a suggestion
    "typo in a system key": (
        _rename_key(_hr, "connector", "conector"),
        "connected_systems[0].conector: unknown key 'conector' (did you mean 'connector'?)",
    ),
    "typo at the top": (
        _rename_key(lambda d: d, "sync_rules", "sync_rule"),
        "sync_rule: unknown key 'sync_rule' (did you mean 'sync_rules'?)",
    ),
    "typo in a flow": (
        _set(lambda d: hr_in(d)["flows"], 1, {"mv": "givenName", "form": "firstName"}),
        "sync_rules[0].flows[1].form: unknown key 'form' (did you mean 'from'?)",
    ),
    "typo in deletion": (
        _set(_person, "deletion", {"wen": "last_connector_removed"}),
        "metaverse.object_types.person.deletion.wen: unknown key 'wen' (did you mean 'when'?)",
    ),
    "typo in an object type": (
        _rename_key(lambda d: _directory(d)["object_types"][0], "container", "containr"),
        "connected_systems[1].object_types[0].containr: unknown key 'containr'",
    ),
    # missing required keys
    "rule without direction": (
        _delete(dir_join, "direction"),
        "sync_rules[1].direction: missing required key",
    ),
    "system without connector": (
        _delete(_hr, "connector"),
        "connected_systems[0].connector: missing required key",
    ),
    "object type without external id": (
        _delete(lambda d: _directory(d)["object_types"][0], "external_id"),
        "connected_systems[1].object_types[0].external_id: missing required key",
    ),
    "version missing": (_delete(lambda d: d, "version"), "version: missing required key"),
    "version 2": (_set(lambda d: d, "version", 2), "version: must be 1, not 2"),
    # wrong types
    "project as text": (
        _set(hr_in, "project", "yes"),
        "sync_rules[0].project: must be true or false, not the text 'yes'",
    ),
    "page_size as text": (
        _set(lambda d: _directory(d)["settings"], "page_size", "abc"),
        "connected_systems[1].settings.page_size: must be a whole number, not the text 'abc'",
    ),
    "run profile page_size as text": (
        _set(lambda d: _hr(d)["run_profiles"][0], "page_size", "abc"),
        "connected_systems[0].run_profiles[0].page_size: must be a whole number",
    ),
    "start_tls as a number": (
        _set(lambda d: _directory(d)["settings"], "start_tls", 1),
        "connected_systems[1].settings.start_tls: must be true or false, not the number 1",
    ),
    "flows as a mapping": (
        _set(hr_in, "flows", {"mv": "x"}),
        "sync_rules[0].flows: must be a list, not a mapping",
    ),
    "grace period negative": (
        _set(_person, "deletion", {"grace_period_days": -1}),
        "metaverse.object_types.person.deletion.grace_period_days: must be 0 or more",
    ),
    "max_retries as text": (
        _set(_directory, "export", {"max_retries": "five"}),
        "connected_systems[1].export.max_retries: must be a whole number",
    ),
    # enumerations
    "bad direction": (
        _set(hr_in, "direction", "inbound"),
        "sync_rules[0].direction: 'inbound' is not one of: import, export",
    ),
    "bad approval": (
        _set(_directory, "export", {"approval": "sometimes"}),
        "connected_systems[1].export.approval: 'sometimes' is not one of: none, deletes, "
        "creates_and_deletes, all",
    ),
    "bad deprovision": (
        _set(dir_out, "deprovision", "destroy"),
        "sync_rules[2].deprovision: 'destroy' is not one of: delete, disconnect",
    ),
    "bad deletion when": (
        _set(_person, "deletion", {"when": "never"}),
        "metaverse.object_types.person.deletion.when: 'never' is not one of",
    ),
    "bad data type": (
        _set(lambda d: _person(d)["attributes"], "mail", "string"),
        "metaverse.object_types.person.attributes.mail: 'string' is not one of: text, integer",
    ),
    "bad multivalued data type": (
        _set(lambda d: _person(d)["attributes"], "mail", {"type": "strng", "multivalued": True}),
        "metaverse.object_types.person.attributes.mail.type: 'strng' is not one of",
    ),
    "bad run profile type": (
        _set(lambda d: _hr(d)["run_profiles"][0], "type", "full_imprt"),
        "connected_systems[0].run_profiles[0].type: 'full_imprt' is not one of: full_import, "
        "delta_import, full_sync, delta_sync, export (did you mean 'full_import'?)",
    ),
    "bad writability": (
        _set(lambda d: _hr(d)["object_types"][0]["attributes"], "x", {"writability": "rw"}),
        "connected_systems[0].object_types[0].attributes.x.writability: 'rw' is not one of",
    ),
    # connectors and their settings
    "unknown connector": (
        _set(_hr, "connector", "cvs"),
        "connected_systems[0].connector: unknown connector 'cvs' (did you mean 'csv'?)",
    ),
    "unknown setting": (
        _rename_key(lambda d: _hr(d)["settings"], "path", "pathh"),
        "connected_systems[0].settings.pathh: unknown key 'pathh' (did you mean 'path'?)",
    ),
    "missing required setting": (
        _delete(lambda d: _directory(d)["settings"], "base_dn"),
        "connected_systems[1].settings.base_dn: missing required setting of the ldap connector",
    ),
    "setting outside its choices": (
        _set(lambda d: _directory(d)["settings"], "delta_method", "changelog"),
        "connected_systems[1].settings.delta_method: 'changelog' is not one of: accesslog, "
        "modify_timestamp, usn, none",
    ),
    # names that refer to nothing
    "unknown connected system": (
        _set(hr_in, "connected_system", "HRR"),
        "sync_rules[0].connected_system: no connected system 'HRR' (did you mean 'HR'?)",
    ),
    "unknown object type": (
        _set(dir_out, "object_type", "person"),
        "sync_rules[2].object_type: Directory has no object type 'person'",
    ),
    "unknown metaverse object type": (
        _set(hr_in, "metaverse_object_type", "persn"),
        "sync_rules[0].metaverse_object_type: no metaverse object type 'persn' "
        "(did you mean 'person'?)",
    ),
    "unknown metaverse attribute in an import flow": (
        _set(lambda d: hr_in(d)["flows"], 0, {"mv": "mial", "from": "employeeId"}),
        "sync_rules[0].flows[0].mv: no metaverse attribute 'mial' on person",
    ),
    "unknown metaverse attribute in an export flow": (
        _set(lambda d: dir_out(d)["flows"], 0, {"cs": "uid", "from": "mial"}),
        "sync_rules[2].flows[0].from: no metaverse attribute 'mial' on person",
    ),
    "unknown metaverse attribute in a join": (
        _set(dir_join, "join", [{"cs": "uid", "mv": "acountName"}]),
        "sync_rules[1].join[0].mv: no metaverse attribute 'acountName' on person "
        "(did you mean 'accountName'?)",
    ),
    "unknown metaverse attribute in an expression": (
        _set(lambda d: dir_out(d)["flows"], 3, {"cs": "mail", "expression": "mv.mial | lower"}),
        "sync_rules[2].flows[3].expression: no metaverse attribute 'mial' on person "
        "(read as mv.mial)",
    ),
    "unknown metaverse attribute in a DN": (
        _set(dir_out, "dn", "uid={{ mv.acountName }},ou=people,dc=example,dc=org"),
        "sync_rules[2].dn: no metaverse attribute 'acountName' on person",
    ),
    "unknown authoritative system": (
        _set(
            _person,
            "deletion",
            {"when": "authoritative_connector_removed", "authoritative": ["HRR"]},
        ),
        "metaverse.object_types.person.deletion.authoritative[0]: no connected system 'HRR'",
    ),
    "authoritative rule without systems": (
        _set(_person, "deletion", {"when": "authoritative_connector_removed"}),
        "metaverse.object_types.person.deletion.authoritative: authoritative_connector_removed "
        "needs the list",
    ),
    "unknown referenced object type": (
        _set(
            lambda d: _hr(d)["object_types"][0]["attributes"],
            "managerId",
            {"type": "reference", "references": "persn"},
        ),
        "connected_systems[0].object_types[0].attributes.managerId.references: HR has no object "
        "type 'persn'",
    ),
    "references on a text attribute": (
        _set(lambda d: _hr(d)["object_types"][0]["attributes"], "x", {"references": "person"}),
        "connected_systems[0].object_types[0].attributes.x.references: only a reference "
        "attribute refers to an object type",
    ),
    # flows and direction-specific keys
    "flow with both from and expression": (
        _set(lambda d: hr_in(d)["flows"], 1, {"mv": "givenName", "from": "a", "expression": "b"}),
        "sync_rules[0].flows[1]: give either 'from' (an attribute) or 'expression', not both",
    ),
    "flow with neither from nor expression": (
        _set(lambda d: hr_in(d)["flows"], 1, {"mv": "givenName"}),
        "sync_rules[0].flows[1]: missing 'from' (an attribute) or 'expression'",
    ),
    "import flow naming cs as target": (
        _set(lambda d: hr_in(d)["flows"], 1, {"cs": "givenName", "from": "firstName"}),
        "sync_rules[0].flows[1].cs: import flows write the metaverse attribute",
    ),
    "two flows into one attribute": (
        _set(lambda d: hr_in(d)["flows"], 1, {"mv": "employeeId", "from": "firstName"}),
        "sync_rules[0].flows[1].mv: 'employeeId' is already the target of flows[0]",
    ),
    "dn on an import rule": (
        _set(hr_in, "dn", "uid={{ mv.accountName }}"),
        "sync_rules[0].dn: not allowed on an import rule (only on export rules)",
    ),
    "project on an export rule": (
        _set(dir_out, "project", True),
        "sync_rules[2].project: not allowed on an export rule (only on import rules)",
    ),
    "provision without a dn": (
        _delete(dir_out, "dn"),
        "sync_rules[2].provision: provisioning inetOrgPerson objects of Directory needs a 'dn'",
    ),
    # thresholds
    "threshold in words": (
        _set(_hr, "deletion_threshold", "20 percent"),
        "connected_systems[0].deletion_threshold: '20 percent' is not a deletion threshold",
    ),
    "threshold over 100%": (
        _set(_hr, "deletion_threshold", "150%"),
        "connected_systems[0].deletion_threshold: '150%': a percentage cannot exceed 100%",
    ),
    # duplicates
    "duplicate system": (
        _duplicate(lambda d: d["connected_systems"], 0),
        "connected_systems[2].name: duplicate connected system name 'HR'",
    ),
    "duplicate rule": (
        _duplicate(lambda d: d["sync_rules"], 1),
        "sync_rules[3].name: duplicate sync rule name 'Directory people join'",
    ),
    "duplicate object type": (
        _duplicate(lambda d: _directory(d)["object_types"], 0),
        "connected_systems[1].object_types[2].name: duplicate object type name 'inetOrgPerson'",
    ),
    "duplicate run profile": (
        _duplicate(lambda d: _hr(d)["run_profiles"], 0),
        "connected_systems[0].run_profiles[3].name: duplicate run profile name 'Full Import'",
    ),
    # expressions
    "scope that does not compile": (
        _set(hr_in, "scope", "cs.status =="),
        "sync_rules[0].scope: does not compile:",
    ),
    "expression that does not compile": (
        _set(lambda d: hr_in(d)["flows"], 2, {"mv": "displayName", "expression": "cs.a ~"}),
        "sync_rules[0].flows[2].expression: does not compile:",
    ),
    "dn template that does not compile": (
        _set(dir_out, "dn", "uid={{ mv.accountName ,ou=people"),
        "sync_rules[2].dn: does not compile:",
    ),
    "expression with an unknown filter": (
        _set(lambda d: hr_in(d)["flows"], 2, {"mv": "displayName", "expression": "cs.a | lowr"}),
        "sync_rules[0].flows[2].expression: does not compile: No filter named 'lowr'",
    ),
    "scope with a typo in the object name": (
        _set(hr_in, "scope", "sc.status != 'Terminated'"),
        "sync_rules[0].scope: unknown name 'sc' (did you mean 'cs'?)",
    ),
    "export flow reading cs": (
        _set(lambda d: dir_out(d)["flows"], 3, {"cs": "mail", "expression": "cs.mail | lower"}),
        "sync_rules[2].flows[3].expression: an export flow can only read mv",
    ),
    "dn template outside the object type's container": (
        _set(dir_out, "dn", "uid={{ mv.accountName }},ou=staff,dc=example,dc=org"),
        "sync_rules[2].dn: 'ou=staff,dc=example,dc=org' is outside the container "
        "'ou=people,dc=example,dc=org' of inetOrgPerson in Directory: imports would not see "
        "the objects it creates",
    ),
    "disable dn outside the object type's container": (
        lambda d: dir_out(d).update(
            deprovision="disable",
            disable={"dn": "uid={{ mv.accountName }},ou=disabled,dc=example,dc=org"},
        ),
        "sync_rules[2].disable.dn: 'ou=disabled,dc=example,dc=org' is outside the container "
        "'ou=people,dc=example,dc=org' of inetOrgPerson in Directory: imports would not see "
        "a disabled account moved there",
    ),
    "dn template reading cs": (
        _set(dir_out, "dn", "uid={{ cs.uid }},ou=people,dc=example,dc=org"),
        "sync_rules[2].dn: a DN template can only read mv",
    ),
    # environment variables
    "unset variable in a setting": (
        _set(lambda d: _directory(d)["settings"], "url", "${JIM_TEST_UNSET_URL}"),
        "connected_systems[1].settings.url: environment variable JIM_TEST_UNSET_URL not set",
    ),
    "unset variable in a scope": (
        _set(hr_in, "scope", "cs.company == '${JIM_TEST_UNSET_COMPANY}'"),
        "sync_rules[0].scope: environment variable JIM_TEST_UNSET_COMPANY not set",
    ),
    # schedules
    "schedule with a bad cron": (
        _set(
            lambda d: d,
            "schedules",
            [
                {
                    "name": "s",
                    "cron": "every hour",
                    "steps": [{"system": "HR", "profile": "Full Sync"}],
                }
            ],
        ),
        "schedules[0].cron: 'every hour' is not a cron expression",
    ),
    "schedule with an unknown profile": (
        _set(
            lambda d: d,
            "schedules",
            [{"name": "s", "cron": "0 * * * *", "steps": [{"system": "HR", "profile": "Export"}]}],
        ),
        "schedules[0].steps[0].profile: HR has no run profile 'Export'",
    ),
}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The example applied; the state of the configuration tables."""
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0, err
    return config_state()


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_rejected_with_its_key_path_and_changes_nothing(
    mistake: str, applied: dict[str, Any], tmp_path: Path
) -> None:
    mutate, expected = MISTAKES[mistake]
    data = example()
    mutate(data)
    path = write_config(tmp_path, data)

    with no_writes():
        status, out, err = jim("apply", str(path))

    assert status == 2
    assert out == ""
    problems = err.splitlines()[1:]
    assert any(line.startswith(expected) for line in problems), err
    assert "Traceback" not in err
    assert config_state() == applied


def test_check_rejects_a_mistake_too(applied: dict[str, Any], tmp_path: Path) -> None:
    data = example()
    hr_in(data)["project"] = "yes"
    status, _, err = jim("apply", str(write_config(tmp_path, data)), "--check")
    assert status == 2
    assert "sync_rules[0].project: must be true or false" in err
    assert config_state() == applied


def test_a_mistake_on_an_empty_database_creates_nothing(tmp_path: Path) -> None:
    data = example()
    data["sync_rules"][0]["flows"][0]["mv"] = "mial"
    status, _, err = jim("apply", str(write_config(tmp_path, data)))
    assert status == 2
    assert "sync_rules[0].flows[0].mv: no metaverse attribute 'mial' on person" in err
    assert all(not rows for rows in config_state().values())


def test_every_problem_is_listed_with_its_line(applied: dict[str, Any], tmp_path: Path) -> None:
    data = example()
    hr_in(data)["project"] = "yes"
    _hr(data)["conector"] = "csv"
    dir_out(data)["flows"][0]["from"] = "acountName"
    status, _, err = jim("apply", str(write_config(tmp_path, data)))
    assert status == 2
    lines = err.splitlines()
    assert "(3 problems)" in lines[0]
    assert len(lines) == 4
    assert all(" (line " in line for line in lines[1:])


def test_a_duplicate_key_is_rejected(applied: dict[str, Any], tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        "    group:\n", "    person:\n      attributes: {x: text}\n    group:\n", 1
    )
    status, _, err = jim("apply", str(write_config(tmp_path, text)))
    assert status == 2
    assert "metaverse.object_types.person: duplicate key 'person' (first given on line" in err


def test_a_yaml_syntax_error_is_reported_with_line_and_column(tmp_path: Path) -> None:
    path = write_config(tmp_path, "version: 1\nmetaverse:\n  object_types: {person: [}\n")
    status, _, err = jim("apply", str(path))
    assert status == 2
    assert "jim.yaml, line 3, column 27: YAML syntax error" in err


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    status, _, err = jim("apply", str(write_config(tmp_path, "- a\n- b\n")))
    assert status == 2
    assert "the file must be a mapping" in err


# --------------------------------------------------------------------------- CS attribute names


HR_COLUMNS = ["employeeId", "firstName", "lastName", "accountName", "department", "status"]


def _import_hr_person(columns: list[str]) -> None:
    """What a first import of hr.csv leaves: a completed activity, its columns as
    attributes, and CSOs."""
    object_type = ConnectedSystemObjectType.objects.get(connected_system__name="HR", name="person")
    system = object_type.connected_system
    declared = set(object_type.attributes.values_list("name", flat=True))
    for column in columns:
        if column not in declared:
            add_attribute(object_type, column)
            declared.add(column)
    ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=object_type,
        external_id="1001",
        attributes={"employeeId": ["1001"]},
    )
    Activity.objects.create(
        connected_system=system,
        profile_type="full_import",
        profile_name="Full Import",
        status="complete",
    )


def _misspelt_source(tmp_path: Path) -> Path:
    data = example()
    hr_in(data)["flows"][1]["from"] = "firstNme"
    return write_config(tmp_path, data)


def test_cs_attribute_names_are_accepted_before_the_first_import(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    assert jim("apply", str(_misspelt_source(tmp_path)))[0] == 0


def test_cs_attribute_names_are_checked_once_imported(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    _import_hr_person(HR_COLUMNS)
    status, _, err = jim("apply", str(_misspelt_source(tmp_path)))
    assert status == 2
    assert (
        "sync_rules[0].flows[1].from: no attribute 'firstNme' on person of HR "
        "(did you mean 'firstName'?)" in err
    )


def test_a_declared_cs_attribute_is_known_even_if_no_import_saw_it(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    _import_hr_person(HR_COLUMNS)
    data = example()
    _hr(data)["object_types"][0]["attributes"]["nickname"] = "text"
    hr_in(data)["flows"].append({"mv": "mail", "from": "nickname"})
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0


def test_provisioning_csos_do_not_make_attributes_known(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    """A sync leaves pending-provisioning CSOs in a target no import has read yet."""
    object_type = ConnectedSystemObjectType.objects.get(name="inetOrgPerson")
    ConnectorSpaceObject.objects.create(
        connected_system=object_type.connected_system,
        object_type=object_type,
        status="pending_provisioning",
        attributes={"cn": ["x"]},
    )
    data = example()
    dir_join(data)["join"][0]["cs"] = "uidd"
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0


def test_export_flow_targets_are_not_checked_against_imported_attributes(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    """An import sees only the attributes its objects have; JIM may write a new one."""
    _import_hr_person(HR_COLUMNS)
    data = example()
    data["sync_rules"].append(
        {
            "name": "HR out",
            "connected_system": "HR",
            "direction": "export",
            "object_type": "person",
            "metaverse_object_type": "person",
            "flows": [{"cs": "email", "from": "mail"}],
        }
    )
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0


def test_a_yaml_alias_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    text = EXAMPLE.read_text()
    data = yaml.safe_load(text)
    assert data["version"] == 1
    text = text.replace(
        "      - {name: Full Import, type: full_import}\n      - {name: Full Sync",
        "      - &full {name: Full Import, type: full_import}\n      - {name: Full Sync",
        1,
    ).replace(
        "      - {name: Full Import, type: full_import}\n      - {name: Delta Import",
        "      - *full\n      - {name: Delta Import",
        1,
    )
    assert "*full" in text
    assert jim("apply", str(write_config(tmp_path, text)))[0] == 0


@pytest.mark.parametrize(
    ("template", "parent"),
    [
        ("uid={{ mv.uid }},ou=people,dc=example,dc=org", "ou=people,dc=example,dc=org"),
        ("CN={{ mv.cn }}, OU=People ,DC=example,DC=org", "OU=People ,DC=example,DC=org"),
        ("uid={{ mv.uid }},ou={{ mv.department }},dc=example,dc=org", "dc=example,dc=org"),
        ("uid={{ mv.uid }}", None),
        ("uid={{ mv.uid }},{{ mv.parent }}", None),
        ("{% if mv.a %}uid=a{% endif %},ou=x", None),
    ],
)
def test_a_dn_templates_fixed_parent_is_what_follows_its_last_placeholder(template, parent):
    assert fixed_parent(template) == parent
