"""An export rule's ``initial_password``: checked by `jim apply` (key path named, nothing
written), stored, dumped as it was given, refused by the admin when wrong; and the
passwords its policy makes."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from console.admin.metaverse import SyncRuleForm
from exports.passwords import MAX_LENGTH, MIN_LENGTH, SYMBOLS, generate, name_parts
from metaverse.models import SyncRule
from tests.support.cli import jim
from tests.support.configuration import config_state, example, no_writes, write_config
from tests.test_config_dump import assert_round_trip, dump

#: The example's rules: the import rule of HR and the Directory's export rule.
HR_IN, DIR_OUT = 0, 2

MISTAKES: dict[str, tuple[int, Any, str]] = {
    "on an import rule": (
        HR_IN,
        {"attribute": "userPassword"},
        "sync_rules[0].initial_password: not allowed on an import rule (only on export rules)",
    ),
    "not a mapping": (
        DIR_OUT,
        "unicodePwd",
        "sync_rules[2].initial_password: must be a mapping like "
        "{attribute: unicodePwd, length: 16}, not text 'unicodePwd'",
    ),
    "no attribute": (
        DIR_OUT,
        {"length": 16},
        "sync_rules[2].initial_password.attribute: missing required key",
    ),
    "an attribute that is not a name": (
        DIR_OUT,
        {"attribute": ["unicodePwd"]},
        "sync_rules[2].initial_password.attribute: must be an attribute name, not a list",
    ),
    "a misspelt key": (
        DIR_OUT,
        {"attribute": "userPassword", "lenght": 16},
        "sync_rules[2].initial_password.lenght: unknown key 'lenght' (did you mean 'length'?)",
    ),
    "too short": (
        DIR_OUT,
        {"attribute": "userPassword", "length": 8},
        f"sync_rules[2].initial_password.length: must be from {MIN_LENGTH} to {MAX_LENGTH} "
        "characters, not 8",
    ),
    "too long": (
        DIR_OUT,
        {"attribute": "userPassword", "length": 1000},
        f"sync_rules[2].initial_password.length: must be from {MIN_LENGTH} to {MAX_LENGTH} "
        "characters, not 1000",
    ),
    "a length that is text": (
        DIR_OUT,
        {"attribute": "userPassword", "length": "16"},
        "sync_rules[2].initial_password.length: must be a whole number, not text '16'",
    ),
    "the target of a flow": (
        DIR_OUT,
        {"attribute": "CN"},
        "sync_rules[2].initial_password.attribute: 'cn' is the target of flows[1]; the "
        "initial password is the only value it is given",
    ),
}


@pytest.fixture
def applied(ldap_password: str, tmp_path: Path) -> dict[str, Any]:
    status, _, err = jim("apply", str(write_config(tmp_path, example())))
    assert status == 0, err
    return config_state()


def _with_policy(rule: int, policy: Any) -> dict[str, Any]:
    data = example()
    data["sync_rules"][rule]["initial_password"] = policy
    return data


@pytest.mark.django_db
@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_wrong_policy_is_rejected_with_its_key_path_and_changes_nothing(
    mistake: str, applied: dict[str, Any], tmp_path: Path
) -> None:
    rule, policy, expected = MISTAKES[mistake]
    path = write_config(tmp_path, _with_policy(rule, policy))
    with no_writes():
        status, out, err = jim("apply", str(path))
    assert status == 2
    assert out == ""
    assert any(line.startswith(expected) for line in err.splitlines()[1:]), err
    assert config_state() == applied


@pytest.mark.django_db
def test_a_policy_is_stored_with_its_length_and_dumped_back(
    ldap_password: str, tmp_path: Path
) -> None:
    path = write_config(tmp_path, _with_policy(DIR_OUT, {"attribute": "userPassword"}))
    status, _, err = jim("apply", str(path))
    assert status == 0, err
    rule = SyncRule.objects.get(name="Directory people out")
    assert rule.initial_password == {"attribute": "userPassword", "length": 16}
    assert SyncRule.objects.exclude(pk=rule.pk).filter(initial_password__isnull=False).count() == 0
    assert "initial_password: {attribute: userPassword, length: 16}" in dump()
    assert_round_trip(tmp_path)

    # Taken away again by the file: no policy left.
    status, _, err = jim("apply", str(write_config(tmp_path, example())))
    assert status == 0, err
    rule.refresh_from_db()
    assert rule.initial_password is None
    assert "initial_password" not in dump()


@pytest.mark.django_db
def test_the_admin_refuses_a_wrong_policy(applied: dict[str, Any]) -> None:
    rule = SyncRule.objects.get(name="Directory people out")
    rule.initial_password = {"attribute": "unicodePwd", "length": 6}
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert refused.value.message_dict == {
        "initial_password": [f"length: must be from {MIN_LENGTH} to {MAX_LENGTH} characters, not 6"]
    }
    rule.initial_password = {"attribute": "unicodePwd", "length": 20}
    rule.full_clean()


# --------------------------------------------------------------------------- generating


def test_a_password_has_every_class_of_character_and_its_length() -> None:
    for length in (MIN_LENGTH, 16, MAX_LENGTH):
        password = generate(length)
        assert len(password) == length
        assert set(password) <= set(string.ascii_letters + string.digits + SYMBOLS)
        for kind in (string.ascii_uppercase, string.ascii_lowercase, string.digits, SYMBOLS):
            assert set(password) & set(kind), password
    assert len({generate(16) for _ in range(100)}) == 100


def test_a_password_holds_no_part_of_the_account_names() -> None:
    parts = name_parts(["jsmith", "Smith, John-Paul", "CN=Smith\\, John,OU=people", 512, "al"])
    assert {"jsmith", "smith", "john", "paul", "ou=people"} <= parts
    assert "al" not in parts
    # Two-letter parts "avoided" would leave almost nothing: only 3+ count, as in AD.
    for _ in range(200):
        password = generate(MIN_LENGTH, ["abc", "xyz"]).lower()
        assert "abc" not in password and "xyz" not in password


@pytest.mark.django_db
def test_a_policy_for_a_connector_that_sets_no_passwords_is_rejected(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    data = example()
    data["sync_rules"].append(
        {
            "name": "HR out",
            "connected_system": "HR",
            "direction": "export",
            "object_type": "person",
            "metaverse_object_type": "person",
            "initial_password": {"attribute": "password"},
            "flows": [],
        }
    )
    with no_writes():
        status, _, err = jim("apply", str(write_config(tmp_path, data)))
    assert status == 2
    assert (
        "sync_rules[3].initial_password: the csv connector of HR does not set passwords "
        "(the ldap connector does)"
    ) in err
    assert config_state() == applied


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("HR people in", "Only an export rule sets the password of what it creates."),
        ("Directory people out", None),
    ],
)
def test_the_admin_form_takes_a_policy_on_export_rules_only(
    applied: dict[str, Any], rule: str, expected: str | None
) -> None:
    stored = SyncRule.objects.get(name=rule)
    data = {k: v for k, v in model_to_dict(stored).items() if v is not None}
    data["initial_password"] = json.dumps({"attribute": "userPassword", "length": 20})
    form = SyncRuleForm(data=data, instance=stored)
    if expected is None:
        assert form.is_valid(), form.errors
        assert form.cleaned_data["initial_password"] == {"attribute": "userPassword", "length": 20}
    else:
        assert not form.is_valid()
        assert form.errors["initial_password"] == [expected]


@pytest.mark.django_db
def test_a_policy_saved_without_its_length_dumps_with_it(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    SyncRule.objects.filter(name="Directory people out").update(
        initial_password={"attribute": "unicodePwd"}
    )
    assert "initial_password: {attribute: unicodePwd, length: 16}" in dump()
