"""``deprovision: disable``: a leaver's account is disabled and moved, deleted after
``delete_after_days``; a returner within the window is re-enabled and moved back, the
same entry (against the private slapd, configured by ``jim apply``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from connectors.models import ConnectorSpaceObject
from console.approval_story import export_stories
from exports.approval import decide
from exports.models import PendingExport
from metaverse.models import MetaverseObject, SyncRule
from metaverse.sync import disabling
from metaverse.sync.rules import RuleSet
from tests.scenarios.estate import Estate, person
from tests.support.cli import jim
from tests.support.configuration import (
    EXAMPLE,
    config_state,
    example,
    no_writes,
    write_config,
)
from tests.sync.disabling_estate import (
    ADA,
    ALAN,
    DISABLE,
    cso_of,
    days_pass,
    disabled_and_confirmed,
    disabled_dn,
    leave,
    make_estate,
    people_dn,
    provisioned,
    remove_alan,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch) -> Estate:
    return make_estate(tmp_path, slapd, ldap_ou, monkeypatch)


def test_a_leaver_is_disabled_and_moved_not_deleted(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    before = estate.entry(people_dn(estate, "ada"))
    assert before["employeeType"] == ["active"]

    leave(estate)

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.disables, pe.dn) == ("update", True, disabled_dn(estate, "ada"))
    assert pe.identity["reason"] == "out_of_scope"
    assert cso_of(estate, "ada").disabled_at is None  # not sent yet
    entry = disabled_and_confirmed(estate, "ada")
    assert estate.entry(people_dn(estate, "ada")) is None
    assert entry["entryUUID"] == before["entryUUID"]
    assert entry["employeeType"] == ["disabled"]
    assert entry["description"] == ["disabled by JIM: Suspended"]
    assert entry["cn"] == ["Ada Lovelace"]  # the rest is left as it was
    cso = cso_of(estate, "ada")
    assert cso.disabled_at is not None and cso.metaverse_object_id is not None
    assert cso.secondary_external_id == disabled_dn(estate, "ada")
    # confirmed, and nothing more to do: another full sync of each side stages nothing
    assert not PendingExport.objects.exists()
    estate.run("HR", "Full Sync")
    estate.run("Directory", "Full Sync")
    assert not PendingExport.objects.exists()
    # within the window: still there
    days_pass(estate, "ada", 29)
    estate.run("HR", "Full Sync")
    assert not PendingExport.objects.exists()


def test_the_console_and_the_api_show_a_disabled_account_with_its_delete_date(
    estate: Estate,
) -> None:
    provisioned(estate, [ADA, ALAN])
    leave(estate)
    disabled_and_confirmed(estate, "ada")
    days_pass(estate, "ada", 10)
    cso = cso_of(estate, "ada")
    due = cso.disabled_at + dt.timedelta(days=30)
    admin = User.objects.create_superuser("root", password="x")
    client = APIClient()
    client.force_login(admin)

    shown = client.get(f"/api/v1/connector-space-objects/{cso.pk}/").json()
    assert dt.datetime.fromisoformat(shown["disabled_at"]) == cso.disabled_at
    assert dt.datetime.fromisoformat(shown["delete_due_at"]) == due
    alan = client.get(f"/api/v1/connector-space-objects/{cso_of(estate, 'alan').pk}/").json()
    assert (alan["disabled_at"], alan["delete_due_at"]) == (None, None)

    text = f"disabled since {cso.disabled_at:%Y-%m-%d}, deleted after {due:%Y-%m-%d}"
    page = client.get(reverse("admin:connectors_connectorspaceobject_changelist"))
    assert text in page.content.decode()
    page = client.get(reverse("admin:connectors_connectorspaceobject_change", args=[cso.pk]))
    assert text in page.content.decode()
    page = client.get(reverse("console:mvo", args=[cso.metaverse_object_id]))
    assert text in page.content.decode()


def test_after_the_window_a_full_sync_deletes_the_disabled_account(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    leave(estate)
    disabled_and_confirmed(estate, "ada")

    days_pass(estate, "ada", 31)
    estate.run("HR", "Full Sync")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.cs_object.attributes["uid"]) == ("delete", ["ada"])
    assert estate.run("Directory", "Export").counts == {"deprovisioned": 1}
    assert estate.entry(disabled_dn(estate, "ada")) is None
    assert estate.entry(people_dn(estate, "alan")) is not None
    assert not ConnectorSpaceObject.objects.filter(attributes__uid=["ada"]).exists()


def test_a_person_removed_from_hr_keeps_the_mvo_and_a_delta_sync_deletes_later(
    estate: Estate,
) -> None:
    provisioned(estate, [ADA, ALAN])
    mvo = cso_of(estate, "alan").metaverse_object

    remove_alan(estate)  # gone from HR: his MVO's deletion rule fires

    mvo.refresh_from_db()
    assert (mvo.status, mvo.deletion_due_at) == ("deletion_scheduled", None)  # kept
    pe = PendingExport.objects.get()
    assert pe.disables and pe.identity["reason"] == "metaverse_object_deleted"
    disabled_and_confirmed(estate, "alan")
    assert cso_of(estate, "alan").metaverse_object_id == mvo.pk

    days_pass(estate, "alan", 31)
    estate.run("Directory", "Delta Sync")  # nothing imported: the housekeeping does it

    assert not MetaverseObject.objects.filter(pk=mvo.pk).exists()
    pe = PendingExport.objects.get()
    assert pe.change_type == "delete" and pe.identity["reason"] == "metaverse_object_deleted"
    assert estate.run("Directory", "Export").counts == {"deprovisioned": 1}
    assert estate.entry(disabled_dn(estate, "alan")) is None


def test_a_returner_within_the_window_is_re_enabled_and_moved_back(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    uuid = estate.entry(people_dn(estate, "ada"))["entryUUID"]
    cso_id = cso_of(estate, "ada").pk
    leave(estate)
    disabled_and_confirmed(estate, "ada")
    days_pass(estate, "ada", 20)

    estate.write_people([ADA, ALAN])  # back
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.disables, pe.dn) == ("update", False, people_dn(estate, "ada"))
    assert cso_of(estate, "ada").disabled_at is None
    assert estate.run("Directory", "Export").counts == {"exported": 1}
    entry = estate.entry(people_dn(estate, "ada"))
    assert entry["entryUUID"] == uuid
    assert entry["employeeType"] == ["active"]
    assert "description" not in entry
    assert estate.entry(disabled_dn(estate, "ada")) is None
    estate.run("Directory", "Full Import")
    estate.run("Directory", "Full Sync")
    assert not PendingExport.objects.exists()
    assert cso_of(estate, "ada").pk == cso_id


def test_a_returner_after_removal_from_hr_joins_the_kept_mvo(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    uuid = estate.entry(people_dn(estate, "alan"))["entryUUID"]
    mvo_id = cso_of(estate, "alan").metaverse_object_id
    remove_alan(estate)
    disabled_and_confirmed(estate, "alan")

    estate.write_people([ADA, ALAN])  # a new HR record with his employee id
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    mvo = MetaverseObject.objects.get(pk=mvo_id)
    assert (mvo.status, mvo.deletion_due_at) == ("normal", None)
    assert MetaverseObject.objects.filter(object_type__name="person").count() == 2
    assert estate.run("Directory", "Export").counts == {"exported": 1}  # no create
    entry = estate.entry(people_dn(estate, "alan"))
    assert entry["entryUUID"] == uuid and entry["employeeType"] == ["active"]
    assert cso_of(estate, "alan").disabled_at is None


def test_a_returner_before_the_disable_was_sent_cancels_it(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    leave(estate)
    assert PendingExport.objects.get().disables

    estate.write_people([ADA, ALAN])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    assert not PendingExport.objects.exists()
    assert estate.entry(people_dn(estate, "ada"))["employeeType"] == ["active"]


def test_a_returner_before_the_disable_was_confirmed_is_re_enabled(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    leave(estate)
    assert estate.run("Directory", "Export").counts == {"exported": 1}  # not yet imported
    assert cso_of(estate, "ada").disabled_at is not None

    estate.write_people([ADA, ALAN])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.disables, pe.dn) == ("update", False, people_dn(estate, "ada"))
    assert cso_of(estate, "ada").disabled_at is None
    assert estate.run("Directory", "Export").counts == {"exported": 1}
    estate.run("Directory", "Delta Import")
    estate.run("Directory", "Delta Sync")
    assert not PendingExport.objects.exists()
    entry = estate.entry(people_dn(estate, "ada"))
    assert entry["employeeType"] == ["active"] and "description" not in entry


def test_the_expired_accounts_are_found_with_one_query(estate: Estate) -> None:
    provisioned(estate, [ADA, ALAN])
    leave(estate)
    disabled_and_confirmed(estate, "ada")
    days_pass(estate, "ada", 31)
    ruleset = RuleSet.load()

    with CaptureQueriesContext(connection) as queries:
        found = disabling.expired(ruleset, timezone.now())

    ada = cso_of(estate, "ada")
    assert found == {ada.metaverse_object_id: {ada.connected_system_id}}
    assert len(queries) == 1 and '"disabled_at" <=' in queries[0]["sql"]


def test_an_account_jim_did_not_provision_is_only_disconnected(estate: Estate) -> None:
    connection = estate.ldap.connection(raise_exceptions=True)
    try:
        connection.add(
            people_dn(estate, "eve"),
            ["inetOrgPerson"],
            {"cn": "Eve", "sn": "Eve", "uid": "eve", "employeeType": "active"},
        )
    finally:
        connection.unbind()
    estate.run("Directory", "Full Import")
    provisioned(estate, [ADA, ALAN])  # and eve: joined, not provisioned (below)
    estate.write_people([ADA, ALAN, person("5", "Eve", "Eve", "eve")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    eve = cso_of(estate, "eve")
    assert eve.join_type == "joined"
    estate.run("Directory", "Export")
    estate.run("Directory", "Full Import")
    before = estate.entry(people_dn(estate, "eve"))

    estate.write_people([ADA, ALAN, person("5", "Eve", "Eve", "eve", status="Suspended")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")

    eve.refresh_from_db()
    assert (eve.join_type, eve.metaverse_object_id, eve.disabled_at) == ("not_joined", None, None)
    assert not PendingExport.objects.filter(cs_object=eve).exists()
    assert estate.entry(people_dn(estate, "eve")) == before


def test_the_disable_and_the_delete_wait_for_approval(tmp_path, slapd, ldap_ou, monkeypatch):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch, approval="deletes")
    approver = User.objects.create_user("alice")
    approver.groups.add(Group.objects.get(name="Approvers"))
    approver = User.objects.get(pk=approver.pk)
    provisioned(estate, [ADA, ALAN])
    leave(estate)

    pe = PendingExport.objects.get()
    assert (pe.disables, pe.approval) == (True, "awaiting_approval")  # approved as a delete
    story = export_stories([pe])[0]
    assert "Ada Lovelace left the scope of the export rule" in story.reasons[0]
    assert (
        "the rule disables the accounts it provisioned (deleted 30 days later" in (story.reasons[0])
    )
    assert story.afterwards[0].startswith("On approval, the next export run disables Ada")
    assert estate.run("Directory", "Export").counts == {}
    assert estate.entry(people_dn(estate, "ada")) is not None
    decide([pe], approver, approve=True, reason="left")
    disabled_and_confirmed(estate, "ada")

    days_pass(estate, "ada", 31)
    estate.run("HR", "Full Sync")
    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.approval) == ("delete", "awaiting_approval")
    assert estate.run("Directory", "Export").counts == {}
    decide([pe], approver, approve=True, reason="gone for good")
    assert estate.run("Directory", "Export").counts == {"deprovisioned": 1}
    assert estate.entry(disabled_dn(estate, "ada")) is None


def test_a_disable_that_cannot_be_staged_is_an_error_and_kept_for_the_next_sync(
    tmp_path, slapd, ldap_ou, monkeypatch
):
    # the disabled DN is the department alone: Alan, in none, has no valid one
    broken = DISABLE.replace(
        "uid={{{{ mv.accountName }}}},ou=disabled,{base}", "{{{{ mv.department }}}}"
    )
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch, disable=broken)
    provisioned(estate, [ADA, {**ALAN, "department": ""}])
    mvo = cso_of(estate, "alan").metaverse_object

    estate.write_people([ADA])
    estate.run("HR", "Full Import", allow_deletions=True)
    for profile in ("Delta Sync", "Full Sync"):  # and again, by the next sync
        sync = estate.run("HR", profile)

        errors = list(sync.items.exclude(error_type="").values_list("message", flat=True))
        assert any("generated disable DN '' is not valid" in e for e in errors), errors
        mvo.refresh_from_db()
        assert mvo.status == "deletion_scheduled" and mvo.deletion_due_at <= timezone.now()
        assert cso_of(estate, "alan").metaverse_object_id == mvo.pk  # nothing lost
        assert not PendingExport.objects.exists()


# --------------------------------------------------------------------------- configuration


def _people_out(data: dict) -> dict:
    return next(r for r in data["sync_rules"] if r["name"] == "Directory people out")


def _with(**keys: Any):
    def mutate(data: dict) -> dict:
        _people_out(data).update(keys)
        return data

    return mutate


DISABLE_KEYS = {
    "deprovision": "disable",
    "disable": {
        "flows": [{"cs": "description", "expression": "'disabled'"}],
        "dn": "uid={{ mv.accountName }},ou=disabled,ou=people,dc=example,dc=org",
    },
    "delete_after_days": 30,
}

MISTAKES = {
    "disable without deprovision disable": (
        _with(disable={"flows": []}),
        "sync_rules[2].disable: only with 'deprovision: disable' "
        "(this rule's deprovision is 'delete')",
    ),
    "delete_after_days without disable": (
        _with(delete_after_days=30),
        "sync_rules[2].delete_after_days: only with 'deprovision: disable'",
    ),
    "delete_after_days zero": (
        _with(**{**DISABLE_KEYS, "delete_after_days": 0}),
        "sync_rules[2].delete_after_days: must be 1 or more, not 0",
    ),
    "delete_after_days text": (
        _with(**{**DISABLE_KEYS, "delete_after_days": "30 days"}),
        "sync_rules[2].delete_after_days: must be a whole number",
    ),
    "unknown disable key": (
        _with(**{**DISABLE_KEYS, "disable": {"flow": []}}),
        "sync_rules[2].disable.flow: unknown key 'flow'",
    ),
    "disable flow without source": (
        _with(**{**DISABLE_KEYS, "disable": {"flows": [{"cs": "description"}]}}),
        "sync_rules[2].disable.flows[0]: missing 'from' (an attribute) or 'expression'",
    ),
    "disable flow of an unknown attribute": (
        _with(**{**DISABLE_KEYS, "disable": {"flows": [{"cs": "x", "from": "nope"}]}}),
        "sync_rules[2].disable.flows[0].from: no metaverse attribute 'nope' on person",
    ),
    "disable dn that does not compile": (
        _with(**{**DISABLE_KEYS, "disable": {"dn": "uid={{ mv.accountName ,ou=x"}}),
        "sync_rules[2].disable.dn: does not compile",
    ),
    "disable dn without the rule's dn": (
        _with(**{**DISABLE_KEYS, "dn": None}),
        "sync_rules[2].disable.dn: moving a disabled account needs the rule's own 'dn'",
    ),
    "disable on an import rule": (
        lambda data: data["sync_rules"][0].update(disable={"flows": []}) or data,
        "sync_rules[0].disable: not allowed on an import rule",
    ),
}


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("JIM_LDAP_PASSWORD", "pw")
    status, _, err = jim("apply", str(EXAMPLE))
    assert status == 0, err
    return config_state()


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_disable_mistake_is_rejected_with_its_key_path(
    mistake: str, applied: dict[str, Any], tmp_path: Path
) -> None:
    mutate, expected = MISTAKES[mistake]
    data = mutate(example())
    if _people_out(data).get("dn", "") is None:
        del _people_out(data)["dn"]
        _people_out(data)["provision"] = False
    path = write_config(tmp_path, data)

    with no_writes():
        status, out, err = jim("apply", str(path))

    assert status == 2, out
    assert any(line.startswith(expected) for line in err.splitlines()[1:]), err
    assert config_state() == applied


def test_the_disable_keys_are_applied_and_dumped_back(
    applied: dict[str, Any], tmp_path: Path
) -> None:
    data = example()
    _people_out(data).update(DISABLE_KEYS)
    status, out, err = jim("apply", str(write_config(tmp_path, data)))
    assert status == 0, err
    assert "disable.flows" in out and "disable.dn" in out and "delete_after_days" in out
    rule = SyncRule.objects.get(name="Directory people out")
    assert rule.deprovision_action == "disable"
    assert rule.disable_flows == [{"target": "description", "expression": "'disabled'"}]
    assert rule.delete_after_days == 30

    status, dumped, err = jim("dump")
    assert status == 0, err
    out_rule = _people_out(yaml.safe_load(dumped))
    assert {k: out_rule[k] for k in DISABLE_KEYS} == DISABLE_KEYS
    path = tmp_path / "dumped.yaml"
    path.write_text(dumped)
    before = config_state()
    with no_writes():
        status, out, err = jim("apply", str(path))
    assert status == 0, err
    assert "no changes" in out
    assert config_state() == before
