"""The approval workflow: policy, approvers, decisions and the audit trail."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.approval import ApprovalDenied, decide
from exports.models import ApprovalAuditEntry, PendingExport
from tests.exports.exporting import export
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import build_scenario, provisioned

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(memory_connector):
    return build_scenario(connector="memory", approval_mode="deletes")


@pytest.fixture
def approver():
    user = User.objects.create_user("alice", password="x")
    user.groups.add(Group.objects.get(name="Approvers"))
    return User.objects.get(pk=user.pk)  # fresh permission cache


def _leaver(scenario):
    target = provisioned(scenario)
    MemoryConnector.directory[target.secondary_external_id] = {"id": "x", "attributes": {}}
    scenario.update_hr("1001", status="Terminated")
    scenario.sync(delta=True)
    return target, PendingExport.objects.get(cs_object=target)


def test_policy_deletes_lets_creates_flow_and_holds_deletes(scenario):
    scenario.hr_row("1002", accountName="newbie")
    target, delete = _leaver(scenario)
    create = PendingExport.objects.get(change_type="create")
    assert create.approval == "not_required"
    assert delete.approval == "awaiting_approval"

    export(scenario)

    assert "uid=newbie,ou=people,dc=example,dc=org" in MemoryConnector.directory
    assert target.secondary_external_id in MemoryConnector.directory  # delete held back


def test_approved_delete_is_sent_and_audited(scenario, approver):
    target, delete = _leaver(scenario)

    [decided] = decide([delete], approver, approve=True, reason="leaver confirmed")
    export(scenario)

    assert target.secondary_external_id not in MemoryConnector.directory
    entry = ApprovalAuditEntry.objects.get()
    assert (entry.action, entry.username, entry.reason) == ("approved", "alice", "leaver confirmed")
    assert entry.change_type == "delete" and entry.target == target.secondary_external_id
    assert decided.approved_by == approver


def test_rejected_delete_keeps_the_account_and_stays_rejected(scenario, approver):
    target, delete = _leaver(scenario)

    decide([delete], approver, approve=False, reason="still needed")
    export(scenario)
    scenario.update_hr("1001", department="Sales")  # another sync of the same leaver
    scenario.sync(delta=True)

    assert target.secondary_external_id in MemoryConnector.directory
    assert ConnectorSpaceObject.objects.filter(pk=target.pk).exists()
    delete.refresh_from_db()
    assert (delete.approval, delete.approval_reason) == ("rejected", "still needed")


def test_only_approvers_may_decide(scenario):
    _, delete = _leaver(scenario)
    viewer = User.objects.create_user("bob", password="x")

    with pytest.raises(ApprovalDenied):
        decide([delete], viewer, approve=True)
    assert PendingExport.objects.get().approval == "awaiting_approval"
    assert not ApprovalAuditEntry.objects.exists()


def test_changed_export_needs_approval_again(scenario, approver):
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(approval_mode="all")
    provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    pe = scenario.export_of("1001")
    decide([pe], approver, approve=True)

    scenario.update_hr("1001", lastName="Brown")
    scenario.sync(delta=True)

    pe.refresh_from_db()
    assert pe.approval == "awaiting_approval"
    assert pe.approved_by is None
