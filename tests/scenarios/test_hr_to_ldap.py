"""The seed-000 sequence end to end, against real files, real slapd, real PostgreSQL:
HR CSV → import → sync → export to slapd → confirming import → nothing left to do."""

from __future__ import annotations

import pytest
from django.utils import timezone

from connectors.models import ConnectorSpaceObject
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db


def _first_cycle(estate):
    estate.write_people(
        [
            person("1001", "Ada", "Lovelace", "alovelace"),
            person("1002", "Grace", "Hopper", "ghopper", manager="1001"),
            person("1003", "Alan", "Turing", "aturing", manager="1001"),
        ]
    )
    assert estate.run("HR", "Full Import").status == "complete"
    assert estate.run("HR", "Full Sync").status == "complete"
    assert PendingExport.objects.filter(change_type="create").count() == 3
    exported = estate.run("Directory", "Export")
    assert exported.status == "complete", _debug(exported)
    # The reports are created after their manager, with the manager reference in the add.
    assert exported.counts == {"provisioned": 3}
    return estate.run("Directory", "Full Import")


def test_joiners_are_provisioned_and_confirmed(estate):
    confirming = _first_cycle(estate)

    ada = estate.entry(f"uid=alovelace,ou=people,{estate.base}")
    grace = estate.entry(f"uid=ghopper,ou=people,{estate.base}")
    assert ada["cn"] == ["Ada Lovelace"] and ada["mail"] == ["ada.lovelace@example.org"]
    assert grace["manager"] == [f"uid=alovelace,ou=people,{estate.base}"]
    # Confirming import: every export confirmed and gone, CSOs normal, none obsolete.
    assert confirming.status == "complete", confirming.message
    assert PendingExport.objects.count() == 0
    csos = estate.directory_csos()
    assert {c.status for c in csos} == {"normal"}
    assert len(csos) == 3  # found by DN, not imported as new objects (seed 000 phase 5)
    assert all(c.external_id and c.join_type == "provisioned" for c in csos)
    # The next sync finds nothing to do.
    again = estate.run("Directory", "Delta Sync")
    assert again.counts == {} and PendingExport.objects.count() == 0


def test_update_and_rename_are_exported(estate):
    _first_cycle(estate)
    estate.write_people(
        [
            person("1001", "Ada", "King", "aking"),  # married: new surname and account
            person("1002", "Grace", "Hopper", "ghopper", manager="1001"),
            person("1003", "Alan", "Turing", "aturing", manager="1001"),
        ]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    pe = PendingExport.objects.get()
    assert pe.change_type == "update" and pe.dn == f"uid=aking,ou=people,{estate.base}"

    assert estate.run("Directory", "Export").status == "complete"
    estate.run("Directory", "Delta Import")

    assert estate.entry(f"uid=alovelace,ou=people,{estate.base}") is None
    entry = estate.entry(f"uid=aking,ou=people,{estate.base}")
    assert entry["sn"] == ["King"] and entry["cn"] == ["Ada King"]
    assert PendingExport.objects.count() == 0
    # Grace's manager attribute followed the rename (the directory keeps it in step).
    assert len(estate.directory_csos()) == 3


def test_leaver_is_deprovisioned(estate):
    _first_cycle(estate)
    estate.write_people(
        [
            person("1001", "Ada", "Lovelace", "alovelace"),
            person("1002", "Grace", "Hopper", "ghopper", manager="1001", status="Terminated"),
            person("1003", "Alan", "Turing", "aturing", manager="1001"),
        ]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    assert PendingExport.objects.get().change_type == "delete"

    exported = estate.run("Directory", "Export")

    assert exported.counts == {"deprovisioned": 1}
    assert estate.entry(f"uid=ghopper,ou=people,{estate.base}") is None
    confirming = estate.run("Directory", "Full Import")
    assert confirming.counts.get("deleted", 0) == 0
    assert len(estate.directory_csos()) == 2


def test_target_that_drops_an_attribute_gets_partial_confirmation(estate):
    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    estate.run("Directory", "Export")
    dn = f"uid=alovelace,ou=people,{estate.base}"
    estate.modify(dn, {"departmentNumber": [("MODIFY_DELETE", [])]})  # the target dropped it

    estate.run("Directory", "Full Import")

    pe = PendingExport.objects.get()
    assert (pe.change_type, pe.status, pe.error_count) == ("update", "export_not_confirmed", 1)
    assert list(pe.attribute_changes.values_list("attribute", "status")) == [
        ("departmentNumber", "exported_not_confirmed")
    ]
    # After the backoff, the export sends only what is missing.
    PendingExport.objects.update(next_retry_at=timezone.now())
    estate.run("Directory", "Export")
    estate.run("Directory", "Full Import")
    assert PendingExport.objects.count() == 0
    assert estate.entry(dn)["departmentNumber"] == ["Engineering"]


def _set_members(name: str, *employee_ids: str) -> None:
    """Membership as a membership source would have flowed it into the metaverse."""
    group = MetaverseObject.objects.get(display_name=name)
    members = [
        ConnectorSpaceObject.objects.get(
            connected_system__name="HR", external_id=e
        ).metaverse_object_id
        for e in employee_ids
    ]
    group.attributes["member"] = members
    group.save()
    ConnectorSpaceObject.objects.filter(metaverse_object=group).update(sync_pending=True)


def test_group_membership_is_provisioned_and_changed_value_by_value(estate):
    _first_cycle(estate)
    estate.write_groups([{"name": "engineers"}])
    estate.run("Groups", "Full Import")
    estate.run("Groups", "Full Sync")
    PendingExport.objects.all().delete()  # the group's create without members
    ConnectorSpaceObject.objects.filter(
        connected_system__name="Directory", status="pending_provisioning"
    ).delete()
    _set_members("engineers", "1001", "1002")
    estate.run("Groups", "Full Sync")
    assert estate.run("Directory", "Export").counts == {"provisioned": 1}
    estate.run("Directory", "Full Import")
    group_dn = f"cn=engineers,ou=groups,{estate.base}"
    people = f"ou=people,{estate.base}"
    assert sorted(estate.entry(group_dn)["member"]) == [
        f"uid=alovelace,{people}",
        f"uid=ghopper,{people}",
    ]
    assert PendingExport.objects.count() == 0

    _set_members("engineers", "1001", "1003")
    estate.run("Groups", "Full Sync")
    pe = PendingExport.objects.get()
    assert sorted(pe.attribute_changes.values_list("change_type", flat=True)) == ["add", "remove"]
    estate.run("Directory", "Export")
    estate.run("Directory", "Delta Import")

    assert sorted(estate.entry(group_dn)["member"]) == [
        f"uid=alovelace,{people}",
        f"uid=aturing,{people}",
    ]
    assert PendingExport.objects.count() == 0


def test_rerun_of_everything_changes_nothing(estate):
    _first_cycle(estate)
    for system, profile in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        activity = estate.run(system, profile)
        assert activity.counts == {}, (system, profile, activity.counts)
    assert PendingExport.objects.count() == 0
    assert MetaverseObject.objects.count() == 3
    assert ConnectorSpaceObject.objects.filter(status="obsolete").count() == 0


def _debug(activity):
    return [(i.error_type, i.message) for i in activity.items.exclude(error_type="")]
