"""The approval story: a pending export read as who, what, why and what happens after.

Value by value on the wire, each attribute once on the page (a rename is one ``cn``
old → new, a group's members added and removed, references as names); a delete names
the person — from the MVO, or from the snapshot sync kept when the MVO is gone —, the
reason, the run that staged it and what happens after.
"""

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.urls import reverse

from connectors.choices import ActivityStatus, CsoStatus, ObjectChangeType, RunProfileType
from connectors.models import Activity, ConnectedSystemAttribute, RunProfileExecutionItem
from console.pending_changes import VALUES_SHOWN, export_changes
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseObject
from tests.sync.scenario import Scenario, build_scenario

pytestmark = pytest.mark.django_db


def text(page) -> str:
    """A page's text as a reader sees it: no tags, entities decoded, spaces collapsed."""
    body = page.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", body)))


def export_page(client, pe: PendingExport) -> str:
    return text(client.get(reverse("admin:exports_pendingexport_change", args=[pe.pk])))


def approve_page(client, pe: PendingExport) -> str:
    return text(client.get(reverse("admin:exports_pendingexport_approve", args=[pe.pk])))


@pytest.fixture
def scenario() -> Scenario:
    return build_scenario(approval_mode="all")


def provisioned(scenario: Scenario, employee_id: str, account: str, first: str, last: str):
    """A person synced, then exported and confirmed (as the export and the confirming
    import would leave the Directory's CSO)."""
    scenario.hr_row(employee_id, accountName=account, firstName=first, lastName=last)
    scenario.sync()
    target = scenario.dir_cso_of(employee_id)
    pe = PendingExport.objects.get(cs_object=target)
    target.attributes = {c.attribute: c.values for c in pe.attribute_changes.all()}
    target.status = CsoStatus.NORMAL
    target.external_id = f"uuid-{account}"
    target.sync_pending = False
    target.save()
    pe.delete()
    return target


@pytest.fixture
def joiner(scenario: Scenario):
    """Heidi Jones, employee 1001, provisioned to the Directory as uid=hjones."""
    return provisioned(scenario, "1001", "hjones", "Heidi", "Jones")


def import_run(scenario: Scenario, cso_id: int | None, external_id: str, **item) -> Activity:
    """An HR import that recorded ``item`` for one object (what an import run leaves)."""
    activity = Activity.objects.create(
        connected_system=scenario.hr,
        profile_type=RunProfileType.FULL_IMPORT,
        profile_name="Full Import",
        status=ActivityStatus.COMPLETE,
    )
    RunProfileExecutionItem.objects.create(
        activity=activity, cs_object_id=cso_id, external_id=external_id, **item
    )
    return activity


# --------------------------------------------------------------------------- value by value


def test_a_rename_reads_as_one_cn_from_old_to_new(operator_client, scenario, joiner):
    # cn is multi-valued in LDAP's schema: the rename is staged as add + remove.
    ConnectedSystemAttribute.objects.filter(object_type=scenario.dir_person, name="cn").update(
        multivalued=True
    )
    scenario.update_hr("1001", lastName="Jones-Okafor")
    scenario.sync()
    pe = scenario.export_of("1001")
    rows = {(c.attribute, c.change_type) for c in pe.attribute_changes.all()}
    assert {("cn", "add"), ("cn", "remove"), ("sn", "update")} <= rows

    [cn] = [c for c in export_changes([pe])[pe.pk] if c.attribute == "cn"]
    assert (cn.old, cn.new, cn.multi_valued) == (["Heidi Jones"], ["Heidi Jones-Okafor"], False)

    page = export_page(operator_client, pe)
    assert "cn Heidi Jones → Heidi Jones-Okafor" in page
    assert "sn Jones → Jones-Okafor" in page
    assert page.count("cn Heidi Jones → Heidi Jones-Okafor") == 1  # once, not add + remove
    # …and the why names the metaverse change the sync run recorded, value by value
    assert "Metaverse displayName: Heidi Jones → Heidi Jones-Okafor (sync run #" in page
    assert (
        "Updates Heidi Jones-Okafor (uid=hjones,ou=people,dc=example,dc=org) in Directory" in page
    )
    assert "changes as sent (value by value)" in page.lower()  # the raw rows, collapsed

    mvo_page = text(operator_client.get(reverse("console:mvo", args=[pe.metaverse_object_id])))
    assert mvo_page.count("cn Heidi Jones → Heidi Jones-Okafor") == 1  # the export: once


def test_group_members_read_as_added_and_removed_names(operator_client, scenario, joiner):
    ada = provisioned(scenario, "1002", "ada", "Ada", "Lovelace")
    alan = provisioned(scenario, "1003", "alan", "Alan", "Turing")
    ConnectedSystemAttribute.objects.create(
        object_type=scenario.dir_person, name="member", data_type="reference", multivalued=True
    )
    pe = PendingExport.objects.create(
        connected_system=scenario.directory,
        cs_object=joiner,
        change_type="update",
        approval="awaiting_approval",
    )
    before = [joiner.pk, ada.pk]
    PendingExportAttributeChange.objects.create(
        pending_export=pe,
        attribute="member",
        change_type="add",
        values=[alan.pk],
        previous_values=before,
    )
    PendingExportAttributeChange.objects.create(
        pending_export=pe,
        attribute="member",
        change_type="remove",
        values=[ada.pk],
        previous_values=before,
    )

    [member] = export_changes([pe])[pe.pk]
    assert (member.added, member.removed) == (["Alan Turing"], ["Ada Lovelace"])

    page = approve_page(operator_client, pe)
    # The member kept is not listed; "\u2212" is the minus sign of a removed value.
    assert "member + Alan Turing \u2212 Ada Lovelace Why" in page


def test_a_large_membership_change_lists_the_first_values_and_counts_the_rest(scenario, joiner):
    ConnectedSystemAttribute.objects.create(
        object_type=scenario.dir_person, name="memberUid", multivalued=True
    )
    pe = PendingExport.objects.create(
        connected_system=scenario.directory, cs_object=joiner, change_type="update"
    )
    added = [f"user{i}" for i in range(VALUES_SHOWN + 7)]
    PendingExportAttributeChange.objects.create(
        pending_export=pe, attribute="memberUid", change_type="add", values=added
    )
    [change] = export_changes([pe])[pe.pk]
    assert change.added == added[:VALUES_SHOWN] and change.more_new == 7


# --------------------------------------------------------------------------- deletes


def test_a_leaver_s_delete_names_the_person_the_reason_and_the_run(
    operator_client, scenario, joiner
):
    hr_cso = scenario.update_hr("1001", status="Terminated")
    imported = import_run(
        scenario,
        hr_cso.pk,
        "1001",
        change_type=ObjectChangeType.UPDATED,
        details={"changes": {"status": {"old": ["Active"], "new": ["Terminated"]}}},
    )
    sync = scenario.sync()
    pe = scenario.export_of("1001")
    assert (pe.change_type, pe.approval) == ("delete", "awaiting_approval")
    assert pe.identity["reason"] == "out_of_scope"

    for page in (export_page(operator_client, pe), approve_page(operator_client, pe)):
        assert "Deletes Heidi Jones (uid=hjones,ou=people,dc=example,dc=org) from Directory" in page
        assert "employeeId 1001" in page and "accountName hjones" in page
        assert (
            "Heidi Jones left the scope of the export rule “Directory people out” "
            "(mv.employeeStatus == 'Active' is no longer true)"
        ) in page
        assert f"HR status: Active → Terminated (import run #{imported.pk})" in page
        assert f"#{sync.pk} HR — full_sync" in page
        assert "On approval, the next export run deletes Heidi Jones's account" in page
        assert "The metaverse object stays, and is deleted when its last connector is removed" in (
            page
        )
        assert "Metaverse object: -" not in page


def test_a_delete_whose_mvo_is_gone_names_the_person_from_its_snapshot(
    operator_client, scenario, joiner
):
    mvo = scenario.mvo_of("1001")
    scenario.obsolete_hr("1001")
    import_run(
        scenario,
        None,
        "1001",
        change_type=ObjectChangeType.DELETED,
        details={"reason": "not returned by the full import"},
    )
    sync = scenario.sync()
    assert not MetaverseObject.objects.filter(pk=mvo.pk).exists()
    pe = PendingExport.objects.get(cs_object=joiner)
    assert (pe.change_type, pe.metaverse_object_id) == ("delete", None)
    assert pe.identity == {
        "metaverse_object": mvo.pk,
        "name": "Heidi Jones",
        "object_type": "person",
        "ids": {"accountName": "hjones", "employeeId": "1001"},
        "reason": "metaverse_object_deleted",
    }

    page = approve_page(operator_client, pe)
    assert "Deletes Heidi Jones (uid=hjones,ou=people,dc=example,dc=org) from Directory" in page
    assert "employeeId 1001" in page and "uid in Directory hjones" in page
    assert f"Its metaverse object (person #{mvo.pk}) has been deleted" in page
    assert (
        "Heidi Jones's metaverse object was deleted by the person deletion rule "
        "(when its last connector is removed)"
    ) in page
    assert "HR object 1001 was removed (not returned by the full import)" in page
    assert f"sync run #{sync.pk}" in page
    assert "The metaverse object has already been deleted (no grace period)." in page

    change_page = export_page(operator_client, pe)
    assert f"Deleted — was Heidi Jones (person #{mvo.pk})" in change_page
    assert "Metaverse object: -" not in change_page


def test_a_terminated_person_out_of_hr_s_scope_is_named_with_what_hr_holds(
    operator_client, scenario, joiner
):
    """The demo's leaver: HR's import rule leaves terminated people out of scope, so the
    MVO goes (last connector removed) and the Directory's account is to be deleted."""
    scenario.hr_in.scope = "cs.status != 'Terminated'"
    scenario.hr_in.save()
    scenario.update_hr("1001", status="Terminated")
    scenario.sync()
    pe = PendingExport.objects.get(cs_object=joiner)
    assert (pe.change_type, pe.metaverse_object_id) == ("delete", None)

    page = approve_page(operator_client, pe)
    assert "Deletes Heidi Jones (uid=hjones,ou=people,dc=example,dc=org) from Directory" in page
    assert (
        "HR object 1001 left the scope of the import rule “HR people in” "
        "(cs.status != 'Terminated' is no longer true; HR holds status = Terminated)"
    ) in page
    assert "Heidi Jones's metaverse object was deleted by the person deletion rule" in page


def test_a_delete_without_snapshot_names_the_person_from_the_target_s_last_values(
    operator_client, scenario, joiner
):
    """A delete staged before snapshots were kept: the Directory's values still name it."""
    scenario.obsolete_hr("1001")
    scenario.sync()
    pe = PendingExport.objects.get(cs_object=joiner)
    PendingExport.objects.filter(pk=pe.pk).update(identity={})

    page = approve_page(operator_client, pe)
    assert "Deletes Heidi Jones (uid=hjones,ou=people,dc=example,dc=org) from Directory" in page
    assert "as Directory last held it" in page and "mail in Directory heidi.jones@example.org" in (
        page
    )
    assert "Heidi Jones's metaverse object was deleted" in page


def test_a_delete_after_a_grace_period_says_when_the_mvo_goes(operator_client, scenario, joiner):
    scenario.person.deletion_grace_period_days = 30
    scenario.person.save()
    scenario.update_hr("1001", status="Terminated")
    scenario.sync()
    pe = scenario.export_of("1001")
    page = approve_page(operator_client, pe)
    assert "is deleted when its last connector is removed, after 30 days' grace." in page


def test_a_create_says_what_it_creates_and_what_happens_if_the_person_leaves(
    operator_client, scenario
):
    scenario.hr_row("1001", accountName="hjones", firstName="Heidi", lastName="Jones")
    scenario.sync()
    pe = scenario.export_of("1001")
    page = approve_page(operator_client, pe)
    assert "Creates Heidi Jones (uid=hjones,ou=people,dc=example,dc=org) in Directory" in page
    assert "cn — → Heidi Jones" in page
    assert "Should Heidi Jones leave the rule's scope later, the rule deletes the account." in page


def test_an_export_not_awaiting_approval_says_what_the_next_run_does(
    operator_client, scenario, joiner
):
    scenario.update_hr("1001", status="Terminated")
    scenario.sync()
    pe = scenario.export_of("1001")
    PendingExport.objects.filter(pk=pe.pk).update(approval="approved")
    page = export_page(operator_client, pe)
    assert "The next export run deletes Heidi Jones's account" in page
    assert "On approval" not in page and "On rejection" not in page


def test_a_manager_reference_reads_as_the_manager_s_name(operator_client, scenario, joiner):
    ada = provisioned(scenario, "1002", "ada", "Ada", "Lovelace")
    pe = PendingExport.objects.create(
        connected_system=scenario.directory,
        cs_object=ada,
        change_type="update",
        approval="awaiting_approval",
    )
    PendingExportAttributeChange.objects.create(
        pending_export=pe, attribute="manager", change_type="update", values=[joiner.pk]
    )
    assert "manager — → Heidi Jones" in approve_page(operator_client, pe)
    mvo_page = text(operator_client.get(reverse("console:mvo", args=[scenario.mvo_of("1002").pk])))
    assert "manager — → Heidi Jones" in mvo_page
