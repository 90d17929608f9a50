"""A way out of ``failed``: retry a failed pending export now, or discard it.

Seed 003 leaves a ``failed`` export waiting for manual intervention. A person holding
``exports.intervene_pendingexport`` (superusers hold every permission) can

* **retry** it: back to ``pending`` with its attempts and backoff reset
  (``error_count`` 0, ``next_retry_at`` and ``last_error`` cleared) and its ``failed``
  attribute changes pending again, so the next export run sends it;
* **discard** it: the pending export is deleted — with a create's
  ``pending_provisioning`` CSO, as the object was never created — and the connector
  space objects of its metaverse object are marked ``sync_pending``, so the next sync,
  a delta sync included, evaluates that object afresh (and provisions it again while
  it is in scope). Exports that refer to a discarded create's CSO are re-evaluated the
  same way, so their references follow the new CSO.

Both act on exports in status ``failed`` only (others are left alone; see
:func:`refusal`) and write one audit entry per export with the user, the time, the
reason and what the export was. The status changes are the lifecycle's
(:func:`exports.lifecycle.retry`, :func:`exports.lifecycle.discard`). A discard needs
a reason, and is refused while a sync runs: the sync may be writing the very exports it
would delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from access.roles import INTERVENE_PERMISSION
from audit.models import AuditEntry
from connectors.choices import (
    SYNC_PROFILE_TYPES,
    ActivityStatus,
    AttributeDataType,
    CsoStatus,
)
from connectors.dead_runs import fail_dead
from connectors.models import Activity, ConnectedSystemAttribute, ConnectorSpaceObject
from core.bulk import one_of
from exports import lifecycle
from exports.approval import export_entry
from exports.choices import (
    ApprovalAction,
    PendingExportChangeType,
    PendingExportStatus,
)
from exports.models import ApprovalAuditEntry, PendingExport, PendingExportAttributeChange

#: Pending exports loaded per query.
CHUNK = 2000


class InterventionDenied(PermissionError):
    """The user may not retry or discard pending exports."""


class InterventionRefused(Exception):
    """The intervention cannot be made now (the message says why)."""


def can_intervene(user: Any) -> bool:
    return bool(user and user.is_active and user.has_perm(INTERVENE_PERMISSION))


def refusal(pe: PendingExport) -> str:
    """Why ``pe`` (not failed) cannot be retried or discarded, naming it."""
    return (
        f"pending export {pe.pk} ({pe.connected_system.name} {pe.change_type} {pe.target}) "
        f"is {pe.status}, not failed: only failed exports can be retried or discarded"
    )


def not_failed(pending_exports: QuerySet) -> list[PendingExport]:
    """The exports of ``pending_exports`` that are not failed, with what :func:`refusal`
    needs loaded."""
    return list(
        pending_exports.exclude(status=PendingExportStatus.FAILED)
        .select_related("connected_system", "cs_object")
        .order_by("pk")
    )


def retry(
    pending_exports: Iterable[PendingExport], user: Any, *, reason: str = ""
) -> list[PendingExport]:
    """Make the failed ones of ``pending_exports`` executable now; returns those retried.

    Raises :class:`InterventionDenied` when the user lacks the permission.
    """
    _check_permission(user)
    with transaction.atomic():
        retried = lifecycle.lock_failed(pending_exports)
        entries = [
            ApprovalAuditEntry.of(pe, user, ApprovalAction.RETRIED, reason) for pe in retried
        ]
        general = [
            export_entry(pe, user, ApprovalAction.RETRIED, reason, status=[pe.status, "pending"])
            for pe in retried
        ]
        lifecycle.retry(retried)
        ApprovalAuditEntry.objects.bulk_create(entries)
        AuditEntry.objects.bulk_create(general)
    return retried


def discard(
    pending_exports: Iterable[PendingExport], user: Any, *, reason: str
) -> list[PendingExport]:
    """Remove the failed ones of ``pending_exports``; returns those discarded.

    Raises :class:`InterventionDenied` when the user lacks the permission, and
    :class:`InterventionRefused` without a reason or while a sync runs.
    """
    _check_permission(user)
    reason = reason.strip()
    if not reason:
        raise InterventionRefused("give a reason for discarding (it is kept on the audit trail)")
    sync = running_sync()
    if sync is not None:
        raise InterventionRefused(
            f"a sync is running (activity #{sync.pk}, {sync.connected_system.name} — "
            f"{sync.profile_name}) and may be changing these exports; discard them when it "
            "has finished"
        )
    with transaction.atomic():
        discarded = lifecycle.lock_failed(pending_exports)
        entries = [
            ApprovalAuditEntry.of(pe, user, ApprovalAction.DISCARDED, reason) for pe in discarded
        ]
        for entry in entries:
            entry.pending_export = None  # its row is deleted below; the entry stays
        ApprovalAuditEntry.objects.bulk_create(entries)
        AuditEntry.objects.bulk_create(
            export_entry(pe, user, ApprovalAction.DISCARDED, reason, status=[pe.status, None])
            for pe in discarded
        )
        never_created = [pe.cs_object_id for pe in discarded if _never_created(pe)]
        mvo_ids = {pe.metaverse_object_id or pe.cs_object.metaverse_object_id for pe in discarded}
        mvo_ids |= _mvos_referring_to(never_created)
        kept_csos = {pe.cs_object_id for pe in discarded} - set(never_created)
        lifecycle.discard(discarded)
        ConnectorSpaceObject.objects.filter(one_of("id", never_created)).delete()
        _mark_for_sync(mvo_ids - {None}, kept_csos)
    return discarded


def running_sync() -> Activity | None:
    """The sync in progress, if one is (syncs run one at a time). A sync whose process
    died is recorded as failed here (:func:`connectors.dead_runs.fail_dead`), not waited on."""
    syncs = Activity.objects.select_related("connected_system").filter(
        status=ActivityStatus.IN_PROGRESS, profile_type__in=SYNC_PROFILE_TYPES
    )
    dead = {activity.pk for activity in fail_dead(syncs, found_by="an export was discarded")}
    return next((sync for sync in syncs if sync.pk not in dead), None)


def _check_permission(user: Any) -> None:
    if not can_intervene(user):
        raise InterventionDenied(
            f"{user} may not retry or discard pending exports "
            f"(that needs the {INTERVENE_PERMISSION} permission)"
        )


def _never_created(pe: PendingExport) -> bool:
    return (
        pe.change_type == PendingExportChangeType.CREATE
        and pe.cs_object.status == CsoStatus.PENDING_PROVISIONING
    )


def _mvos_referring_to(cso_ids: list[int]) -> set[int | None]:
    """MVOs whose pending exports hold a reference to one of these CSOs (a report
    waiting for their manager's create), to be evaluated again with the new CSO."""
    if not cso_ids:
        return set()
    systems = set(
        ConnectorSpaceObject.objects.filter(one_of("id", cso_ids)).values_list(
            "connected_system_id", flat=True
        )
    )
    references = ConnectedSystemAttribute.objects.filter(
        object_type__connected_system_id__in=systems, data_type=AttributeDataType.REFERENCE
    ).values_list("name", flat=True)
    rows = PendingExportAttributeChange.objects.filter(
        pending_export__connected_system_id__in=systems, attribute__in=list(references)
    ).values_list("pending_export__metaverse_object_id", "pending_export__cs_object_id", "values")
    wanted = set(cso_ids)
    return {
        mvo_id
        for mvo_id, cso_id, values in rows.iterator(CHUNK)
        if cso_id not in wanted and wanted.intersection(_ints(values))
    }


def _ints(values: Any) -> set[int]:
    return {v for v in values if isinstance(v, int)} if isinstance(values, list) else set()


def _mark_for_sync(mvo_ids: set[int], cso_ids: set[int]) -> None:
    """Mark the (normal) CSOs of these MVOs, and these CSOs, for the next sync: a delta
    sync evaluates the MVO of a marked source CSO in full."""
    now = timezone.now()
    for column, ids in (("metaverse_object_id", mvo_ids), ("id", cso_ids)):
        if ids:
            marked = ConnectorSpaceObject.objects.filter(
                one_of(column, ids), status=CsoStatus.NORMAL
            )
            marked.update(sync_pending=True, updated_at=now)
