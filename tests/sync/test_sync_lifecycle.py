"""Joiner, mover, rename, leaver and rerun: sync from HR CSOs to Directory pending exports."""

from __future__ import annotations

import pytest

from connectors.choices import CsoStatus, JoinType
from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.sync.scenario import build_scenario, changes, provisioned, rpeis

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rpei_writes")]


@pytest.fixture
def scenario():
    return build_scenario()


def test_joiner_projects_and_stages_a_create_with_dn_and_every_attribute(scenario):
    scenario.hr_row("1001", firstName="John", lastName="Smith", accountName="jsmith")

    activity = scenario.sync()

    mvo = scenario.mvo_of("1001")
    assert mvo.attributes["displayName"] == ["John Smith"]
    assert mvo.attribute_sources["givenName"] == {
        "system": scenario.hr.pk,
        "rule": scenario.hr_in.pk,
    }
    target = scenario.dir_cso_of("1001")
    assert target.status == CsoStatus.PENDING_PROVISIONING
    assert target.join_type == JoinType.PROVISIONED
    assert target.secondary_external_id == "uid=jsmith,ou=people,dc=example,dc=org"
    pe = PendingExport.objects.get(cs_object=target)
    assert (pe.change_type, pe.status, pe.approval) == ("create", "pending", "not_required")
    assert pe.dn == "uid=jsmith,ou=people,dc=example,dc=org"
    assert changes(pe) == {
        ("uid", "update"): ["jsmith"],
        ("cn", "update"): ["John Smith"],
        ("sn", "update"): ["Smith"],
        ("mail", "update"): ["john.smith@example.org"],
    }
    [item] = rpeis(activity)
    assert item.change_type == "projected"
    assert item.details["exports"][0]["action"] == "create"
    assert activity.counts == {"projected": 1}


def test_manager_reference_flows_to_the_managers_target_object(scenario):
    # The report comes before the manager and lands in an earlier batch position.
    scenario.hr_row("2", accountName="report", managerId=[0])
    manager = scenario.hr_row("1", accountName="boss")
    report = ConnectorSpaceObject.objects.get(external_id="2")
    report.attributes["managerId"] = [manager.pk]
    report.save()

    scenario.sync()

    assert scenario.mvo_of("2").attributes["manager"] == [scenario.mvo_of("1").pk]
    pe = scenario.export_of("2")
    assert changes(pe)[("manager", "update")] == [scenario.dir_cso_of("1").pk]


def test_rerun_with_no_change_stages_nothing_and_records_nothing(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    before = list(PendingExport.objects.values_list("pk", "updated_at"))

    activity = scenario.sync()

    assert rpeis(activity) == []
    assert list(PendingExport.objects.values_list("pk", "updated_at")) == before
    assert MetaverseObject.objects.count() == 1


def test_mover_stages_one_update_with_only_the_changed_attribute(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")

    activity = scenario.sync(delta=True)

    pe = scenario.export_of("1001")
    assert pe.change_type == "update"
    assert changes(pe) == {
        ("cn", "update"): ["John Jones"],
        ("sn", "update"): ["Jones"],
        ("mail", "update"): ["john.jones@example.org"],
    }
    [item] = rpeis(activity)
    assert item.change_type == "attribute_flow"
    assert set(item.details["attributes"]) == {"sn", "displayName"}


def test_rename_stages_a_modify_dn(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", accountName="jsmith2")

    scenario.sync(delta=True)

    pe = scenario.export_of("1001")
    assert pe.change_type == "update"
    assert pe.dn == "uid=jsmith2,ou=people,dc=example,dc=org"
    assert changes(pe) == {("uid", "update"): ["jsmith2"]}


def test_leaver_out_of_scope_stages_a_delete_for_a_provisioned_object(scenario):
    target = provisioned(scenario)
    scenario.update_hr("1001", status="Terminated")

    scenario.sync(delta=True)

    pe = PendingExport.objects.get(cs_object=target)
    assert pe.change_type == "delete"
    assert list(pe.attribute_changes.all()) == []


def test_leaver_disconnects_a_joined_preexisting_account(scenario):
    existing = scenario.directory_entry("jsmith", cn="J Smith", sn="Smith")
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    existing.refresh_from_db()
    assert existing.join_type == JoinType.JOINED
    # Only the differences are staged, never a create for an account that exists.
    pe = PendingExport.objects.get(cs_object=existing)
    assert pe.change_type == "update"
    assert ("sn", "update") not in changes(pe)

    scenario.update_hr("1001", status="Terminated")
    activity = scenario.sync(delta=True)

    existing.refresh_from_db()
    assert existing.join_type == JoinType.NOT_JOINED
    assert existing.metaverse_object_id is None
    assert not PendingExport.objects.filter(cs_object=existing, change_type="delete").exists()
    assert rpeis(activity)[0].details["exports"][0]["action"] == "disconnect"


def test_create_no_longer_wanted_is_cancelled_not_exported(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    scenario.update_hr("1001", status="Terminated")

    scenario.sync(delta=True)

    assert not ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).exists()
    assert PendingExport.objects.count() == 0


def test_provisioning_joins_the_object_found_by_dn_instead_of_creating(scenario):
    existing = scenario.directory_entry("jsmith")
    # No uid join possible: the import join rule looks at uid, which differs here.
    existing.attributes = {"uid": ["other"]}
    existing.save()
    scenario.hr_row("1001", accountName="jsmith")

    scenario.sync()

    existing.refresh_from_db()
    assert existing.metaverse_object_id == scenario.mvo_of("1001").pk
    assert ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).count() == 1
    assert PendingExport.objects.get(cs_object=existing).change_type == "update"


def test_invalid_generated_dn_is_an_error_on_that_object(scenario):
    scenario.hr_row("1001", accountName=None)

    activity = scenario.sync()

    errors = [i for i in rpeis(activity) if i.error_type]
    assert [e.error_type for e in errors] == ["invalid_generated_external_id"]
    assert "Directory people out" in errors[0].message
    assert PendingExport.objects.count() == 0
