"""The pending-export lifecycle (exports/lifecycle.py): the whole state diagram walked
through its transitions, on real rows, and the transitions it refuses."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports import lifecycle
from exports.choices import ApprovalState
from exports.lifecycle import IllegalTransition, Transitions
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.sync.batch import ChangeRow
from tests.builders import make_connected_system

pytestmark = pytest.mark.django_db

BACKOFF = 60


@pytest.fixture
def system() -> ConnectedSystem:
    return make_connected_system("Directory", profiles=())


def staged(system: ConnectedSystem, name: str, *, change_type: str = "create", **fields) -> int:
    """A CSO and its pending export as a sync stages them (two changes); its id."""
    cso = ConnectorSpaceObject.objects.create(
        connected_system=system,
        object_type=system.object_types.get(),
        external_id=name,
        attributes={},
    )
    pe = PendingExport(connected_system=system, cs_object=cso, max_retries=2, **fields)
    lifecycle.stage(
        pe,
        change_type=change_type,
        dn=f"uid={name}",
        approval=fields.get("approval", ApprovalState.NOT_REQUIRED),
    )
    rows = [ChangeRow("cn", "update", [name]), ChangeRow("sn", "update", [name.title()])]
    lifecycle.write_staged([(pe, rows)], [], [], ())
    return pe.pk


def status(pk: int) -> str | None:
    return PendingExport.objects.filter(pk=pk).values_list("status", flat=True).first()


def change_statuses(pk: int) -> list[str]:
    return list(
        PendingExportAttributeChange.objects.filter(pending_export_id=pk)
        .order_by("attribute")
        .values_list("status", flat=True)
    )


def claimed(pks: list[int]) -> dict[int, PendingExport]:
    """Claim and load them as the export run does."""
    with transaction.atomic():
        lifecycle.claim(pks)
    return PendingExport.objects.in_bulk(pks)


def sent_ids(pk: int) -> list[int]:
    return list(
        PendingExportAttributeChange.objects.filter(pending_export_id=pk).values_list(
            "pk", flat=True
        )
    )


def save(t: Transitions) -> None:
    with transaction.atomic():
        t.save()


def test_the_whole_state_diagram(system):
    ann, bob, cat, dan = (staged(system, n) for n in ("ann", "bob", "cat", "dan"))
    assert {status(pk) for pk in (ann, bob, cat, dan)} == {"pending"}
    assert change_statuses(ann) == ["pending", "pending"]

    # claim: pending → executing, the status claimed from returned
    assert lifecycle.claim([ann, bob, cat, dan]) == {pk: "pending" for pk in (ann, bob, cat, dan)}
    pes = PendingExport.objects.in_bulk([ann, bob, cat, dan])
    assert {pe.status for pe in pes.values()} == {"executing"}

    # one export batch: succeed, fail (backoff), release, nothing sent (references wait)
    t = Transitions()
    lifecycle.succeed(t, pes[ann], sent_ids(ann), waiting=False)
    assert lifecycle.fail(t, pes[bob], "refused", BACKOFF) is False
    lifecycle.release(t, pes[cat], "pending")
    lifecycle.nothing_sent(t, pes[dan], awaiting=False, waiting=True)
    save(t)
    assert (status(ann), change_statuses(ann)) == (
        "exported",
        ["exported_pending_confirmation"] * 2,
    )
    bob_now = PendingExport.objects.get(pk=bob)
    assert (bob_now.status, bob_now.error_count, bob_now.last_error) == (
        "export_not_confirmed",
        1,
        "refused",
    )
    assert bob_now.next_retry_at == t.now + dt.timedelta(seconds=BACKOFF)
    assert (status(cat), status(dan)) == ("pending", "pending")

    # retry due: export_not_confirmed → executing → failed at max retries (given up)
    bob_pe = claimed([bob])[bob]
    t = Transitions()
    assert lifecycle.fail(t, bob_pe, "refused again", BACKOFF) is True
    save(t)
    assert (status(bob), change_statuses(bob)) == ("failed", ["failed", "failed"])

    # a person retries: failed → pending, attempts reset, changes pending again
    with transaction.atomic():
        locked = lifecycle.lock_failed(PendingExport.objects.filter(pk__in=[bob, ann]))
        assert [pe.pk for pe in locked] == [bob]  # selecting: ann is not failed
        lifecycle.retry(locked)
    bob_now = PendingExport.objects.get(pk=bob)
    assert (bob_now.status, bob_now.error_count, bob_now.next_retry_at) == ("pending", 0, None)
    assert change_statuses(bob) == ["pending", "pending"]

    # the confirming import does not see ann's changes: not confirmed, an attempt
    ann_pe = PendingExport.objects.get(pk=ann)
    rows = list(PendingExportAttributeChange.objects.filter(pending_export_id=ann))
    t = Transitions(strict=False)
    given_up = lifecycle.not_confirmed(
        t, ann_pe, [], rows, confirmed_any=False, dn_confirmed=False, backoff_seconds=BACKOFF
    )
    assert given_up is False
    save(t)
    ann_now = PendingExport.objects.get(pk=ann)
    assert (ann_now.status, ann_now.error_count, ann_now.last_error) == (
        "export_not_confirmed",
        1,
        "not confirmed by import: cn, sn",
    )
    assert change_statuses(ann) == ["exported_not_confirmed"] * 2

    # sent again, and confirmed: deleted
    ann_pe = claimed([ann])[ann]
    t = Transitions()
    lifecycle.succeed(t, ann_pe, sent_ids(ann), waiting=False)
    save(t)
    t = Transitions(strict=False)
    lifecycle.confirm(t, PendingExport.objects.get(pk=ann), sent_ids(ann), everything=True)
    save(t)
    assert status(ann) is None

    # partly sent (a reference waits), then the sent part confirmed: pending, rest kept
    dan_pe = claimed([dan])[dan]
    [cn, sn] = sent_ids(dan)
    t = Transitions()
    lifecycle.succeed(t, dan_pe, [cn], waiting=True)
    save(t)
    assert (status(dan), change_statuses(dan)) == (
        "pending",
        ["exported_pending_confirmation", "pending"],
    )
    t = Transitions(strict=False)
    dan_pe = PendingExport.objects.get(pk=dan)
    left = list(PendingExportAttributeChange.objects.filter(pk=sn))
    lifecycle.confirm_sent_part(t, dan_pe, [cn], left, everything=False)
    save(t)
    dan_now = PendingExport.objects.get(pk=dan)
    assert (dan_now.status, dan_now.change_type, dan_now.dn) == ("pending", "update", "")
    assert sent_ids(dan) == [sn]

    # exported with a change still waiting, confirmed: pending with what waits
    dan_pe = claimed([dan])[dan]
    t = Transitions()
    lifecycle.succeed(t, dan_pe, [sn], waiting=False)
    save(t)
    assert status(dan) == "exported"

    # a run that dies: its executing exports are made retryable by the next one
    claimed([cat])
    assert lifecycle.release_stale_executing(system) == 1
    cat_now = PendingExport.objects.get(pk=cat)
    assert (cat_now.status, cat_now.next_retry_at, cat_now.error_count) == (
        "export_not_confirmed",
        None,
        0,
    )

    # the sync: confirms part of an export_not_confirmed one (counted) …
    cat_pe = PendingExport.objects.get(pk=cat)
    lifecycle.confirm_partly_by_sync(cat_pe)
    lifecycle.write_staged(
        [],
        [(cat_pe, "export_not_confirmed", [ChangeRow("sn", "update", ["Cat"])])],
        [],
        ("change_type", "error_count"),
    )
    cat_now = PendingExport.objects.get(pk=cat)
    assert (cat_now.status, cat_now.change_type, cat_now.error_count) == (
        "export_not_confirmed",
        "update",
        1,
    )
    # … then all of it: deleted
    lifecycle.confirm_by_sync(cat_pe)
    lifecycle.write_staged([], [], [(cat, "export_not_confirmed")], ())
    assert status(cat) is None

    # the sync supersedes an exported export (a delete replaces it), then cancels it
    dan_pe = PendingExport.objects.get(pk=dan)
    lifecycle.stage(dan_pe, change_type="delete", dn="", approval=ApprovalState.NOT_REQUIRED)
    lifecycle.write_staged([], [(dan_pe, "exported", [])], [], ("change_type", "status", "dn"))
    assert (status(dan), PendingExport.objects.get(pk=dan).change_type) == ("pending", "delete")
    lifecycle.cancel(dan_pe)
    lifecycle.write_staged([], [], [(dan, "pending")], ())
    assert status(dan) is None

    # a delete sent: deprovisioned, deleted
    eve = staged(system, "eve", change_type="delete")
    eve_pe = claimed([eve])[eve]
    t = Transitions()
    lifecycle.deprovisioned(t, eve_pe)
    save(t)
    assert status(eve) is None

    # approval: awaiting → approved (claimable) / rejected (never claimed)
    fay = staged(system, "fay", approval=ApprovalState.AWAITING_APPROVAL)
    gus = staged(system, "gus", approval=ApprovalState.AWAITING_APPROVAL)
    assert lifecycle.claim([fay, gus]) == {}
    approver = User.objects.create_user("ada")
    with transaction.atomic():
        lifecycle.approve(
            lifecycle.lock_awaiting_approval(PendingExport.objects.filter(pk=fay)), approver, "ok"
        )
        lifecycle.reject(
            lifecycle.lock_awaiting_approval(PendingExport.objects.filter(pk=gus)), approver, "no"
        )
    assert PendingExport.objects.get(pk=gus).approval == "rejected"
    assert lifecycle.claim([fay, gus]) == {fay: "pending"}

    # a failed export revived by the sync (stage), and one discarded by a person
    PendingExport.objects.filter(pk=fay).update(max_retries=1)
    fay_pe = PendingExport.objects.get(pk=fay)
    t = Transitions()
    assert lifecycle.fail(t, fay_pe, "refused", BACKOFF) is True
    save(t)
    lifecycle.stage(fay_pe, change_type="update", dn="", approval=ApprovalState.NOT_REQUIRED)
    rows = [ChangeRow("cn", "update", ["fay"], status="failed")]
    lifecycle.restage_changes(rows)
    lifecycle.write_staged(
        [], [(fay_pe, "failed", rows)], [], ("change_type", "status", "error_count")
    )
    assert (status(fay), change_statuses(fay)) == ("pending", ["pending"])
    t = Transitions()
    fay_pe = claimed([fay])[fay]
    lifecycle.fail(t, fay_pe, "refused", BACKOFF)
    save(t)
    with transaction.atomic():
        lifecycle.discard(lifecycle.lock_failed([fay_pe]))
    assert status(fay) is None


# --------------------------------------------------------------------------- refused


def test_an_owned_transition_from_a_wrong_state_raises_naming_the_export(system):
    pk = staged(system, "ann")
    pe = PendingExport.objects.get(pk=pk)
    t = Transitions()
    for transition in (
        lambda: lifecycle.succeed(t, pe, [], waiting=False),
        lambda: lifecycle.fail(t, pe, "x", BACKOFF),
        lambda: lifecycle.release(t, pe, "pending"),
        lambda: lifecycle.confirm(t, pe, [], everything=True),
        lambda: lifecycle.retry([pe]),
        lambda: lifecycle.discard([pe]),
        lambda: lifecycle.approve([pe], None, ""),
    ):
        with pytest.raises(IllegalTransition, match=f"pending export\\(s\\) {pk} \\("):
            transition()
    assert (t.moved, t.gone) == ([], [])
    claimed([pk])
    pe.refresh_from_db()
    with pytest.raises(
        IllegalTransition, match=f"cannot stage pending export\\(s\\) {pk} \\(executing\\)"
    ):
        lifecycle.stage(pe, change_type="update", dn="", approval=ApprovalState.NOT_REQUIRED)
    with pytest.raises(IllegalTransition, match="cannot cancel"):
        lifecycle.cancel(pe)


def test_an_owned_batch_moving_a_row_someone_else_moved_raises_and_writes_nothing(system):
    ann, bob = staged(system, "ann"), staged(system, "bob")
    pes = claimed([ann, bob])
    PendingExport.objects.filter(pk=bob).update(status="pending")  # not the run's any more
    t = Transitions()
    lifecycle.succeed(t, pes[ann], sent_ids(ann), waiting=False)
    lifecycle.succeed(t, pes[bob], sent_ids(bob), waiting=False)
    with pytest.raises(
        IllegalTransition,
        match=f"cannot succeed \\(not as read\\) pending export\\(s\\) {bob} \\(pending\\)$",
    ):
        save(t)
    assert (status(ann), status(bob)) == ("executing", "pending")
    assert change_statuses(ann) == ["pending", "pending"]


def test_the_sync_writing_an_export_not_as_it_loaded_it_raises(system):
    pk = staged(system, "ann")
    pe = PendingExport.objects.get(pk=pk)
    claimed([pk])  # an export run took it after the sync loaded it
    lifecycle.stage(pe, change_type="update", dn="", approval=ApprovalState.NOT_REQUIRED)
    with pytest.raises(IllegalTransition, match=f"{pk} \\(executing\\)"), transaction.atomic():
        lifecycle.write_staged([], [(pe, "pending", [])], [], ("change_type",))
    with pytest.raises(IllegalTransition, match="cannot cancel"), transaction.atomic():
        lifecycle.write_staged([], [], [(pk, "pending")], ())
    assert status(pk) == "executing"


def test_selecting_transitions_return_what_moved(system):
    ann, bob = staged(system, "ann"), staged(system, "bob")
    claimed([ann])
    assert lifecycle.claim([ann, bob]) == {bob: "pending"}  # ann is another run's
    assert lifecycle.lock_failed(PendingExport.objects.all()) == []
    assert lifecycle.lock_awaiting_approval(PendingExport.objects.all()) == []


def test_a_confirming_import_leaves_an_export_a_sync_changed_meanwhile(system):
    pk = staged(system, "ann")
    pe = claimed([pk])[pk]
    t = Transitions()
    lifecycle.succeed(t, pe, sent_ids(pk), waiting=False)
    save(t)
    read = PendingExport.objects.get(pk=pk)  # the import reads it …
    rows = list(PendingExportAttributeChange.objects.filter(pending_export_id=pk))
    synced = PendingExport.objects.get(pk=pk)  # … a sync of another system stages it
    lifecycle.stage(synced, change_type="update", dn="", approval=ApprovalState.NOT_REQUIRED)
    new_rows = [ChangeRow("cn", "update", ["Ann"])]
    lifecycle.write_staged([], [(synced, "exported", new_rows)], [], ("change_type", "status"))

    t = Transitions(strict=False)
    read.max_retries = 1  # the import would give up on it
    lifecycle.not_confirmed(
        t, read, [], rows, confirmed_any=False, dn_confirmed=False, backoff_seconds=BACKOFF
    )
    t.save()

    now = PendingExport.objects.get(pk=pk)
    assert (now.status, now.change_type, now.error_count) == ("pending", "update", 0)
    assert change_statuses(pk) == ["pending"]  # the sync's change, not given up
