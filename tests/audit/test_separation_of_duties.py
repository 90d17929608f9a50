"""Separation of duties: with the setting on, nobody approves an export that their own
run or configuration change produced; with it off, or for another approver, approval
goes through. Approvals, rejections, retries and discards are on the general trail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from audit.models import AuditEntry
from audit.recording import record
from connectors.models import Activity, ConnectedSystem
from exports.approval import SeparationOfDuties, decide
from exports.intervention import discard, retry
from exports.models import PendingExport
from tests.exports.failures import failed_creates, user_with
from tests.support.cli import jim
from tests.sync.scenario import build_scenario
from tests.test_admin_secrets import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(memory_connector):
    """HR → Directory, every Directory export awaiting approval, duties separated."""
    return build_scenario(connector="memory", approval_mode="all", separate_duties=True)


def approver(username: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Approvers"))
    return User.objects.get(pk=user.pk)


def joiner(scenario, employee_id: str = "1001", account: str = "jsmith") -> PendingExport:
    scenario.hr_row(employee_id, accountName=account)
    scenario.sync()
    return scenario.export_of(employee_id)


def started_by(pe: PendingExport, user: User) -> None:
    """The run that staged ``pe`` was started by ``user`` (as the admin's Run button does)."""
    Activity.objects.filter(pk=pe.created_by_activity_id).update(initiated_by=user)


def test_the_user_who_started_the_run_may_not_approve_its_exports(scenario) -> None:
    alice, bob = approver("alice"), approver("bob")
    pe = joiner(scenario)
    started_by(pe, alice)

    with pytest.raises(SeparationOfDuties) as refused:
        decide([pe], alice, approve=True, reason="mine")

    message = str(refused.value)
    assert f"pending export {pe.pk} (Directory create uid=jsmith" in message
    assert f"alice started the run that staged it (activity {pe.created_by_activity_id}" in message
    assert "Another approver must approve" in message
    pe.refresh_from_db()
    assert pe.approval == "awaiting_approval"
    assert not AuditEntry.objects.filter(action="approved").exists()

    decide([pe], bob, approve=True, reason="checked")
    pe.refresh_from_db()
    assert (pe.approval, pe.approved_by) == ("approved", bob)


def test_the_user_who_changed_its_configuration_may_not_approve_it(scenario) -> None:
    alice, bob = approver("alice"), approver("bob")
    record(alice, "changed", scenario.dir_out, changes={"dn_template": ["a", "b"]})
    pe = joiner(scenario)

    with pytest.raises(SeparationOfDuties, match="alice changed its configuration"):
        decide([pe], alice, approve=True)

    decide([pe], bob, approve=True)
    assert PendingExport.objects.get(pk=pe.pk).approval == "approved"


@pytest.mark.parametrize("changed", ["system", "object type", "import rule"])
def test_the_system_and_the_rules_feeding_it_are_its_configuration(scenario, changed) -> None:
    alice = approver("alice")
    obj = {
        "system": scenario.directory,
        "object type": scenario.dir_person,
        "import rule": scenario.hr_in,
    }[changed]
    record(alice, "changed", obj, changes={"x": [1, 2]})
    pe = joiner(scenario)

    with pytest.raises(SeparationOfDuties):
        decide([pe], alice, approve=True)


def test_another_systems_configuration_does_not_count(scenario) -> None:
    alice = approver("alice")
    other = ConnectedSystem.objects.create(name="Other", connector="csv")
    record(alice, "changed", other, changes={"x": [1, 2]})
    pe = joiner(scenario)

    decide([pe], alice, approve=True)
    assert PendingExport.objects.get(pk=pe.pk).approval == "approved"


def test_with_the_setting_off_the_same_user_may_approve(scenario) -> None:
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(separate_duties=False)
    alice = approver("alice")
    record(alice, "changed", scenario.dir_out, changes={"x": [1, 2]})
    pe = joiner(scenario)
    started_by(pe, alice)

    decide([pe], alice, approve=True)
    assert PendingExport.objects.get(pk=pe.pk).approval == "approved"


def test_rejecting_stays_allowed_and_is_on_the_general_trail(scenario) -> None:
    alice = approver("alice")
    pe = joiner(scenario)
    started_by(pe, alice)

    decide([pe], alice, approve=False, reason="not this one")

    entry = AuditEntry.objects.get(action="rejected")
    assert (entry.actor, entry.reason) == (alice, "not this one")
    assert (entry.object_type, entry.object_id) == ("exports.pendingexport", str(pe.pk))
    assert entry.changes == {"approval": ["awaiting_approval", "rejected"]}
    assert entry.object_repr.startswith("Directory create uid=jsmith")


def test_a_bulk_approval_with_one_conflict_approves_nothing(scenario) -> None:
    alice = approver("alice")
    mine = joiner(scenario, "1001", "jsmith")
    theirs = joiner(scenario, "1002", "mjones")
    started_by(mine, alice)

    with pytest.raises(SeparationOfDuties) as refused:
        decide([mine, theirs], alice, approve=True)

    assert [c.export.pk for c in refused.value.conflicts] == [mine.pk]
    assert "1 of the 2 pending export(s)" in str(refused.value)
    assert set(PendingExport.objects.values_list("approval", flat=True)) == {"awaiting_approval"}
    decide([theirs], alice, approve=True)  # leaving it out approves the other
    assert PendingExport.objects.get(pk=theirs.pk).approval == "approved"


def test_the_admin_shows_the_refusal(scenario, client) -> None:
    alice = user_with(
        "alice",
        "approve_pendingexport",
        "view_pendingexport",
        "view_pendingexportattributechange",
        is_staff=True,
    )
    pe = joiner(scenario)
    started_by(pe, alice)
    client.force_login(alice)

    response = client.post(
        reverse("admin:exports_pendingexport_approve", args=[pe.pk]),
        {"confirm": "yes", "reason": "mine"},
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Separation of duties (Directory): alice may not approve" in page
    assert "nothing was approved" in page
    assert "alice started the run that staged it" in page
    assert PendingExport.objects.get(pk=pe.pk).approval == "awaiting_approval"


def test_jim_approve_shows_the_refusal(scenario) -> None:
    alice = approver("alice")
    pe = joiner(scenario)
    started_by(pe, alice)

    status, _, err = jim("approve", str(pe.pk), "--user", "alice")

    assert status == 2
    assert "separation of duties (Directory): alice may not approve" in err
    assert "nothing was approved" in err
    status, out, _ = jim("approve", str(pe.pk), "--user", approver("bob").username)
    assert status == 0 and "Approved 1" in out
    entry = AuditEntry.objects.get(action="approved")
    assert (entry.actor.username, entry.via) == ("bob", "cli")


def test_retries_and_discards_are_on_the_general_trail(memory_connector) -> None:
    failing = build_scenario(
        connector="memory", export_retry_backoff_seconds=60, export_max_retries=1
    )
    olga = user_with("olga", "intervene_pendingexport")
    first, second = failed_creates(failing, "amy", "ben")

    retry([first], olga, reason="directory fixed")
    discard([second], olga, reason="not wanted")

    retried = AuditEntry.objects.get(action="retried")
    assert (retried.actor, retried.reason, retried.object_id) == (
        olga,
        "directory fixed",
        str(first.pk),
    )
    assert retried.changes == {"status": ["failed", "pending"]}
    discarded = AuditEntry.objects.get(action="discarded")
    assert (discarded.reason, discarded.object_id) == ("not wanted", str(second.pk))
    assert "uid=ben" in discarded.object_repr


def test_a_rule_changed_in_the_admin_refuses_its_author_end_to_end(scenario, client) -> None:
    ada = User.objects.create_user("ada", password="pw", is_staff=True)
    ada.groups.add(Group.objects.get(name="Administrators"))
    client.force_login(ada)
    rule = scenario.dir_out
    url = reverse("admin:metaverse_syncrule_change", args=[rule.pk])
    data = form_data(client.get(url))
    flow = rule.flows.get(target="mail")
    [key] = [k for k, v in data.items() if k.endswith("-id") and str(v) == str(flow.pk)]
    prefix = key.removesuffix("-id")
    data[f"{prefix}-expression"] = "mv.accountName ~ '@example.org'"

    assert client.post(url, data).status_code == 302

    entry = AuditEntry.objects.get(object_type="metaverse.syncrule", action="changed")
    assert entry.actor == ada and entry.via == "admin"
    assert entry.changes == {
        f"sync_rule_flows#{flow.pk}.expression": [
            flow.expression,
            "mv.accountName ~ '@example.org'",
        ]
    }
    pe = joiner(scenario)
    with pytest.raises(SeparationOfDuties, match="ada changed its configuration"):
        decide([pe], User.objects.get(pk=ada.pk), approve=True)
