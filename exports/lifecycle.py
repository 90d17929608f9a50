"""The pending-export lifecycle: every status change of a pending export, and of its
attribute changes, is one named transition here (seed 003; docs/pending-exports.md).

A pending export (PE) and what moves it (✕: the PE is deleted)::

  (sync) stage ─► pending ──claim──► executing ──succeed──► exported ──confirm──► ✕
                   ▲  ▲                │  │  │                 │
                   │  └─── release, ───┘  │  └─ fail ──┐       └─ not_confirmed ─┐
                   │       nothing sent,  │            ▼                          │
                   │       partly sent    │   export_not_confirmed ◄──────────────┘
                   │                      │       └── claim (retry due) ─► executing
                   │      fail at max ────┘
                   │      retries         ▼
                   └────── retry ──────  failed ◄── not_confirmed at max retries
                                          └── discard ──► ✕

Every transition, with the states it moves from (the allowed from-states are the
``WHERE`` of its statement, see below):

  ======================= ============================= ===============================
  transition (by)         from                          to
  ======================= ============================= ===============================
  stage (sync)            (new), pending, exported,     pending, attempts reset,
                          export_not_confirmed, failed  approval per policy
  cancel (sync)           same as stage                 ✕ (also: an obsolete CSO the
                                                        sync deletes takes its PE)
  confirm_by_sync         export_not_confirmed          ✕
  confirm_partly_by_sync  export_not_confirmed          export_not_confirmed, +1 attempt
  claim (export run)      pending, export_not_confirmed executing
                          (approval not required or
                          approved; listed when due by
                          executable())
  succeed                 executing                     exported; pending when
                                                        references wait (partly sent)
  nothing_sent            executing                     exported (all sent before),
                                                        else pending
  release                 executing                     as it was before the claim
  fail                    executing                     export_not_confirmed, +1
                                                        attempt, backoff; failed at
                                                        max_retries
  deprovisioned           executing (a delete)          ✕, with its CSO
  release_stale_executing executing                     export_not_confirmed, due now
  (a run found dead)
  confirm (import)        exported                      ✕; pending when changes still
                                                        wait for references
  not_confirmed (import)  exported                      as fail
  confirm_sent_part       pending, export_not_confirmed unchanged (confirmed changes
  (import)                                              removed), or ✕
  retry (a person)        failed                        pending, attempts reset
  discard (a person)      failed                        ✕
  approve / reject        approval awaiting_approval    approved / rejected
  ======================= ============================= ===============================

An attribute change: ``pending`` ──succeed──► ``exported_pending_confirmation``
──confirm──► (deleted) or ──not_confirmed──► ``exported_not_confirmed`` (sent again by
the next claim); every change of a PE that gives up is ``failed``; stage and retry
make ``failed`` changes ``pending`` again.

Who may move what, and what happens when a row is not in a state it may move from:

* **Owned transitions** raise :class:`IllegalTransition`. The export run's outcomes
  (succeed, fail, release, nothing sent, deprovisioned) move only PEs the run
  claimed — ``executing`` belongs to the run that claimed it, no one else writes
  it; the sync's writes (:func:`write_staged`) move only PEs its batch locked and
  found as loaded (``SyncBatch.hold_exports``); retry, discard, approve and reject
  move rows locked by :func:`lock_failed` / :func:`lock_awaiting_approval`. Checked
  in memory when the transition is named, and again by the write: each row's
  ``UPDATE``/``DELETE`` carries the from-state it was read in (``WHERE status =
  <was>``), and fewer rows written than asked is an :class:`IllegalTransition`,
  naming the PEs that were not as read (the transaction rolls back).
* **Selecting transitions** return what moved. :func:`claim`, :func:`lock_failed`
  and :func:`lock_awaiting_approval` take a selection (a page of ids, a person's
  mixed selection, ``--all``) and their ``WHERE`` keeps the rows in an allowed
  from-state: a sync may stage, cancel or replace a PE between an export run
  listing it and claiming it, and a person's selection may hold exports that are
  not failed or not awaiting approval (the callers report those). The confirming
  import's :class:`Transitions` are selecting too: a sync of another system may
  stage or cancel a PE between the import reading and writing it; the import then
  leaves that PE as the sync wrote it, with its changes (the next import confirms
  it).

Transitions work on batches: the named transitions change PEs in memory and collect
them in a :class:`Transitions`, whose :meth:`Transitions.save` writes them all with a
fixed number of set-based statements (the sync writes through :func:`write_staged`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db.models import Q, QuerySet
from django.utils import timezone

from core.bulk import insert_instances, insert_rows, one_of, update_instances, update_rows
from exports.choices import (
    ApprovalState,
    AttributeChangeStatus,
    PendingExportChangeType,
    PendingExportStatus,
)
from exports.models import PendingExport, PendingExportAttributeChange

S = PendingExportStatus
#: What an export run may send: no approval needed, or approved.
SENDABLE_APPROVALS = (ApprovalState.NOT_REQUIRED, ApprovalState.APPROVED)
#: What the export run claims from.
CLAIMABLE = (S.PENDING, S.EXPORT_NOT_CONFIRMED)
#: What a sync may stage into or cancel: all but ``executing`` (its run writes it).
STAGEABLE = (S.PENDING, S.EXPORTED, S.EXPORT_NOT_CONFIRMED, S.FAILED)
#: The columns a transition writes.
MOVED_COLUMNS = (
    "change_type",
    "dn",
    "status",
    "error_count",
    "last_error",
    "next_retry_at",
    "updated_at",
)
#: Chunk of PEs locked per query by the people's transitions.
CHUNK = 2000


class IllegalTransition(Exception):
    """A transition asked of pending exports not in a state it moves from."""

    def __init__(self, transition: str, states: Mapping[int, str | None]) -> None:
        self.transition = transition
        self.states = states
        named = ", ".join(f"{pk} ({status or 'gone'})" for pk, status in sorted(states.items()))
        super().__init__(f"cannot {transition} pending export(s) {named}")


def retry_at(now: dt.datetime, backoff_seconds: int, attempts: int) -> dt.datetime:
    """When an export that failed ``attempts`` times is due again: the system's
    backoff, doubling with each attempt."""
    return now + dt.timedelta(seconds=backoff_seconds * 2 ** (attempts - 1))


class _Row(Protocol):
    status: str


class _Change(Protocol):
    """An attribute change as the sync stages it."""

    attribute: str
    change_type: str
    values: list[Any]
    previous_values: list[Any]
    status: str


def _require(transition: str, pe: PendingExport, allowed: Iterable[str]) -> str:
    """``pe``'s status, when ``transition`` may move it; raises otherwise."""
    if pe.status not in allowed:
        raise IllegalTransition(transition, {pe.pk: pe.status})
    return pe.status


# --------------------------------------------------------------------------- sync


def stage(pe: PendingExport, *, change_type: str, dn: str, approval: str) -> None:
    """A sync sets the PE's changes (new, merged or replacing): ``pending``, its
    attempts and backoff reset, its approval per the system's policy. Also how a sync
    supersedes a PE (an update replaced by a delete) and revives a ``failed`` one.
    Use :func:`restage_changes` on its attribute changes."""
    if pe.pk is not None:
        _require("stage", pe, STAGEABLE)
    pe.change_type = change_type
    pe.status = S.PENDING
    pe.dn = dn
    pe.error_count = 0
    pe.next_retry_at = None
    pe.last_error = ""
    pe.approval = approval
    pe.approved_by = None
    pe.approved_at = None
    pe.approval_reason = ""


def restage_changes(rows: Iterable[_Row]) -> None:
    """Re-staged changes are sent again, like the PE they belong to."""
    for row in rows:
        if row.status == AttributeChangeStatus.FAILED:
            row.status = AttributeChangeStatus.PENDING


def cancel(pe: PendingExport) -> None:
    """A sync withdraws the PE (nothing left to send, or a create never sent whose
    object leaves scope): the caller deletes it (:func:`write_staged`)."""
    _require("cancel", pe, STAGEABLE)


def confirm_by_sync(pe: PendingExport) -> None:
    """A sync sees every change of an ``export_not_confirmed`` PE on its CSO: the
    caller deletes it."""
    _require("confirm by sync", pe, (S.EXPORT_NOT_CONFIRMED,))


def confirm_partly_by_sync(pe: PendingExport) -> None:
    """A sync sees some changes of an ``export_not_confirmed`` PE on its CSO: the
    caller keeps the rest; the object exists (a create becomes an update) and the
    attempt counts. Status and backoff stay."""
    _require("confirm partly by sync", pe, (S.EXPORT_NOT_CONFIRMED,))
    if pe.change_type == PendingExportChangeType.CREATE:
        pe.change_type = PendingExportChangeType.UPDATE
    pe.error_count += 1


def write_staged(
    new: Sequence[tuple[PendingExport, Sequence[_Change]]],
    changed: Sequence[tuple[PendingExport, str, Sequence[_Change]]],
    cancelled: Sequence[tuple[int, str]],
    fields: Sequence[str],
) -> None:
    """Write a sync batch's PEs as :func:`stage` and the others left them: insert
    ``new`` with their changes; write ``fields`` of ``changed`` (PE, status as loaded,
    changes) and replace their changes; delete ``cancelled`` (id, status as loaded).

    The batch holds them locked and found them as loaded (``SyncBatch.hold_exports``):
    each statement carries the status as loaded, and a PE not in it is an
    :class:`IllegalTransition`.
    """
    _delete(cancelled, "cancel", strict=True)
    insert_instances([pe for pe, _ in new])
    now = timezone.now()
    by_name = {f.name: f for f in PendingExport._meta.concrete_fields}
    columns = [(str(by_name[f].column), by_name[f].attname) for f in fields]
    written = update_rows(
        PendingExport,
        [
            {
                "id": pe.pk,
                **{column: getattr(pe, attname) for column, attname in columns},
                "updated_at": now,
                "status__was": was,
            }
            for pe, was, _ in changed
        ],
        [*(column for column, _ in columns), "updated_at"],
        unless_changed="status",
    )
    if written < len(changed):
        _raise_not_as_read("stage", [(pe.pk, was) for pe, was, _ in changed], now)
    for pe, _, _ in changed:
        pe.updated_at = now
    replaced = [pe.pk for pe, _, _ in changed]
    if replaced:
        PendingExportAttributeChange.objects.filter(pending_export_id__in=replaced).delete()
    staged = [*new, *((pe, changes) for pe, _, changes in changed)]
    rows = [
        {
            "pending_export_id": pe.pk,
            "attribute": row.attribute,
            "change_type": row.change_type,
            "values": list(row.values),
            "previous_values": list(row.previous_values),
            "status": row.status,
        }
        for pe, changes in staged
        for row in changes
    ]
    insert_rows(PendingExportAttributeChange, rows, returning=False)


# --------------------------------------------------------------------------- export run


def executable(system: Any, now: dt.datetime | None = None) -> QuerySet[PendingExport]:
    """The PEs of a system that an export run may claim now: ``pending`` ones, and
    ``export_not_confirmed`` ones whose retry is due, needing no approval or approved."""
    now = now or timezone.now()
    retry_due = Q(status=S.EXPORT_NOT_CONFIRMED) & (
        Q(next_retry_at__isnull=True) | Q(next_retry_at__lte=now)
    )
    return PendingExport.objects.filter(
        Q(status=S.PENDING) | retry_due,
        connected_system=system,
        approval__in=SENDABLE_APPROVALS,
    )


def claim(pe_ids: Sequence[int]) -> dict[int, str]:
    """An export run takes these PEs: ``pending``/``export_not_confirmed`` →
    ``executing``. Returns the status each claimed PE had (restored by
    :func:`release`). Selecting: a PE a sync staged into awaiting approval, cancelled
    or replaced since the run listed it is not claimed.

    Call inside a transaction. A sync batch that changes one of them holds it locked
    until it commits (``SyncBatch.hold_exports``): the claim waits, then takes what it
    wrote. Locked in id order, the order the sync locks in: neither waits for ever.
    """
    claimable = PendingExport.objects.filter(
        pk__in=pe_ids, approval__in=SENDABLE_APPROVALS, status__in=CLAIMABLE
    )
    claimed = dict(claimable.select_for_update().order_by("pk").values_list("pk", "status"))
    PendingExport.objects.filter(pk__in=claimed).update(status=S.EXECUTING)
    return claimed


def release_stale_executing(system: Any | None = None) -> int:  # a system, its id, or all
    """PEs left ``executing`` by a run that died → ``export_not_confirmed``, due now
    (no attempt counted). Returns how many.

    Called at the start of every export run (one run per system at a time, so any
    ``executing`` PE of the system is stale) and when a run of the system is found
    dead (:func:`release_executing_of_dead_run`).
    """
    stale = PendingExport.objects.filter(status=S.EXECUTING)
    if system is not None:
        stale = stale.filter(connected_system=system)
    return stale.update(status=S.EXPORT_NOT_CONFIRMED, next_retry_at=None)


def release_executing_of_dead_run(sender: type, *, activity: Any, **kwargs: Any) -> int:
    """Receiver of :data:`connectors.dead_runs.run_died` (a run found dead by a run
    starting, a worker starting, a cancellation, a discard): nothing else of its
    system could run while it was in progress, so the system's ``executing`` PEs were
    being sent by it."""
    return release_stale_executing(activity.connected_system_id)  # a system or its id


@dataclass
class Transitions:
    """The transitions of one batch (an export batch, a page of a confirming import),
    written by :meth:`save` with a fixed number of set-based statements.

    ``strict``: fewer rows written than asked raises :class:`IllegalTransition` (the
    export run owns what it claimed); otherwise a PE changed meanwhile by another run
    is left as that run wrote it, with its changes (see the module's docstring).
    """

    strict: bool = True
    now: dt.datetime = field(default_factory=timezone.now)
    #: PEs moved (or changed in place), with the status they were read in
    moved: list[tuple[PendingExport, str]] = field(default_factory=list)
    #: PEs deleted, with the status they were read in
    gone: list[tuple[int, str]] = field(default_factory=list)
    #: attribute changes sent, awaiting the confirming import
    sent_rows: list[int] = field(default_factory=list)
    #: attribute changes confirmed (deleted)
    confirmed_rows: list[int] = field(default_factory=list)
    #: attribute changes whose values or status changed
    changed_rows: list[PendingExportAttributeChange] = field(default_factory=list)
    #: PEs that gave up: all their changes ``failed``
    gave_up: list[int] = field(default_factory=list)
    #: what the transitions were, for the error naming them
    names: dict[int, str] = field(default_factory=dict)

    def move(self, pe: PendingExport, was: str, transition: str) -> None:
        self.moved.append((pe, was))
        self.names[pe.pk] = transition

    def delete(self, pe: PendingExport, was: str, transition: str) -> None:
        self.gone.append((pe.pk, was))
        self.names[pe.pk] = transition

    def save(self) -> None:
        """Write the batch's transitions (call inside a transaction when strict)."""
        left = self._write_moved() | _delete(self.gone, self._name(), strict=self.strict)
        if left:
            # Selecting: another run wrote these meanwhile, theirs now. A sync that
            # staged one replaced its changes (new rows): the writes by row id below
            # find nothing of it; only the give-up, by PE, must leave it alone.
            self.gave_up = [pk for pk in self.gave_up if pk not in left]
        if self.confirmed_rows:
            PendingExportAttributeChange.objects.filter(pk__in=self.confirmed_rows).delete()
        if self.changed_rows:
            update_instances(self.changed_rows, ["values", "status"])
        if self.sent_rows:
            PendingExportAttributeChange.objects.filter(pk__in=self.sent_rows).update(
                status=AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION
            )
        if self.gave_up:
            PendingExportAttributeChange.objects.filter(pending_export_id__in=self.gave_up).update(
                status=AttributeChangeStatus.FAILED
            )

    def _write_moved(self) -> set[int]:
        """Write the moved PEs, each only while in the status it was read in; returns
        those not written (selecting only)."""
        if not self.moved:
            return set()
        rows = []
        for pe, was in self.moved:
            pe.updated_at = self.now
            rows.append(
                {
                    "id": pe.pk,
                    **{column: getattr(pe, column) for column in MOVED_COLUMNS},
                    "status__was": was,
                }
            )
        written = update_rows(PendingExport, rows, MOVED_COLUMNS, unless_changed="status")
        if written == len(rows):
            return set()
        asked = [(pe.pk, was) for pe, was in self.moved]
        if self.strict:
            _raise_not_as_read(self._name(), asked, self.now)
        # Ours are those stamped with this batch's time; the others another run wrote.
        ours = set(
            PendingExport.objects.filter(
                one_of("id", [pk for pk, _ in asked]), updated_at=self.now
            ).values_list("pk", flat=True)
        )
        return {pk for pk, _ in asked} - ours

    def _name(self) -> str:
        return "/".join(sorted(set(self.names.values()))) or "move"


def _delete(gone: Sequence[tuple[int, str]], transition: str, *, strict: bool) -> set[int]:
    """Delete PEs, each only while in the status it was read in; returns those not
    deleted (raises instead when ``strict``)."""
    if not gone:
        return set()
    by_status: dict[str, list[int]] = {}
    for pk, was in gone:
        by_status.setdefault(was, []).append(pk)
    deleted = 0
    for was, pks in by_status.items():  # a statement per status read: three at most
        _, counts = PendingExport.objects.filter(one_of("id", pks), status=was).delete()
        deleted += counts.get(PendingExport._meta.label, 0)
    if deleted == len(gone):
        return set()
    if strict:
        _raise_not_as_read(transition, list(gone))
    return set(
        PendingExport.objects.filter(one_of("id", [pk for pk, _ in gone])).values_list(
            "pk", flat=True
        )
    )


def _raise_not_as_read(
    transition: str, asked: list[tuple[int, str]], written_at: dt.datetime | None = None
) -> None:
    """Name the PEs of ``asked`` (id, status read) that were not as read: for an
    update, those the statement did not stamp ``written_at``; for a delete, those
    still there (or, when none is, all: which of the missing ones another run deleted
    cannot be told)."""
    now = {
        pk: (status, updated_at)
        for pk, status, updated_at in PendingExport.objects.filter(
            one_of("id", [pk for pk, _ in asked])
        ).values_list("pk", "status", "updated_at")
    }
    states: dict[int, str | None]
    if written_at is None:
        states = {pk: now[pk][0] for pk, _ in asked if pk in now}
        states = states or {pk: None for pk, _ in asked}
    else:
        states = {
            pk: now[pk][0] if pk in now else None
            for pk, _ in asked
            if pk not in now or now[pk][1] != written_at
        }
    raise IllegalTransition(f"{transition} (not as read)", states)


def succeed(t: Transitions, pe: PendingExport, sent: Sequence[int], *, waiting: bool) -> None:
    """The target took what was sent: ``executing`` → ``exported`` (awaiting the
    confirming import), or ``pending`` when changes of it still wait for references
    (partly sent); the sent changes await confirmation. ``dn`` and ``change_type``
    are the caller's (a create whose references wait is an update now)."""
    was = _require("succeed", pe, (S.EXECUTING,))
    pe.status = S.PENDING if waiting else S.EXPORTED
    pe.last_error = ""
    pe.next_retry_at = None
    t.sent_rows.extend(sent)
    t.move(pe, was, "succeed")


def nothing_sent(t: Transitions, pe: PendingExport, *, awaiting: bool, waiting: bool) -> None:
    """Nothing of the PE could go now: ``executing`` → ``exported`` when what it holds
    was sent before and awaits confirmation, else ``pending`` (it waits for
    references)."""
    was = _require("settle", pe, (S.EXECUTING,))
    pe.status = S.EXPORTED if awaiting and not waiting else S.PENDING
    t.move(pe, was, "settle")


def release(t: Transitions, pe: PendingExport, claimed_from: str) -> None:
    """Not sent after all (the target could not take it): back to what it was before
    the claim, no attempt counted."""
    was = _require("release", pe, (S.EXECUTING,))
    if claimed_from not in CLAIMABLE:
        raise IllegalTransition(f"release to {claimed_from}", {pe.pk: pe.status})
    pe.status = claimed_from
    t.move(pe, was, "release")


def fail(t: Transitions, pe: PendingExport, message: str, backoff_seconds: int) -> bool:
    """The target refused the object: an attempt. ``executing`` →
    ``export_not_confirmed``, due after the backoff, or ``failed`` with all its
    changes at ``max_retries`` (given up). Returns True when given up."""
    was = _require("fail", pe, (S.EXECUTING,))
    pe.error_count += 1
    pe.last_error = message
    given_up = _attempt_failed(t, pe, backoff_seconds)
    t.move(pe, was, "fail")
    return given_up


def deprovisioned(t: Transitions, pe: PendingExport) -> None:
    """A delete the target took: the PE is deleted (the caller deletes its CSO)."""
    was = _require("deprovision", pe, (S.EXECUTING,))
    if pe.change_type != PendingExportChangeType.DELETE:
        raise IllegalTransition(f"deprovision ({pe.change_type})", {pe.pk: pe.status})
    t.delete(pe, was, "deprovision")


def _attempt_failed(t: Transitions, pe: PendingExport, backoff_seconds: int) -> bool:
    if pe.error_count >= pe.max_retries:
        pe.status = S.FAILED
        pe.next_retry_at = None
        t.gave_up.append(pe.pk)
        return True
    pe.status = S.EXPORT_NOT_CONFIRMED
    pe.next_retry_at = retry_at(t.now, backoff_seconds, pe.error_count)
    return False


# --------------------------------------------------------------------------- confirming import

#: The PEs a confirming import looks at (not ``executing``: no export run of the system
#: runs meanwhile; not ``failed``: left to the operator).
CONFIRMABLE = (S.EXPORTED, S.PENDING, S.EXPORT_NOT_CONFIRMED)
#: Attribute changes that were sent and await confirmation.
AWAITING = (
    AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION,
    AttributeChangeStatus.EXPORTED_NOT_CONFIRMED,
)


def confirm(
    t: Transitions, pe: PendingExport, confirmed: Sequence[int], *, everything: bool
) -> None:
    """The import shows every change sent (``confirmed``): an ``exported`` PE is
    deleted — or, when ``everything`` was not sent (changes wait for references), it
    is ``pending`` without the confirmed changes."""
    was = _require("confirm", pe, (S.EXPORTED,))
    if everything:
        t.delete(pe, was, "confirm")
        return
    t.confirmed_rows.extend(confirmed)
    pe.status, pe.dn = S.PENDING, ""
    t.move(pe, was, "confirm")


def not_confirmed(
    t: Transitions,
    pe: PendingExport,
    confirmed: Sequence[int],
    left: Sequence[PendingExportAttributeChange],
    *,
    confirmed_any: bool,
    dn_confirmed: bool,
    backoff_seconds: int,
) -> bool:
    """The import does not show (all of) what was sent: an attempt. The confirmed
    changes go, the rest are ``exported_not_confirmed`` (sent again); the object
    exists when something was confirmed (a create becomes an update). ``exported`` →
    ``export_not_confirmed`` after the backoff, or ``failed`` at ``max_retries``.
    Returns True when given up."""
    was = _require("not confirm", pe, (S.EXPORTED,))
    t.confirmed_rows.extend(confirmed)
    for row in left:
        row.status = AttributeChangeStatus.EXPORTED_NOT_CONFIRMED
        t.changed_rows.append(row)
    if confirmed_any and pe.change_type == PendingExportChangeType.CREATE:
        pe.change_type = PendingExportChangeType.UPDATE
    if dn_confirmed:
        pe.dn = ""
    pe.error_count += 1
    names = ", ".join(sorted({r.attribute for r in left})) or "the new DN"
    given_up = _attempt_failed(t, pe, backoff_seconds)
    if given_up:
        pe.last_error = f"not confirmed after {pe.error_count} attempts: {names}"
    else:
        pe.last_error = f"not confirmed by import: {names}"
    t.move(pe, was, "not confirm")
    return given_up


def confirm_sent_part(
    t: Transitions,
    pe: PendingExport,
    confirmed: Sequence[int],
    left: Sequence[PendingExportAttributeChange],
    *,
    everything: bool,
) -> None:
    """A ``pending``/``export_not_confirmed`` PE holding changes sent before: those
    the import shows (``confirmed``) go, the object exists (a create becomes an
    update); deleted when ``everything`` was confirmed. Its status stays, nothing is
    counted: its next export run and confirming import count."""
    was = _require("confirm sent part", pe, (S.PENDING, S.EXPORT_NOT_CONFIRMED))
    if pe.change_type == PendingExportChangeType.CREATE:
        pe.change_type, pe.dn = PendingExportChangeType.UPDATE, ""
    if everything and not pe.dn:
        t.delete(pe, was, "confirm sent part")
        return
    t.confirmed_rows.extend(confirmed)
    t.changed_rows.extend(left)  # multi-valued changes may have been narrowed
    t.move(pe, was, "confirm sent part")


# --------------------------------------------------------------------------- people


def lock_awaiting_approval(pes: Iterable[PendingExport]) -> list[PendingExport]:
    """The ones of ``pes`` awaiting approval, locked, with what an audit entry reads
    (selecting: a mixed selection is safe)."""
    return list(
        PendingExport.objects.select_for_update()
        .filter(pk__in=[pe.pk for pe in pes], approval=ApprovalState.AWAITING_APPROVAL)
        .select_related("connected_system", "cs_object")
        .prefetch_related("attribute_changes")
    )


def approve(locked: Sequence[PendingExport], user: Any, reason: str) -> None:
    """A person approves: awaiting approval → approved (sendable)."""
    _decide(locked, user, reason, ApprovalState.APPROVED)


def reject(locked: Sequence[PendingExport], user: Any, reason: str) -> None:
    """A person rejects: awaiting approval → rejected (never sent; a sync that wants
    a different change replaces it)."""
    _decide(locked, user, reason, ApprovalState.REJECTED)


def _decide(locked: Sequence[PendingExport], user: Any, reason: str, approval: str) -> None:
    wrong = {pe.pk: pe.approval for pe in locked if pe.approval != ApprovalState.AWAITING_APPROVAL}
    if wrong:
        raise IllegalTransition(f"decide ({approval})", wrong)
    now = timezone.now()
    for pe in locked:
        pe.approval = approval
        pe.approved_by = user
        pe.approved_at = now
        pe.approval_reason = reason
        pe.updated_at = now
    PendingExport.objects.bulk_update(
        locked, ["approval", "approved_by", "approved_at", "approval_reason", "updated_at"]
    )


def lock_failed(pes: Iterable[PendingExport]) -> list[PendingExport]:
    """The ``failed`` ones of ``pes``, locked, with what an audit entry reads (loaded a
    chunk at a time: ``--all`` can name every export of a system). Selecting."""
    ids = sorted({pe.pk for pe in pes})
    locked: list[PendingExport] = []
    for start in range(0, len(ids), CHUNK):
        locked.extend(
            PendingExport.objects.select_for_update(of=("self",))
            .filter(pk__in=ids[start : start + CHUNK], status=S.FAILED)
            .select_related("connected_system", "cs_object")
            .prefetch_related("attribute_changes")
            .order_by("pk")
        )
    return locked


def retry(locked: Sequence[PendingExport]) -> None:
    """A person retries: ``failed`` → ``pending`` with its attempts and backoff reset
    and its ``failed`` changes ``pending``; the next export run sends it."""
    wrong = {pe.pk: pe.status for pe in locked if pe.status != S.FAILED}
    if wrong:
        raise IllegalTransition("retry", wrong)
    ids = [pe.pk for pe in locked]
    now = timezone.now()
    reset: dict[str, Any] = {
        "status": S.PENDING,
        "error_count": 0,
        "next_retry_at": None,
        "last_error": "",
        "updated_at": now,
    }
    written = PendingExport.objects.filter(one_of("id", ids), status=S.FAILED).update(**reset)
    if written < len(ids):
        _raise_not_as_read("retry", [(pk, S.FAILED) for pk in ids], now)
    PendingExportAttributeChange.objects.filter(
        one_of("pending_export_id", ids), status=AttributeChangeStatus.FAILED
    ).update(status=AttributeChangeStatus.PENDING)
    for pe in locked:
        for name, value in reset.items():
            setattr(pe, name, value)


def discard(locked: Sequence[PendingExport]) -> None:
    """A person discards: ``failed`` → deleted (the caller deletes a never-created
    object's CSO and marks what to sync again)."""
    wrong = {pe.pk: pe.status for pe in locked if pe.status != S.FAILED}
    if wrong:
        raise IllegalTransition("discard", wrong)
    _delete([(pe.pk, S.FAILED) for pe in locked], "discard", strict=True)
