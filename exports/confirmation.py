"""Confirming import: did the exports take effect? (seed 002's last diagram, seed 003)

After an import has written a page of CSOs, the exported pending exports of those
CSOs are compared with the values just imported:

* every attribute change (and rename) confirmed → the pending export is deleted;
* some confirmed → the confirmed changes are removed, the rest kept (``exported_not_
  confirmed``), a create becomes an update (the object exists), error count + 1;
* none confirmed → error count + 1;
* at max retries → ``failed``, RPEI ``export_confirmation_failed``.

Unconfirmed exports are retried by the next export run after the system's backoff.
Multi-valued attributes (group members) confirm value by value.

A pending export that is ``pending`` or ``export_not_confirmed`` again — a sync staged a
new change after the export, or an earlier import did not see it yet — may still hold
changes sent before: those the import shows are confirmed and removed (the export is
deleted when nothing else is left), the rest wait for the export's next send. Nothing
is counted against it here: its next export run and confirming import count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.utils import timezone

from connectors.activity import ActivityRecorder
from connectors.choices import RpeiErrorType
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from core.bulk import update_instances
from exports.changes import changes_by_export
from exports.choices import AttributeChangeStatus, PendingExportChangeType, PendingExportStatus
from exports.models import PendingExport, PendingExportAttributeChange
from exports.reconciliation import reconcile_changes

AWAITING = (
    AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION,
    AttributeChangeStatus.EXPORTED_NOT_CONFIRMED,
)
#: The statuses of the pending exports a confirming import looks at (not ``executing``:
#: no export run of the system runs meanwhile; not ``failed``: left to the operator).
OPEN = (
    PendingExportStatus.EXPORTED,
    PendingExportStatus.PENDING,
    PendingExportStatus.EXPORT_NOT_CONFIRMED,
)


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
    pes = list(PendingExport.objects.filter(cs_object_id__in=by_id, status__in=OPEN))
    if not pes:
        return
    changes = changes_by_export(pes)
    writes = _Writes()
    for pe in pes:
        cso = by_id[pe.cs_object_id]
        rows = changes.get(pe.pk, [])
        awaiting = [r for r in rows if r.status in AWAITING]
        if pe.status != PendingExportStatus.EXPORTED:
            if awaiting:
                _confirm_sent_part(pe, rows, awaiting, cso, multivalued, writes)
            continue
        left, confirmed_any = reconcile_changes(
            awaiting, cso.attributes, multivalued(cso.object_type_id)
        )
        renamed = bool(pe.dn) and pe.change_type == PendingExportChangeType.UPDATE
        dn_ok = not renamed or dn_key(pe.dn) == (cso.secondary_external_id_key or "")
        if not left and dn_ok:
            if len(awaiting) == len(rows):
                writes.deleted.append(pe.pk)
            else:  # changes still waiting to be sent (references)
                writes.dropped_rows.extend(r.pk for r in awaiting)
                pe.status, pe.dn = PendingExportStatus.PENDING, ""
                writes.updated.append(pe)
            continue
        kept = {r.pk for r in left}
        writes.dropped_rows.extend(r.pk for r in awaiting if r.pk not in kept)
        for row in left:
            row.status = AttributeChangeStatus.EXPORTED_NOT_CONFIRMED
            writes.changed_rows.append(row)
        if confirmed_any and pe.change_type == PendingExportChangeType.CREATE:
            pe.change_type = PendingExportChangeType.UPDATE
        if renamed and dn_ok:
            pe.dn = ""
        _not_confirmed(pe, system, writes.now, recorder, cso, left)
        writes.updated.append(pe)
    writes.save()


def _confirm_sent_part(
    pe: PendingExport,
    rows: list[PendingExportAttributeChange],
    awaiting: list[PendingExportAttributeChange],
    cso: ConnectorSpaceObject,
    multivalued: Callable[[int], frozenset[str]],
    writes: _Writes,
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
    if pe.change_type == PendingExportChangeType.CREATE:  # the object exists
        pe.change_type, pe.dn = PendingExportChangeType.UPDATE, ""
    if len(confirmed) == len(rows) and not pe.dn:
        writes.deleted.append(pe.pk)
        return
    writes.dropped_rows.extend(confirmed)
    writes.changed_rows.extend(left)  # multi-valued changes may have been narrowed
    writes.updated.append(pe)


def _not_confirmed(
    pe: PendingExport,
    system: ConnectedSystem,
    now: dt.datetime,
    recorder: ActivityRecorder,
    cso: ConnectorSpaceObject,
    left: list[PendingExportAttributeChange],
) -> None:
    pe.error_count += 1
    names = ", ".join(sorted({r.attribute for r in left})) or "the new DN"
    target = cso.secondary_external_id or cso.external_id or ""
    if pe.error_count >= pe.max_retries:
        pe.status = PendingExportStatus.FAILED
        pe.next_retry_at = None
        pe.last_error = f"not confirmed after {pe.error_count} attempts: {names}"
        recorder.error(
            RpeiErrorType.EXPORT_CONFIRMATION_FAILED,
            f"{target}: {names} still not as exported after {pe.error_count} attempts; "
            "manual intervention required",
            external_id=target,
            cs_object_id=cso.id,
            pending_export_id=pe.pk,
        )
        return
    pe.status = PendingExportStatus.EXPORT_NOT_CONFIRMED
    pe.next_retry_at = now + dt.timedelta(
        seconds=system.export_retry_backoff_seconds * 2 ** (pe.error_count - 1)
    )
    pe.last_error = f"not confirmed by import: {names}"


@dataclass
class _Writes:
    """The confirmation's writes for one page of imported CSOs, made in bulk."""

    deleted: list[int] = field(default_factory=list)
    updated: list[PendingExport] = field(default_factory=list)
    dropped_rows: list[int] = field(default_factory=list)
    changed_rows: list[PendingExportAttributeChange] = field(default_factory=list)
    now: dt.datetime = field(default_factory=timezone.now)

    def save(self) -> None:
        if self.deleted:
            PendingExport.objects.filter(pk__in=self.deleted).delete()
        if self.dropped_rows:
            PendingExportAttributeChange.objects.filter(pk__in=self.dropped_rows).delete()
        if self.changed_rows:
            update_instances(self.changed_rows, ["values", "status"])
        if self.updated:
            for pe in self.updated:
                pe.updated_at = self.now
            update_instances(
                self.updated,
                [
                    "change_type",
                    "status",
                    "dn",
                    "error_count",
                    "next_retry_at",
                    "last_error",
                    "updated_at",
                ],
            )
        failed = [p.pk for p in self.updated if p.status == PendingExportStatus.FAILED]
        if failed:
            PendingExportAttributeChange.objects.filter(pending_export_id__in=failed).update(
                status=AttributeChangeStatus.FAILED
            )
