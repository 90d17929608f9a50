"""The configuration of issue 11's safety keys: a connected system's ``change_threshold``
and an attribute's ``optional`` — validated with their key path, applied, dumped back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.models import ConnectedSystem, ConnectedSystemAttribute
from tests.support.cli import jim
from tests.support.configuration import (
    EXAMPLE,
    config_state,
    example,
    no_writes,
    write_config,
)

pytestmark = pytest.mark.django_db


def _hr(data: dict[str, Any]) -> dict[str, Any]:
    return data["connected_systems"][0]


def _hr_attributes(data: dict[str, Any]) -> dict[str, Any]:
    return _hr(data)["object_types"][0]["attributes"]


def with_safety_keys() -> dict[str, Any]:
    """The example with a change threshold and two optional HR columns (both forms)."""
    data = example()
    _hr(data)["change_threshold"] = "25%"
    _hr_attributes(data)["department"] = {"type": "text", "optional": True}
    _hr_attributes(data)["managerId"]["optional"] = True
    return data


def apply(tmp_path: Path, data: dict[str, Any]) -> tuple[int, str, str]:
    return jim("apply", str(write_config(tmp_path, data)))


def test_the_change_threshold_and_optional_attributes_are_applied(
    ldap_password: None, tmp_path: Path
) -> None:
    status, _, err = apply(tmp_path, with_safety_keys())

    assert status == 0, err
    hr = ConnectedSystem.objects.get(name="HR")
    assert hr.change_threshold == "25%"
    assert ConnectedSystem.objects.get(name="Directory").change_threshold == ""
    optional = dict(
        ConnectedSystemAttribute.objects.filter(object_type__connected_system=hr).values_list(
            "name", "optional"
        )
    )
    assert optional == {"managerId": True, "department": True}


def test_a_count_is_stored_normalised(ldap_password: None, tmp_path: Path) -> None:
    data = example()
    _hr(data)["change_threshold"] = "050"

    status, _, err = apply(tmp_path, data)

    assert status == 0, err
    assert ConnectedSystem.objects.get(name="HR").change_threshold == "50"


def test_removing_the_keys_restores_the_defaults(ldap_password: None, tmp_path: Path) -> None:
    apply(tmp_path, with_safety_keys())

    status, out, err = apply(tmp_path, example())

    assert status == 0, err
    assert "updated connected system 'HR': change_threshold" in out
    assert "updated attribute 'HR/person.managerId': optional" in out
    assert ConnectedSystem.objects.get(name="HR").change_threshold == ""
    assert not ConnectedSystemAttribute.objects.filter(name="managerId").get().optional


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: _hr(d).update(change_threshold="20 percent"),
            "connected_systems[0].change_threshold: '20 percent' is not a change threshold",
        ),
        (
            lambda d: _hr(d).update(change_threshold="150%"),
            "connected_systems[0].change_threshold: '150%': a percentage cannot exceed 100%",
        ),
        (
            lambda d: _hr(d).update(change_threshold=True),
            "connected_systems[0].change_threshold: True is not a change threshold",
        ),
        (
            lambda d: _hr_attributes(d).update(department={"type": "text", "optional": "yes"}),
            "connected_systems[0].object_types[0].attributes.department.optional: "
            "must be true or false",
        ),
        (
            lambda d: _hr_attributes(d).update(department={"type": "text", "optinal": True}),
            "connected_systems[0].object_types[0].attributes.department.optinal: "
            "unknown key 'optinal' (did you mean 'optional'?)",
        ),
        (
            lambda d: d["metaverse"]["object_types"]["person"]["attributes"].update(
                department={"type": "text", "optional": True}
            ),
            "metaverse.object_types.person.attributes.department.optional: unknown key",
        ),
    ],
)
def test_a_mistake_names_its_key_path_and_changes_nothing(
    ldap_password: None, tmp_path: Path, mutate: Any, expected: str
) -> None:
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0, err
    before = config_state()
    data = example()
    mutate(data)

    with no_writes():
        status, out, err = apply(tmp_path, data)

    assert status == 2
    assert out == ""
    assert any(line.startswith(expected) for line in err.splitlines()[1:]), err
    assert config_state() == before


def test_dump_writes_the_keys_back_and_apply_of_it_changes_nothing(
    ldap_password: None, tmp_path: Path
) -> None:
    status, _, err = apply(tmp_path, with_safety_keys())
    assert status == 0, err

    status, dumped, err = jim("dump")
    assert status == 0, err
    assert "    change_threshold: 25%\n" in dumped
    assert "department: {type: text, optional: true}" in dumped
    assert "managerId: {type: reference, references: person, optional: true}" in dumped

    path = tmp_path / "dumped.yaml"
    path.write_text(dumped)
    before = config_state()
    with no_writes():
        status, out, err = jim("apply", str(path))
    assert status == 0, err
    assert "no changes" in out
    assert config_state() == before
    assert jim("dump")[1] == dumped


def test_a_count_is_dumped_as_a_number(ldap_password: None, tmp_path: Path) -> None:
    data = example()
    _hr(data)["change_threshold"] = 40
    apply(tmp_path, data)

    assert "    change_threshold: 40\n" in jim("dump")[1]
