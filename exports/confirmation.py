"""Confirming import: did the exports take effect? (seed 002's last diagram, seed 003)

After an import has written a page of CSOs, the exported pending exports of those
CSOs are compared with the values just imported:

* every attribute change (and rename) confirmed → the pending export is deleted;
* some confirmed → the confirmed changes are removed, the rest kept (``exported_not_
  confirmed``), a create becomes an update (the object exists), error count + 1;
* none confirmed → error count + 1;
* at max retries → ``failed``, RPEI ``export_confirmation_failed``.

Unconfirmed exports are retried by the next export run after the system's backoff.
Multi-valued attributes (group members) confirm value by value. The status changes are
the lifecycle's transitions (:mod:`exports.lifecycle`: confirm, not confirmed, confirm
sent part), written per page in bulk.

A pending export that is ``pending`` or ``export_not_confirmed`` again — a sync staged a
new change after the export, or an earlier import did not see it yet — may still hold
changes sent before: those the import shows are confirmed and removed (the export is
deleted when nothing else is left), the rest wait for the export's next send. Nothing
is counted against it here: its next export run and confirming import count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from connectors.activity import ActivityRecorder
from connectors.choices import RpeiErrorType
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports import lifecycle
from exports.changes import changes_by_export
from exports.choices import PendingExportChangeType, PendingExportStatus
from exports.lifecycle import AWAITING, CONFIRMABLE, Transitions
from exports.models import PendingExport, PendingExportAttributeChange
from exports.reconciliation import reconcile_changes


def confirm_exports(
    system: ConnectedSystem,
    csos: Iterable[ConnectorSpaceObject],
    recorder: ActivityRecorder,
    *,
    multivalued: Callable[[int], frozenset[str]],
    dn_key: Callable[[str], str],
) -> None:
    """Reconcile the exported pending exports of freshly imported CSOs.

    ``multivalued(object_type_id)`` names the multi-valued attributes of a type;
    ``dn_key`` normalises DNs (the connector's ``secondary_id_key``).
    """
    by_id = {cso.id: cso for cso in csos if cso.id}
    if not by_id:
        return
    pes = list(PendingExport.objects.filter(cs_object_id__in=by_id, status__in=CONFIRMABLE))
    if not pes:
        return
    changes = changes_by_export(pes)
    # Selecting: a sync of another system may stage or cancel one of them meanwhile.
    transitions = Transitions(strict=False)
    for pe in pes:
        cso = by_id[pe.cs_object_id]
        rows = changes.get(pe.pk, [])
        awaiting = [r for r in rows if r.status in AWAITING]
        if pe.status != PendingExportStatus.EXPORTED:
            if awaiting:
                _confirm_sent_part(pe, rows, awaiting, cso, multivalued, transitions)
            continue
        left, confirmed_any = reconcile_changes(
            awaiting, cso.attributes, multivalued(cso.object_type_id)
        )
        renamed = bool(pe.dn) and pe.change_type == PendingExportChangeType.UPDATE
        dn_ok = not renamed or dn_key(pe.dn) == (cso.secondary_external_id_key or "")
        if not left and dn_ok:
            lifecycle.confirm(
                transitions,
                pe,
                [r.pk for r in awaiting],
                everything=len(awaiting) == len(rows),  # else changes wait for references
            )
            continue
        kept = {r.pk for r in left}
        given_up = lifecycle.not_confirmed(
            transitions,
            pe,
            [r.pk for r in awaiting if r.pk not in kept],
            left,
            confirmed_any=confirmed_any,
            dn_confirmed=renamed and dn_ok,
            backoff_seconds=system.export_retry_backoff_seconds,
        )
        if given_up:
            _record_given_up(pe, cso, left, recorder)
    transitions.save()


def _confirm_sent_part(
    pe: PendingExport,
    rows: list[PendingExportAttributeChange],
    awaiting: list[PendingExportAttributeChange],
    cso: ConnectorSpaceObject,
    multivalued: Callable[[int], frozenset[str]],
    transitions: Transitions,
) -> None:
    """An export not (or no longer) ``exported`` that holds changes sent before:
    remove those the import confirms; nothing is counted."""
    left, confirmed_any = reconcile_changes(
        awaiting, cso.attributes, multivalued(cso.object_type_id)
    )
    if not confirmed_any:
        return
    kept = {r.pk for r in left}
    confirmed = [r.pk for r in awaiting if r.pk not in kept]
    lifecycle.confirm_sent_part(
        transitions, pe, confirmed, left, everything=len(confirmed) == len(rows)
    )


def _record_given_up(
    pe: PendingExport,
    cso: ConnectorSpaceObject,
    left: list[PendingExportAttributeChange],
    recorder: ActivityRecorder,
) -> None:
    names = ", ".join(sorted({r.attribute for r in left})) or "the new DN"
    target = cso.secondary_external_id or cso.external_id or ""
    recorder.error(
        RpeiErrorType.EXPORT_CONFIRMATION_FAILED,
        f"{target}: {names} still not as exported after {pe.error_count} attempts; "
        "manual intervention required",
        external_id=target,
        cs_object_id=cso.id,
        pending_export_id=pe.pk,
    )
