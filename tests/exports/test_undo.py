"""Undo an export run (exports/undo.py): what an export run records, the inverse plan
for each kind of change (multi-valued included), the conflicts left out, the refusals,
staging through the approval policy, the audit entry and the retention pruner."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from audit.models import Action, AuditEntry
from connectors.choices import ActivityStatus, RunProfileType
from connectors.models import Activity, ConnectedSystem
from exports.approval import SeparationOfDuties, decide
from exports.choices import ApprovalState
from exports.models import ExportedChange, PendingExport
from exports.undo import (
    UndoDenied,
    UndoRefused,
    plan_undo,
    prune_exported_changes,
    stage_undo,
)
from runs.housekeeping import PRUNERS
from tests.builders import add_run_profile, run
from tests.exports.undoing import BASE, cso, export_run, make_directory, sent, user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(memory_connector) -> ConnectedSystem:
    return make_directory()


@pytest.fixture
def admin(db) -> User:
    return user_in("root", "Administrators")


def inverse(plan) -> list[tuple[str, str, list[tuple[str, str, list, list]]]]:
    return [
        (
            item.change_type,
            item.target,
            [(c.attribute, c.change_type, c.values, c.previous_values) for c in item.changes],
        )
        for item in plan.inverse
    ]


# --------------------------------------------------------------------------- the plan


def test_an_update_is_undone_by_restoring_the_previous_values(directory):
    run_ = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"], cn=["Ada"])
    sent(
        run_,
        ada,
        "update",
        ("title", "update", ["Wrong"], ["Right"]),
        ("cn", "update", ["Ada"], []),
    )

    assert inverse(plan_undo(run_)) == [
        (
            "update",
            f"uid=ada,{BASE}",
            [("cn", "remove_all", [], ["Ada"]), ("title", "update", ["Right"], ["Wrong"])],
        )
    ]
    assert not PendingExport.objects.exists()  # the plan changes nothing


def test_a_multivalued_update_puts_back_what_was_removed_and_takes_out_what_was_added(
    directory,
):
    run_ = export_run(directory)
    group = cso(directory, "g", member=["b", "c"])
    sent(
        run_,
        group,
        "update",
        ("member", "add", ["c"], ["a", "b"]),
        ("member", "remove", ["a"], ["a", "b"]),
    )

    assert inverse(plan_undo(run_))[0][2] == [
        ("member", "add", ["a"], ["b", "c"]),
        ("member", "remove", ["c"], ["b", "c"]),
    ]


def test_a_move_is_undone_by_moving_back(directory):
    run_ = export_run(directory)
    ada = cso(directory, "ada2")
    sent(run_, ada, "update", dn=f"uid=ada,{BASE}", new_dn=f"uid=ada2,{BASE}")

    [item] = plan_undo(run_).inverse
    assert (item.change_type, item.target, item.dn) == (
        "update",
        f"uid=ada2,{BASE}",
        f"uid=ada,{BASE}",
    )


def test_a_create_is_undone_by_a_delete_and_a_delete_by_a_create_with_its_last_values(directory):
    run_ = export_run(directory)
    bob = cso(directory, "bob", cn=["Bob"])
    sent(run_, bob, "create", ("cn", "update", ["Bob"], []))
    sent(
        run_,
        999_999,
        "delete",
        dn=f"uid=alan,{BASE}",
        external_id="uuid-alan",
        last_values={
            "cn": ["Alan"],
            "member": ["x", "y"],
            "entryUUID": ["uuid-alan"],  # the directory makes it
            "modifyTimestamp": ["20260101000000Z"],  # read-only
            "undeclared": ["?"],
        },
    )

    assert inverse(plan_undo(run_)) == [
        ("delete", f"uid=bob,{BASE}", []),
        (
            "create",
            f"uid=alan,{BASE}",
            [("cn", "update", ["Alan"], []), ("member", "add", ["x", "y"], [])],
        ),
    ]


# --------------------------------------------------------------------------- conflicts


def test_objects_changed_since_the_run_are_left_out_with_the_reason(directory):
    run_ = export_run(directory)
    later_run = export_run(directory)
    again = cso(directory, "again", title=["Later"])
    drifted = cso(directory, "drifted", title=["Someone else"])
    busy = cso(directory, "busy", title=["Wrong"])
    sent(run_, again, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(run_, drifted, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(run_, busy, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(run_, 999_998, "update", ("title", "update", ["Wrong"], ["Right"]), dn=f"uid=gone,{BASE}")
    sent(run_, 999_997, "delete", dn=f"uid=busy,{BASE}", last_values={"cn": ["Busy"]})
    sent(later_run, again, "update", ("title", "update", ["Later"], ["Wrong"]))
    pe = PendingExport.objects.create(
        connected_system=directory, cs_object=busy, change_type="update"
    )

    plan = plan_undo(run_)

    assert plan.inverse == []
    assert [(item.target, item.conflict) for item in plan.conflicts] == [
        (
            f"uid=again,{BASE}",
            "title changed since the run: it is now ['Later'], the run sent ['Wrong']",
        ),
        (
            f"uid=drifted,{BASE}",
            "title changed since the run: it is now ['Someone else'], the run sent ['Wrong']",
        ),
        (
            f"uid=busy,{BASE}",
            f"it has an open pending export #{pe.pk} (update, pending); settle that one "
            "first, then change the object by hand",
        ),
        (f"uid=gone,{BASE}", "it no longer exists in JIM (deleted since)"),
        (f"uid=busy,{BASE}", f"an object is there again (CSO {busy.pk})"),
    ]


def test_a_later_export_of_the_same_object_is_a_conflict(directory):
    run_ = export_run(directory)
    later_run = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"])
    sent(run_, ada, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(later_run, ada, "update", ("cn", "update", ["Ada"], []))

    [item] = plan_undo(run_).conflicts
    assert item.conflict == f"export run #{later_run.pk} sent it another change since"


def test_a_delete_whose_dn_is_taken_again_is_a_conflict(directory):
    run_ = export_run(directory)
    back = cso(directory, "back")
    sent(run_, 999_996, "delete", dn=back.secondary_external_id, last_values={"cn": ["Back"]})

    [item] = plan_undo(run_).conflicts
    assert item.conflict == f"an object is there again (CSO {back.pk})"


# --------------------------------------------------------------------------- refusals


def test_only_finished_export_runs_with_recorded_changes_can_be_undone(directory):
    sync = export_run(directory, profile_type=RunProfileType.FULL_SYNC)
    with pytest.raises(UndoRefused, match="is a Full Sync run; only export runs can be undone"):
        plan_undo(sync)
    running = export_run(directory, status=ActivityStatus.IN_PROGRESS)
    with pytest.raises(UndoRefused, match="is in_progress; undo it when it has finished"):
        plan_undo(running)
    with pytest.raises(UndoRefused, match="sent nothing to its system"):
        plan_undo(export_run(directory))
    old = export_run(directory)
    Activity.objects.filter(pk=old.pk).update(finished_at=timezone.now() - dt.timedelta(days=91))
    old.refresh_from_db()
    with pytest.raises(UndoRefused, match=r"than the 90 days .* can no longer be undone"):
        plan_undo(old)


def test_only_administrators_may_undo_and_not_while_the_system_runs(directory, admin):
    run_ = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"])
    sent(run_, ada, "update", ("title", "update", ["Wrong"], ["Right"]))
    operator = User.objects.create_user("op")
    operator.groups.add(Group.objects.get(name="Operators"))
    with pytest.raises(UndoDenied, match="op may not undo export runs"):
        stage_undo(run_, User.objects.get(pk=operator.pk))
    busy = export_run(directory, status=ActivityStatus.IN_PROGRESS)
    from connectors import run_lock

    lock = run_lock.hold(busy.pk)
    try:
        with pytest.raises(UndoRefused, match=f"Directory is running \\(activity #{busy.pk}"):
            stage_undo(run_, admin)
    finally:
        lock.release()
    assert not PendingExport.objects.exists()


# --------------------------------------------------------------------------- staging


def test_staging_goes_through_the_approval_policy_and_the_audit_trail(directory, admin):
    run_ = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"])
    bob = cso(directory, "bob", cn=["Bob"])
    busy = cso(directory, "busy", title=["Wrong"])
    sent(run_, ada, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(run_, bob, "create", ("cn", "update", ["Bob"], []))
    sent(run_, busy, "update", ("title", "update", ["Wrong"], ["Right"]))
    sent(run_, 999_995, "delete", dn=f"uid=alan,{BASE}", last_values={"cn": ["Alan"]})
    open_pe = PendingExport.objects.create(
        connected_system=directory, cs_object=busy, change_type="update"
    )

    plan = stage_undo(run_, admin, "wrong rule")

    staged = {pe.change_type: pe for pe in plan.staged}
    assert staged["delete"].approval == ApprovalState.AWAITING_APPROVAL  # "deletes" policy
    assert staged["update"].approval == ApprovalState.NOT_REQUIRED
    assert staged["create"].approval == ApprovalState.NOT_REQUIRED
    alan = staged["create"].cs_object
    assert (alan.status, alan.secondary_external_id, alan.metaverse_object_id) == (
        "pending_provisioning",
        f"uid=alan,{BASE}",
        None,
    )
    assert [(c.attribute, c.values) for c in staged["create"].attribute_changes.all()] == [
        ("cn", ["Alan"])
    ]
    assert [
        (c.attribute, c.change_type, c.values) for c in staged["update"].attribute_changes.all()
    ] == [("title", "update", ["Right"])]
    entry = AuditEntry.objects.get(action=Action.EXPORT_UNDONE)
    assert entry.actor == admin and entry.reason == "wrong rule"
    assert entry.object_repr == f"Directory export run #{run_.pk}"
    assert entry.changes["pending_exports"] == [[], [pe.pk for pe in plan.staged]]
    assert len(entry.changes["conflicts"][1]) == 1

    # A second undo plans only what the first left out; once nothing is left, refused.
    [left] = plan_undo(run_).items
    assert left.target == busy.secondary_external_id
    open_pe.delete()
    again = stage_undo(run_, admin)
    assert [pe.change_type for pe in again.staged] == ["update"]
    with pytest.raises(UndoRefused, match=r"was already undone on .* by root"):
        plan_undo(run_)


# --------------------------------------------------------------------------- recording, CLI


def test_an_export_run_records_what_it_sent_with_the_previous_values(scenario):
    add_run_profile(scenario.directory, "export")
    scenario.hr_row("1", accountName="ada", lastName="Lovelace")
    scenario.sync()
    first = run(scenario.directory, "Export")
    scenario.hr_row("1", accountName="ada", lastName="Byron")
    scenario.sync()
    second = run(scenario.directory, "Export")

    [create] = ExportedChange.objects.filter(activity=first)
    assert create.change_type == "create" and create.dn.startswith("uid=ada,")
    [update] = ExportedChange.objects.filter(activity=second)
    assert update.change_type == "update" and update.cso_ref == create.cso_ref
    assert {
        "attribute": "sn",
        "change_type": "update",
        "values": ["Byron"],
        "previous_values": ["Lovelace"],
    } in update.changes


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_jim_undo_prints_the_plan_and_stages_it_with_confirm(directory, admin):
    run_ = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"])
    sent(run_, ada, "update", ("title", "update", ["Wrong"], ["Right"]))

    code, out, _ = jim("undo", str(run_.pk))
    assert code == 0
    assert f"uid=ada,{BASE}  (undoes the update)" in out
    assert "title: update ['Wrong'] → ['Right']" in out
    assert "Nothing was changed" in out
    code, out, _ = jim("undo", str(run_.pk), "--json")
    assert json.loads(out)["inverse"][0]["changes"][0]["values"] == ["Right"]
    assert not PendingExport.objects.exists()

    assert jim("undo", "999999")[0:3:2] == (2, "jim: no activity 999999\n")
    code, _, err = jim("undo", str(run_.pk), "--confirm")
    assert (code, err) == (2, "jim: --confirm needs --user (who undoes the run)\n")
    code, _, err = jim("undo", str(run_.pk), "--confirm", "--user", "nobody")
    assert code == 2 and "no user named 'nobody'" in err

    code, out, _ = jim("undo", str(run_.pk), "--confirm", "--user", "root", "--json")
    assert code == 0
    assert json.loads(out)["staged"][0]["change_type"] == "update"
    code, _, err = jim("undo", str(run_.pk))
    assert code == 2 and "already undone" in err and err.endswith("nothing was done\n")


# --------------------------------------------------------------------------- retention


def test_what_was_sent_is_pruned_after_its_retention(directory, settings):
    settings.JIM_EXPORT_RETENTION_DAYS = 10
    run_ = export_run(directory)
    ada = cso(directory, "ada")
    now = timezone.now()
    old = [sent(run_, ada, "update", exported_at=now - dt.timedelta(days=11)) for _ in range(3)]
    kept = sent(run_, ada, "update", exported_at=now - dt.timedelta(days=9))

    assert prune_exported_changes(now, chunk=2) == 3
    assert list(ExportedChange.objects.all()) == [kept]
    assert PRUNERS["exports"] == "exports.undo:prune_exported_changes"
    assert old


def test_with_separation_of_duties_who_undid_a_run_may_not_approve_the_undo(directory, admin):
    directory.separate_duties = True
    directory.save(update_fields=["separate_duties"])
    run_ = export_run(directory)
    bob = cso(directory, "bob", cn=["Bob"])
    sent(run_, bob, "create", ("cn", "update", ["Bob"], []))

    [delete] = stage_undo(run_, admin, "created by mistake").staged
    assert delete.approval == ApprovalState.AWAITING_APPROVAL

    with pytest.raises(SeparationOfDuties, match="staged it by undoing an export run"):
        decide([delete], admin, approve=True)
    other = user_in("olga", "Approvers")
    decide([delete], other, approve=True, reason="checked")
    delete.refresh_from_db()
    assert delete.approval == ApprovalState.APPROVED


def test_undoing_a_disable_re_enables_the_account_and_stops_its_deletion(directory, admin):
    run_ = export_run(directory)
    leaver = cso(directory, "leaver", description=["Disabled by JIM"])
    leaver.disabled_at = timezone.now()
    leaver.save(update_fields=["disabled_at"])
    sent(
        run_,
        leaver,
        "update",
        ("description", "update", ["Disabled by JIM"], ["Engineer"]),
        disabled=True,
    )

    [item] = plan_undo(run_).items
    assert item.enables and item.as_json()["enables"] is True
    [enable] = stage_undo(run_, admin, "left by mistake").staged

    leaver.refresh_from_db()
    assert leaver.disabled_at is None  # the grace period's delete is off
    assert [(c.attribute, c.values) for c in enable.attribute_changes.all()] == [
        ("description", ["Engineer"])
    ]
