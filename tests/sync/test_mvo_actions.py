"""Manual actions on one metaverse object, against the private slapd: delete it now,
disconnect one of its CSOs, re-evaluate it (:mod:`runs.mvo_actions`)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from audit.models import Action, AuditEntry
from connectors.models import Activity, ConnectorSpaceObject, RunProfileExecutionItem
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from runs import mvo_actions
from tests.scenarios.estate import make_estate, person

pytestmark = pytest.mark.django_db

PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper"),
]


@pytest.fixture
def estate(tmp_path, slapd, ldap_ou, monkeypatch):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch)
    estate.write_people(PEOPLE)
    assert estate.run("HR", "Full Import").status == "complete"
    assert estate.run("HR", "Full Sync").status == "complete"
    assert estate.run("Directory", "Export").status == "complete"
    assert estate.run("Directory", "Full Import").status == "complete"
    assert PendingExport.objects.count() == 0
    return estate


@pytest.fixture
def admin():
    return User.objects.create_user("root", is_staff=True, is_superuser=True)


def _ada() -> MetaverseObject:
    return MetaverseObject.objects.get(display_name="Ada Lovelace")


def test_delete_now_deprovisions_through_a_pending_export_and_removes_the_mvo(estate, admin):
    ada = _ada()
    dn = f"uid=alovelace,ou=people,{estate.base}"
    activity = mvo_actions.delete_now(ada, admin, "left in 2019, HR forgot")

    assert activity.status == "complete", activity.message
    assert not MetaverseObject.objects.filter(pk=ada.pk).exists()
    pe = PendingExport.objects.get()
    assert pe.change_type == "delete" and pe.cs_object.secondary_external_id == dn
    item = RunProfileExecutionItem.objects.get(activity=activity)
    assert item.change_type == "deleted"
    assert item.details["reason"] == "deleted by hand: left in 2019, HR forgot"
    assert {"system": "Directory", "action": "delete", "dn": dn} in item.details["exports"]
    assert {"system": "HR", "action": "disconnect"} in item.details["exports"]
    entry = AuditEntry.objects.get(action=Action.MVO_ACTION)
    assert entry.actor == admin and "delete" in entry.reason and "HR forgot" in entry.reason
    # The HR object stays, unjoined; the export deletes the entry.
    assert ConnectorSpaceObject.objects.get(external_id="1001").metaverse_object_id is None
    assert estate.run("Directory", "Export").status == "complete"
    assert estate.entry(dn) is None
    assert estate.entry(f"uid=ghopper,ou=people,{estate.base}") is not None


def test_disconnect_keeps_the_cso_unjoined_and_no_sync_joins_it_again(estate, admin):
    ada = _ada()
    hr = ConnectorSpaceObject.objects.get(external_id="1001")
    directory = ConnectorSpaceObject.objects.get(
        metaverse_object=ada, connected_system__name="Directory"
    )

    activity = mvo_actions.disconnect(ada, directory, admin, "a shared account")

    assert activity.status == "complete_with_errors", activity.message
    directory.refresh_from_db()
    assert directory.metaverse_object_id is None and directory.disconnected_by_hand
    assert directory.join_type == "not_joined"
    hr.refresh_from_db()
    assert hr.metaverse_object_id == ada.pk  # the MVO stays: HR still contributes
    # The provisioning rule does not adopt the disconnected entry nor create another.
    assert not PendingExport.objects.exists()
    errors = RunProfileExecutionItem.objects.filter(activity=activity).exclude(error_type="")
    assert "disconnected by an administrator" in errors.get().message, [
        (e.error_type, e.message) for e in errors
    ]
    assert estate.entry(f"uid=alovelace,ou=people,{estate.base}") is not None

    for system in ("Directory", "HR"):
        estate.run(system, "Full Sync")
    directory.refresh_from_db()
    assert directory.metaverse_object_id is None  # the join rule matches; it is skipped
    assert not PendingExport.objects.exists()


def test_disconnect_recalls_the_systems_values(estate, admin):
    ada = _ada()
    hr = ConnectorSpaceObject.objects.get(external_id="1001")
    mvo_actions.disconnect(ada, hr, admin)
    # The last source left: the deletion rule fires as on any disconnect.
    assert not MetaverseObject.objects.filter(pk=ada.pk).exists()
    hr.refresh_from_db()
    assert hr.disconnected_by_hand and hr.metaverse_object_id is None
    assert PendingExport.objects.get().change_type == "delete"
    estate.run("HR", "Full Sync")
    hr.refresh_from_db()
    assert hr.metaverse_object_id is None  # not projected again either


def test_re_evaluate_stages_what_a_full_sync_would(estate, admin):
    # Drift in the directory, imported: a full sync of the directory would correct it.
    dn = f"uid=alovelace,ou=people,{estate.base}"
    estate.modify(dn, {"cn": [("MODIFY_REPLACE", ["Ada Byron"])]})
    assert estate.run("Directory", "Full Import").status == "complete"
    assert not PendingExport.objects.exists()

    activity = mvo_actions.re_evaluate(_ada(), admin, "checking")

    assert activity.status == "complete", activity.message
    assert activity.profile_type == "full_sync" and activity.profile_name.startswith("Manual:")
    pe = PendingExport.objects.get()
    assert pe.change_type == "update" and pe.cs_object.secondary_external_id == dn
    assert {c.attribute for c in pe.attribute_changes.all()} == {"cn"}
    items = RunProfileExecutionItem.objects.filter(activity=activity)
    # One RPEI per CSO of the MVO, each as its system's full sync records it.
    by_system = {i.cs_object.connected_system.name: i for i in items}
    assert by_system["Directory"].change_type == "drift_correction"
    assert by_system["HR"].details["exports"] == [{"system": "Directory", "action": "update"}]
    # A full sync afterwards finds that exact export already staged: nothing new.
    estate.run("Directory", "Full Sync")
    assert PendingExport.objects.get().pk == pe.pk
    assert Activity.objects.filter(profile_name__startswith="Manual:").count() == 1


def _ada_or_grace() -> MetaverseObject:
    return MetaverseObject.objects.order_by("pk").first()


def _directory_cso(mvo: MetaverseObject) -> ConnectorSpaceObject:
    return ConnectorSpaceObject.objects.get(
        metaverse_object=mvo, connected_system__name="Directory"
    )


def test_rejoin_undoes_a_disconnect_and_sync_keeps_the_join(estate, admin):
    ada = _ada()
    directory = _directory_cso(ada)
    mvo_actions.disconnect(ada, directory, admin, "looked shared")
    directory.refresh_from_db()
    assert directory.disconnected_from_mvo == ada.pk

    activity = mvo_actions.rejoin(directory, None, admin, "it was hers after all")

    assert activity.status == "complete", activity.message
    assert activity.connected_system.name == "Directory"
    directory.refresh_from_db()
    assert directory.metaverse_object_id == ada.pk and directory.join_type == "joined"
    assert not directory.disconnected_by_hand and directory.disconnected_from_mvo is None
    joined = RunProfileExecutionItem.objects.get(activity=activity, change_type="joined")
    assert joined.details["reason"] == "re-joined by hand: it was hers after all"
    # Re-evaluated with it: the entry already holds what the rules give it.
    assert not PendingExport.objects.exists()
    entry = AuditEntry.objects.filter(action=Action.MVO_ACTION).latest("pk")
    assert entry.actor == admin and "rejoin" in entry.reason and "hers" in entry.reason
    for system in ("Directory", "HR"):
        assert estate.run(system, "Full Sync").status == "complete"
    directory.refresh_from_db()
    assert directory.metaverse_object_id == ada.pk
    assert not PendingExport.objects.exists()


def test_rejoin_refuses_what_it_cannot_join_and_records_nothing(estate, admin):
    ada = _ada()
    grace = MetaverseObject.objects.get(display_name="Grace Hopper")
    directory = _directory_cso(ada)
    with pytest.raises(ValueError, match=r"is joined to metaverse object .*disconnect it first"):
        mvo_actions.rejoin(directory, grace, admin)
    mvo_actions.disconnect(ada, directory, admin)
    directory.refresh_from_db()
    activities = Activity.objects.count()
    audited = AuditEntry.objects.count()

    with pytest.raises(ValueError, match=r"already joined to connector space object .* one object"):
        mvo_actions.rejoin(directory, grace, admin)
    hr = ConnectorSpaceObject.objects.get(external_id="1002")
    with pytest.raises(ValueError, match="is joined to metaverse object"):
        mvo_actions.rejoin(hr, ada, admin)

    assert (Activity.objects.count(), AuditEntry.objects.count()) == (activities, audited)
    directory.refresh_from_db()
    assert directory.disconnected_by_hand and directory.metaverse_object_id is None


def test_rejoin_refuses_an_object_type_no_sync_rule_maps(estate, admin):
    from metaverse.models import MetaverseObjectType

    ada = _ada()
    directory = _directory_cso(ada)
    mvo_actions.disconnect(ada, directory, admin)
    directory.refresh_from_db()
    group_type = MetaverseObjectType.objects.create(name="room")
    room = MetaverseObject.objects.create(object_type=group_type, display_name="Room 1")
    with pytest.raises(ValueError, match="no enabled sync rule maps Directory"):
        mvo_actions.rejoin(directory, room, admin)


def test_rejoin_to_a_deleted_mvo_is_refused_and_release_hands_it_back_to_sync(estate, admin):
    ada = _ada()
    hr = ConnectorSpaceObject.objects.get(external_id="1001")
    mvo_actions.disconnect(ada, hr, admin, "test")  # the last source: Ada goes
    hr.refresh_from_db()
    with pytest.raises(ValueError, match=f"metaverse object {ada.pk}, which it was disconnected"):
        mvo_actions.rejoin(hr, None, admin)

    activity = mvo_actions.release(hr, admin, "the leaver was re-hired")

    assert activity.status == "complete", activity.message
    hr.refresh_from_db()
    assert not hr.disconnected_by_hand and hr.sync_pending and hr.metaverse_object_id is None
    item = RunProfileExecutionItem.objects.get(activity=activity)
    assert item.cs_object_id == hr.pk and "re-hired" in item.details["reason"]
    entry = AuditEntry.objects.filter(action=Action.MVO_ACTION).latest("pk")
    assert "release" in entry.reason and entry.object_id == str(hr.pk)
    with pytest.raises(ValueError, match="nothing to release"):
        mvo_actions.release(hr, admin)
    with pytest.raises(ValueError, match="was not disconnected by hand: the join rules decide"):
        mvo_actions.rejoin(hr, _ada_or_grace(), admin)

    assert estate.run("HR", "Delta Sync").status == "complete"
    hr.refresh_from_db()
    assert hr.metaverse_object_id is not None  # projected again by the rules


def test_the_change_threshold_stops_the_export_of_a_manual_deletion(estate, admin):
    """A manual deletion stages its deprovisioning as sync does; the export run that
    would send it counts it against the system's change threshold like any other: it
    stops before anything is sent, and goes ahead only when allowed."""
    from connectors.models import ConnectedSystem

    ConnectedSystem.objects.filter(name="Directory").update(change_threshold="0")
    dn = f"uid=alovelace,ou=people,{estate.base}"
    assert mvo_actions.delete_now(_ada(), admin, "left").status == "complete"
    pe = PendingExport.objects.get()

    stopped = estate.run("Directory", "Export")

    assert stopped.status == "failed" and "change threshold" in stopped.message
    assert stopped.items.filter(error_type="change_threshold_exceeded").exists()
    assert estate.entry(dn) is not None  # nothing sent
    pe.refresh_from_db()
    assert pe.status == "pending" and pe.error_count == 0
    assert estate.run("Directory", "Export", allow_changes=True).status == "complete"
    assert estate.entry(dn) is None
