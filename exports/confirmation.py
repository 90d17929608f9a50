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
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from django.utils import timezone

from connectors.activity import ActivityRecorder
from connectors.choices import RpeiErrorType
from connectors.models import ConnectedSystem, ConnectorSpaceObject
from exports.changes import changes_by_export
from exports.choices import AttributeChangeStatus, PendingExportChangeType, PendingExportStatus
from exports.models import PendingExport, PendingExportAttributeChange
from exports.reconciliation import reconcile_changes
from jim_project.bulk import update_instances

AWAITING = (
    AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION,
    AttributeChangeStatus.EXPORTED_NOT_CONFIRMED,
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
    pes = list(
        PendingExport.objects.filter(cs_object_id__in=by_id, status=PendingExportStatus.EXPORTED)
    )
    if not pes:
        return
    changes = changes_by_export(pes)
    deleted: list[int] = []
    updated: list[PendingExport] = []
    dropped_rows: list[int] = []
    changed_rows: list[PendingExportAttributeChange] = []
    now = timezone.now()
    for pe in pes:
        cso = by_id[pe.cs_object_id]
        rows = changes.get(pe.pk, [])
        awaiting = [r for r in rows if r.status in AWAITING]
        left, confirmed_any = reconcile_changes(
            awaiting, cso.attributes, multivalued(cso.object_type_id)
        )
        renamed = bool(pe.dn) and pe.change_type == PendingExportChangeType.UPDATE
        dn_ok = not renamed or dn_key(pe.dn) == (cso.secondary_external_id_key or "")
        if not left and dn_ok:
            if len(awaiting) == len(rows):
                deleted.append(pe.pk)
            else:  # changes still waiting to be sent (references)
                dropped_rows.extend(r.pk for r in awaiting)
                pe.status, pe.dn = PendingExportStatus.PENDING, ""
                updated.append(pe)
            continue
        kept = {r.pk for r in left}
        dropped_rows.extend(r.pk for r in awaiting if r.pk not in kept)
        for row in left:
            row.status = AttributeChangeStatus.EXPORTED_NOT_CONFIRMED
            changed_rows.append(row)
        if confirmed_any and pe.change_type == PendingExportChangeType.CREATE:
            pe.change_type = PendingExportChangeType.UPDATE
        if renamed and dn_ok:
            pe.dn = ""
        _not_confirmed(pe, system, now, recorder, cso, left)
        updated.append(pe)
    _write(deleted, updated, dropped_rows, changed_rows, now)


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


def _write(
    deleted: list[int],
    updated: list[PendingExport],
    dropped_rows: list[int],
    changed_rows: list[PendingExportAttributeChange],
    now: dt.datetime,
) -> None:
    if deleted:
        PendingExport.objects.filter(pk__in=deleted).delete()
    if dropped_rows:
        PendingExportAttributeChange.objects.filter(pk__in=dropped_rows).delete()
    if changed_rows:
        update_instances(changed_rows, ["values", "status"])
    if updated:
        for pe in updated:
            pe.updated_at = now
        update_instances(
            updated,
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
    if any(pe.status == PendingExportStatus.FAILED for pe in updated):
        PendingExportAttributeChange.objects.filter(
            pending_export_id__in=[p.pk for p in updated if p.status == PendingExportStatus.FAILED]
        ).update(status=AttributeChangeStatus.FAILED)
