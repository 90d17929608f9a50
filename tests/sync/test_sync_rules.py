"""Precedence, errors, drift, deletion rules, delta sync and approvals."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from connectors.choices import CsoStatus
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseObject, SyncRule, SyncRuleFlow
from tests.sync.scenario import build_scenario, changes, provisioned, rpeis, second_source

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rpei_writes")]


@pytest.fixture
def scenario():
    return build_scenario()


def test_rule_listed_first_has_precedence(scenario):
    book, _ = second_source(scenario, precedence=5)
    scenario.hr_row("1001", accountName="jsmith", department="HR dept")
    scenario.sync()

    scenario.sync(book)

    mvo = scenario.mvo_of("1001")
    assert mvo.attributes["department"] == ["HR dept"]
    assert mvo.attributes["phone"] == ["555"]  # HR contributes no phone
    assert mvo.attribute_sources["phone"]["system"] == book.pk


def test_later_rule_takes_over_when_earlier_system_has_no_value(scenario):
    book, _ = second_source(scenario, precedence=5)
    scenario.hr_row("1001", accountName="jsmith")  # no department in HR
    scenario.sync()
    scenario.sync(book)
    assert scenario.mvo_of("1001").attributes["department"] == ["Phonebook dept"]

    scenario.update_hr("1001", department="HR dept")
    scenario.sync(delta=True)

    assert scenario.mvo_of("1001").attributes["department"] == ["HR dept"]


def test_recalled_values_when_contributing_system_disconnects(scenario):
    book, _ = second_source(scenario, precedence=5)
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    scenario.sync(book)
    ConnectorSpaceObject.objects.filter(connected_system=book).update(
        status="obsolete", sync_pending=True
    )

    activity = scenario.sync(book, delta=True)

    mvo = scenario.mvo_of("1001")
    assert "phone" not in mvo.attributes
    assert rpeis(activity)[0].change_type == "disconnected"
    assert not ConnectorSpaceObject.objects.filter(connected_system=book).exists()


def test_expression_error_is_an_rpei_and_the_object_is_left_untouched(scenario):
    flow = scenario.hr_in.flows.get(kind="expression")
    flow.expression = "cs.firstName ~ ' ' ~ (1 / 0)"
    flow.save()
    scenario.hr_row("1001", accountName="jsmith")
    scenario.hr_row("1002", accountName="jdoe")

    activity = scenario.sync()

    errors = [i for i in rpeis(activity) if i.error_type]
    assert {e.error_type for e in errors} == {"expression_error"}
    assert len(errors) == 2
    assert "HR people in" in errors[0].message and "division by zero" in errors[0].message
    assert MetaverseObject.objects.count() == 0
    assert (
        ConnectorSpaceObject.objects.filter(connected_system=scenario.hr, sync_pending=True).count()
        == 2
    )


def test_ambiguous_join_is_an_error(scenario):
    scenario.hr_row("1001", accountName="same")
    scenario.hr_row("1002", accountName="same")
    scenario.sync()
    scenario.directory_entry("same")

    activity = scenario.sync(scenario.directory)

    [item] = [i for i in rpeis(activity) if i.error_type]
    assert item.error_type == "ambiguous_match"
    assert "matches 2 metaverse objects" in item.message


def test_second_object_of_a_system_cannot_join_the_same_mvo(scenario):
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    scenario.directory_entry("jsmith")  # joins by uid … but the MVO already has a provisioned CSO
    activity = scenario.sync(scenario.directory)
    [item] = [i for i in rpeis(activity) if i.error_type]
    assert item.error_type == "could_not_join_due_to_existing_join"


def test_drift_in_target_is_corrected_when_enforce_state(scenario):
    target = provisioned(scenario)
    target.attributes["cn"] = ["Hacked Name"]
    target.sync_pending = True
    target.save()

    activity = scenario.sync(scenario.directory, delta=True)

    pe = PendingExport.objects.get(cs_object=target)
    assert changes(pe) == {("cn", "update"): ["John Smith"]}
    [item] = rpeis(activity)
    assert item.change_type == "drift_correction"


def test_no_drift_correction_without_enforce_state(scenario):
    SyncRule.objects.filter(pk=scenario.dir_out.pk).update(enforce_state=False)
    target = provisioned(scenario)
    target.attributes["cn"] = ["Hacked Name"]
    target.sync_pending = True
    target.save()

    activity = scenario.sync(scenario.directory, delta=True)

    assert not PendingExport.objects.filter(cs_object=target).exists()
    assert rpeis(activity) == []


def test_value_contributed_by_the_target_is_not_exported_back(scenario):
    # The Directory contributes sn; the export rule must not send it back.
    SyncRuleFlow.objects.create(sync_rule=scenario.dir_join, order=0, target="sn", source="sn")
    SyncRule.objects.filter(pk=scenario.dir_join.pk).update(precedence=0)
    SyncRule.objects.filter(pk=scenario.hr_in.pk).update(precedence=1)
    existing = scenario.directory_entry("jsmith", sn="Directory-Sn")
    scenario.hr_row("1001", accountName="jsmith", lastName="Hr-Sn")
    scenario.sync()
    scenario.sync(scenario.directory)
    assert scenario.mvo_of("1001").attributes["sn"] == ["Directory-Sn"]

    existing.attributes["sn"] = ["Changed-In-Directory"]
    existing.sync_pending = True
    existing.save()
    scenario.sync(scenario.directory, delta=True)

    assert scenario.mvo_of("1001").attributes["sn"] == ["Changed-In-Directory"]
    assert not PendingExportAttributeChange.objects.filter(attribute="sn").exists()


def test_last_connector_removed_deletes_mvo_and_deprovisions(scenario):
    target = provisioned(scenario)
    scenario.obsolete_hr("1001")

    activity = scenario.sync(delta=True)

    assert MetaverseObject.objects.count() == 0
    pe = PendingExport.objects.get(cs_object=target)
    assert pe.change_type == "delete"
    target.refresh_from_db()
    assert target.metaverse_object_id is None
    item = rpeis(activity)[0]
    assert item.change_type == "disconnected"
    assert item.details["metaverse_object_deleted"] is True


def test_grace_period_keeps_the_mvo_until_due_then_housekeeping_deletes(scenario):
    scenario.person.deletion_grace_period_days = 7
    scenario.person.save()
    target = provisioned(scenario)
    scenario.obsolete_hr("1001")

    scenario.sync(delta=True)

    mvo = MetaverseObject.objects.get()
    assert mvo.status == "deletion_scheduled"
    assert mvo.deletion_due_at > timezone.now() + dt.timedelta(days=6)
    assert not PendingExport.objects.filter(cs_object=target).exists()

    MetaverseObject.objects.update(deletion_due_at=timezone.now() - dt.timedelta(seconds=1))
    scenario.sync(delta=True)

    assert MetaverseObject.objects.count() == 0
    assert PendingExport.objects.get(cs_object=target).change_type == "delete"


def test_rejoin_during_grace_period_cancels_the_deletion(scenario):
    scenario.person.deletion_grace_period_days = 7
    scenario.person.save()
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    scenario.obsolete_hr("1001")
    scenario.sync(delta=True)
    scenario.hr_row("1001", accountName="jsmith")  # back in the HR file (a new CSO)

    scenario.sync(delta=True)

    mvo = MetaverseObject.objects.get()
    assert mvo.status == "normal" and mvo.deletion_due_at is None


def test_authoritative_connector_removed(scenario):
    scenario.person.deletion_rule = "authoritative_connector_removed"
    scenario.person.save()
    scenario.person.authoritative_systems.add(scenario.hr)
    existing = scenario.directory_entry("jsmith")
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    existing.refresh_from_db()
    assert existing.metaverse_object_id is not None
    scenario.obsolete_hr("1001")

    scenario.sync(delta=True)

    assert MetaverseObject.objects.count() == 0
    existing.refresh_from_db()
    assert existing.metaverse_object_id is None  # joined, not provisioned: only disconnected
    assert not PendingExport.objects.filter(cs_object=existing, change_type="delete").exists()


def test_delta_sync_touches_only_changed_objects(scenario):
    for n in range(20):
        scenario.hr_row(str(n), accountName=f"user{n}")
    scenario.sync()
    assert not ConnectorSpaceObject.objects.filter(
        connected_system=scenario.hr, sync_pending=True
    ).exists()
    scenario.update_hr("7", lastName="Changed")

    activity = scenario.sync(delta=True)

    assert activity.objects_total == 1
    assert [i.external_id for i in rpeis(activity)] == ["7"]


def test_approval_policy_marks_deletes_awaiting_approval(scenario):
    ConnectedSystem.objects.filter(pk=scenario.directory.pk).update(approval_mode="deletes")
    target = provisioned(scenario)
    assert not PendingExport.objects.exists()
    scenario.update_hr("1001", status="Terminated")

    scenario.sync(delta=True)

    pe = PendingExport.objects.get(cs_object=target)
    assert (pe.change_type, pe.approval) == ("delete", "awaiting_approval")


def test_back_in_scope_cancels_a_pending_delete(scenario):
    target = provisioned(scenario)
    scenario.update_hr("1001", status="Terminated")
    scenario.sync(delta=True)
    assert PendingExport.objects.get(cs_object=target).change_type == "delete"

    scenario.update_hr("1001", status="Active")
    scenario.sync(delta=True)

    assert not PendingExport.objects.filter(cs_object=target).exists()


def test_changes_merge_into_the_one_open_export(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    scenario.update_hr("1001", lastName="Brown", firstName="Jim")

    scenario.sync(delta=True)

    pe = scenario.export_of("1001")
    assert PendingExport.objects.count() == 1
    assert changes(pe) == {
        ("cn", "update"): ["Jim Brown"],
        ("sn", "update"): ["Brown"],
        ("mail", "update"): ["jim.brown@example.org"],
    }


def test_export_not_confirmed_is_confirmed_during_sync(scenario):
    target = provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")
    scenario.sync(delta=True)
    pe = scenario.export_of("1001")
    PendingExport.objects.filter(pk=pe.pk).update(status="export_not_confirmed")
    pe.attribute_changes.update(status="exported_not_confirmed")
    # The target now shows sn and cn took effect, mail did not.
    target.refresh_from_db()
    target.attributes.update({"sn": ["Jones"], "cn": ["John Jones"]})
    target.sync_pending = True
    target.save()

    scenario.sync(scenario.directory, delta=True)

    pe.refresh_from_db()
    assert changes(pe) == {("mail", "update"): ["john.jones@example.org"]}
    assert pe.error_count == 1


def test_obsolete_unjoined_cso_is_removed_quietly(scenario):
    scenario.directory_entry("nobody")
    ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).update(
        status=CsoStatus.OBSOLETE
    )
    activity = scenario.sync(scenario.directory)
    assert rpeis(activity) == []
    assert not ConnectorSpaceObject.objects.filter(connected_system=scenario.directory).exists()
