"""Undo an export run: the inverse of what it sent, staged as pending exports.

An export run records what it sent to each object (:class:`~exports.models.ExportedChange`,
written with the export's outcome by :func:`exported_change`) and keeps it for
``JIM_EXPORT_RETENTION_DAYS``. From that record :func:`plan_undo` builds the inverse,
object by object, and changes nothing (the preview):

* a **create** becomes a **delete** of that object;
* an **update** restores the previous values: a replaced value (or a cleared one) is
  replaced by what it was before, the values added to a multi-valued attribute are
  removed and the values removed are added back; a move goes back to the old DN;
* a **delete** re-creates the object at its DN with its last known values (its
  writable attributes; secrets were never recorded), as a new CSO, not joined: the
  next import and sync join it like any object found in the system.

An object that changed after the run is left out, as a **conflict** with its reason,
and never overwritten: a later export run sent it something, its values in JIM are
no longer what the run sent (an import saw them change), it is gone (an update or a
create to undo), an object is at the DN again (a delete to undo), or it has an open
pending export — one that awaits its confirming import too: import first. The last
is the safe choice: the inverse is not merged into a change JIM is already making; it
is reported, for a person to settle (or to undo again once it is settled).

:func:`stage_undo` stages the plan's inverse changes (for a user with the
``exports.undo_exportedchange`` permission: Administrators), in one transaction that
plans again over locked rows. Each inverse export goes through the system's approval
policy like any other change (a delete awaits approval under ``deletes``…), is sent by
the next export run — which records it in turn, so an undo can itself be undone — and
what was undone is marked so: nothing is undone twice. A second undo of the run plans
only what the first left out as a conflict, and is refused when nothing is left. The
undo is on the audit trail.

Undo restores the target; it does not change the cause. When a sync rule or a source
value produced the wrong change, the next sync proposes it again: revert the
configuration first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.roles import UNDO_EXPORT_PERMISSION
from audit.models import Action
from audit.recording import SECRET_NAME, record
from connectors.base import AttributeSpec, ConnectorError
from connectors.choices import (
    ActivityStatus,
    AttributeWritability,
    CsoStatus,
    JoinType,
    RunProfileType,
)
from connectors.dead_runs import fail_dead
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
)
from connectors.schema import connector_for, discovered_attributes
from core.bulk import insert_instances, one_of, update_instances
from exports import lifecycle
from exports.approval import initial_approval
from exports.choices import (
    AttributeChangeStatus,
    AttributeChangeType,
    PendingExportChangeType,
    PendingExportStatus,
)
from exports.intervention import running_sync
from exports.models import ExportedChange, PendingExport, PendingExportAttributeChange

T = AttributeChangeType
C = PendingExportChangeType


class UndoRefused(Exception):
    """The activity cannot be undone (now): the message says which and why."""


class UndoDenied(PermissionError):
    """The user may not undo export runs."""


# --------------------------------------------------------------------------- recording


def exported_change(
    activity: Activity,
    pe: PendingExport,
    cso: ConnectorSpaceObject,
    sent: Sequence[PendingExportAttributeChange],
    *,
    dn: str = "",
    external_id: str = "",
) -> ExportedChange:
    """The (unsaved) record of what an export run sent for ``pe``, taken before the
    run applies it to ``cso``. ``dn`` and ``external_id``: what the target answered
    (a create's DN and id)."""
    old_dn = cso.secondary_external_id or ""
    new_dn = ""
    if pe.change_type == C.CREATE:
        old_dn = dn or pe.dn or old_dn
    elif pe.change_type == C.UPDATE and (dn or pe.dn) and (dn or pe.dn) != old_dn:
        new_dn = dn or pe.dn
    last_values: dict[str, list[Any]] = {}
    if pe.change_type == C.DELETE:
        last_values = {k: list(v) for k, v in cso.attributes.items() if not SECRET_NAME.search(k)}
    return ExportedChange(
        activity_id=activity.pk,
        connected_system_id=pe.connected_system_id,
        cso_ref=cso.pk,
        object_type_id=cso.object_type_id,
        change_type=pe.change_type,
        dn=old_dn,
        new_dn=new_dn,
        external_id=external_id or cso.external_id or "",
        changes=[
            {
                "attribute": row.attribute,
                "change_type": row.change_type,
                "values": list(row.values),
                "previous_values": list(row.previous_values),
            }
            for row in sent
        ],
        last_values=last_values,
        disabled=pe.disables,
        exported_at=timezone.now(),
    )


def prune_exported_changes(now: dt.datetime, chunk: int = 5000) -> int:
    """Housekeeping: delete what export runs sent longer ago than
    ``JIM_EXPORT_RETENTION_DAYS`` (a chunk at a time); returns how many."""
    cutoff = now - dt.timedelta(days=settings.JIM_EXPORT_RETENTION_DAYS)
    removed = 0
    while True:
        ids = list(
            ExportedChange.objects.filter(exported_at__lt=cutoff).values_list("pk", flat=True)[
                :chunk
            ]
        )
        if not ids:
            return removed
        removed += ExportedChange.objects.filter(pk__in=ids).delete()[0]


# --------------------------------------------------------------------------- the plan


@dataclass
class InverseChange:
    """One attribute change of an inverse export."""

    attribute: str
    change_type: str
    values: list[Any]
    previous_values: list[Any]


@dataclass
class UndoItem:
    """The inverse of what the run sent to one object, or why it is left out."""

    cso_ref: int
    target: str
    #: what the run did: create, update or delete
    undoes: str
    #: the inverse export: delete, update or create
    change_type: str
    changes: list[InverseChange] = field(default_factory=list)
    #: a create's DN, or the DN an update moves the object back to
    dn: str = ""
    #: why it is left out ("" when it is staged)
    conflict: str = ""
    object_type_id: int | None = None
    external_id: str = ""
    #: the run disabled the account: the undo re-enables it (the CSO is no longer
    #: disabled, so its delete after the grace period is off)
    enables: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "cso": self.cso_ref,
            "target": self.target,
            "undoes": self.undoes,
            "change_type": self.change_type,
            "dn": self.dn,
            "enables": self.enables,
            "changes": [
                {
                    "attribute": c.attribute,
                    "change_type": c.change_type,
                    "values": c.values,
                    "previous_values": c.previous_values,
                }
                for c in self.changes
            ],
            "conflict": self.conflict,
        }


@dataclass
class UndoPlan:
    """What undoing ``activity`` would stage, and what it leaves out."""

    activity: Activity
    items: list[UndoItem]
    #: after :func:`stage_undo`: the pending exports staged
    staged: list[PendingExport] = field(default_factory=list)

    @property
    def inverse(self) -> list[UndoItem]:
        return [item for item in self.items if not item.conflict]

    @property
    def conflicts(self) -> list[UndoItem]:
        return [item for item in self.items if item.conflict]

    def as_json(self) -> dict[str, Any]:
        activity = self.activity
        return {
            "activity": activity.pk,
            "system": activity.connected_system.name,
            "profile": activity.profile_name,
            "inverse": [item.as_json() for item in self.inverse],
            "conflicts": [item.as_json() for item in self.conflicts],
            "staged": [
                {"id": pe.pk, "change_type": pe.change_type, "approval": pe.approval}
                for pe in self.staged
            ],
        }


def plan_undo(activity: Activity) -> UndoPlan:
    """The inverse of export run ``activity`` (see the module docstring); changes
    nothing. Raises :class:`UndoRefused` when the activity cannot be undone."""
    records = _records(activity)
    return UndoPlan(activity, _plan(activity, records))


def stage_undo(activity: Activity, user: Any, reason: str = "") -> UndoPlan:
    """Stage the inverse exports of ``activity`` through the system's approval policy,
    mark the run undone and record it on the audit trail; returns the plan, with
    the pending exports staged. Raises :class:`UndoDenied` for a user without the
    permission and :class:`UndoRefused` when the run cannot be undone now."""
    if not (user and user.is_active and user.has_perm(UNDO_EXPORT_PERMISSION)):
        raise UndoDenied(f"{user} may not undo export runs (Administrators may)")
    system = activity.connected_system
    _refuse_while_running(system)
    with transaction.atomic():
        records = _records(activity, lock=True)
        refs = sorted({r.cso_ref for r in records})
        list(ConnectorSpaceObject.objects.select_for_update().filter(one_of("id", refs)))
        plan = UndoPlan(activity, _plan(activity, records))
        plan.staged = _stage(system, plan.inverse, user)
        now = timezone.now()
        undone = {item.cso_ref for item in plan.inverse}
        ExportedChange.objects.filter(
            one_of("id", [r.pk for r in records if r.cso_ref in undone])
        ).update(undone_at=now, undone_by=user.get_username())
        record(
            user,
            Action.EXPORT_UNDONE,
            activity,
            object_repr=f"{system.name} export run #{activity.pk}",
            reason=reason,
            changes={
                "pending_exports": [[], [pe.pk for pe in plan.staged]],
                "conflicts": [[], [f"{i.target}: {i.conflict}" for i in plan.conflicts]],
            },
        )
    return plan


def _records(activity: Activity, *, lock: bool = False) -> list[ExportedChange]:
    """What the run sent, or :class:`UndoRefused` saying why there is nothing to undo."""
    name = f"activity #{activity.pk} ({activity.connected_system.name} — {activity.profile_name})"
    if activity.profile_type != RunProfileType.EXPORT:
        raise UndoRefused(
            f"{name} is a {activity.get_profile_type_display()} run; only export runs can be undone"
        )
    if activity.status in (ActivityStatus.QUEUED, ActivityStatus.IN_PROGRESS):
        raise UndoRefused(f"{name} is {activity.status}; undo it when it has finished")
    records = ExportedChange.objects.filter(activity=activity).order_by("pk")
    if lock:
        records = records.select_for_update()
    found = list(records)
    if not found:
        days = settings.JIM_EXPORT_RETENTION_DAYS
        finished = activity.finished_at or activity.created_at
        if finished < timezone.now() - dt.timedelta(days=days):
            raise UndoRefused(
                f"{name} finished on {finished:%Y-%m-%d}, longer ago than the {days} days "
                "what an export run sent is kept (JIM_EXPORT_RETENTION_DAYS): it can no "
                "longer be undone"
            )
        raise UndoRefused(f"{name} sent nothing to its system: there is nothing to undo")
    left = [r for r in found if r.undone_at is None]
    if not left:
        last = max(found, key=lambda r: r.undone_at or timezone.now())
        raise UndoRefused(
            f"{name} was already undone on {last.undone_at:%Y-%m-%d %H:%M} UTC by "
            f"{last.undone_by}; undo the export run that sent the undo instead"
        )
    return left


def _refuse_while_running(system: ConnectedSystem) -> None:
    running = Activity.objects.select_related("connected_system").filter(
        connected_system=system, status=ActivityStatus.IN_PROGRESS
    )
    dead = {a.pk for a in fail_dead(running, found_by="an export run was undone")}
    busy = next((a for a in running if a.pk not in dead), None) or running_sync()
    if busy is not None:
        raise UndoRefused(
            f"{busy.connected_system.name} is running (activity #{busy.pk}, "
            f"{busy.profile_name}); undo the export run when it has finished"
        )


def _plan(activity: Activity, records: list[ExportedChange]) -> list[UndoItem]:
    """The items of the undo, one per object, in the order the run sent them."""
    system = activity.connected_system
    by_cso: dict[int, list[ExportedChange]] = {}
    for r in records:
        by_cso.setdefault(r.cso_ref, []).append(r)
    refs = list(by_cso)
    csos = ConnectorSpaceObject.objects.in_bulk(refs)
    later = dict(
        ExportedChange.objects.filter(
            one_of("cso_ref", refs), connected_system=system, pk__gt=records[0].pk
        )
        .exclude(activity=activity)
        .order_by("-pk")
        .values_list("cso_ref", "activity_id")
    )
    open_exports = {
        pe.cs_object_id: pe
        for pe in PendingExport.objects.filter(one_of("cs_object_id", refs)).only(
            "pk", "cs_object_id", "change_type", "status"
        )
    }
    deleted = [group[-1] for group in by_cso.values() if group[-1].change_type == C.DELETE]
    types = {
        t.pk: t
        for t in ConnectedSystemObjectType.objects.filter(
            pk__in={r.object_type_id for r in deleted}
        ).prefetch_related("attributes")
    }
    occupied = _occupied(system, deleted)
    schema = _discovered(system, [t.name for t in types.values()])
    items = []
    for ref, group in by_cso.items():
        kinds = {r.change_type for r in group}
        cso = csos.get(ref)
        if C.CREATE in kinds:
            item = _undo_create(group, cso)
        elif C.DELETE in kinds:
            item = _undo_delete(group[-1], types, occupied, schema)
        else:
            item = _undo_update(group, cso)
        if item.undoes != C.DELETE and not item.conflict:
            item.conflict = _changed_since(ref, later, open_exports)
        if item.change_type == C.UPDATE and not item.changes and not item.dn and not item.conflict:
            continue  # nothing the run sent is left to undo
        items.append(item)
    return items


def _changed_since(ref: int, later: dict[int, int], open_exports: dict[int, PendingExport]) -> str:
    """Why JIM has changed, or is changing, the object since the run ("" when not)."""
    if ref in later:
        return f"export run #{later[ref]} sent it another change since"
    pe = open_exports.get(ref)
    if pe is not None and pe.status == PendingExportStatus.EXPORTED:
        return (
            f"its pending export #{pe.pk} awaits the confirming import; run an import of "
            "the system first"
        )
    if pe is not None:
        return (
            f"it has an open pending export #{pe.pk} ({pe.change_type}, {pe.status}); "
            "settle that one first, then change the object by hand"
        )
    return ""


def _undo_create(group: list[ExportedChange], cso: ConnectorSpaceObject | None) -> UndoItem:
    first = group[0]
    item = UndoItem(first.cso_ref, first.target, C.CREATE, C.DELETE)
    if cso is None:
        item.conflict = "it no longer exists in JIM (deleted since)"
    else:
        item.target = cso.secondary_external_id or cso.external_id or item.target
        item.conflict = _values_differ(group, cso)
    return item


def _undo_update(group: list[ExportedChange], cso: ConnectorSpaceObject | None) -> UndoItem:
    first = group[0]
    moved = next((r.new_dn for r in reversed(group) if r.new_dn), "")
    item = UndoItem(first.cso_ref, moved or first.target, C.UPDATE, C.UPDATE)
    if cso is None:
        item.conflict = "it no longer exists in JIM (deleted since)"
        return item
    if moved and (cso.secondary_external_id or "").lower() != moved.lower():
        item.conflict = f"it was moved since: its DN is now {cso.secondary_external_id}"
        return item
    item.conflict = _values_differ(group, cso)
    item.dn = first.dn if moved else ""
    item.changes = inverse_changes([c for r in group for c in r.changes], cso.attributes)
    item.enables = any(r.disabled for r in group)
    return item


def _undo_delete(
    last: ExportedChange,
    types: dict[int, ConnectedSystemObjectType],
    occupied: dict[str, int],
    schema: dict[str, dict[str, AttributeSpec]],
) -> UndoItem:
    item = UndoItem(last.cso_ref, last.target, C.DELETE, C.CREATE, dn=last.dn)
    object_type = types.get(last.object_type_id) if last.object_type_id else None
    if object_type is None:
        item.conflict = "its object type is no longer in the system's schema"
        return item
    taken = occupied.get(last.dn) or occupied.get(last.external_id)
    if taken:
        item.conflict = f"an object is there again (CSO {taken})"
        return item
    item.object_type_id = object_type.pk
    if not object_type.secondary_external_id_attribute:
        item.external_id = last.external_id
    item.changes = recreated_changes(
        object_type, last.last_values, schema.get(object_type.name, {})
    )
    return item


def _discovered(system: ConnectedSystem, names: list[str]) -> dict[str, dict[str, AttributeSpec]]:
    """What the system's schema says of these object types' attributes (read from the
    system; empty when it cannot tell, then the declared writability decides). An
    import types new attributes by their values, so only the schema knows that a
    directory's ``modifyTimestamp`` cannot be written."""
    if not names:
        return {}
    try:
        with connector_for(system) as connector:
            return discovered_attributes(connector, names)
    except ConnectorError:
        return {}


def _occupied(system: ConnectedSystem, deleted: list[ExportedChange]) -> dict[str, int]:
    """The CSOs now at the DNs (or external ids) of the deleted objects: DN or id → CSO."""
    if not deleted:
        return {}
    connector = connector_for(system)
    keys = {connector.secondary_id_key(r.dn): r.dn for r in deleted if r.dn}
    external = [r.external_id for r in deleted if r.external_id]
    found: dict[str, int] = {}
    rows = ConnectorSpaceObject.objects.filter(
        one_of("secondary_external_id_key", list(keys)), connected_system=system
    ).values_list("pk", "secondary_external_id_key")
    for pk, key in rows:
        found[keys[str(key)]] = pk
    for pk, external_id in ConnectorSpaceObject.objects.filter(
        one_of("external_id", external), connected_system=system
    ).values_list("pk", "external_id"):
        found[str(external_id)] = pk
    return found


def _values_differ(group: list[ExportedChange], cso: ConnectorSpaceObject) -> str:
    """Why the CSO no longer holds what the run sent ("" when it does)."""
    for record_ in group:
        for change in record_.changes:
            name, values = change["attribute"], change["values"]
            now = cso.attributes.get(name, [])
            held = {str(v) for v in now}
            sent = {str(v) for v in values}
            kind = change["change_type"]
            if (
                (kind == T.UPDATE and held != sent)
                or (kind == T.REMOVE_ALL and held)
                or (kind == T.ADD and not sent <= held)
                or (kind == T.REMOVE and sent & held)
            ):
                return f"{name} changed since the run: it is now {now!r}, the run sent {values!r}"
    return ""


def inverse_changes(
    sent: list[dict[str, Any]], current: dict[str, list[Any]]
) -> list[InverseChange]:
    """The attribute changes that take the object back from what ``sent`` (in the
    order sent) made of it: a replaced or cleared value gets the earliest previous
    value; values added are removed and values removed are added back."""
    replaced: dict[str, list[Any]] = {}
    added: dict[str, list[Any]] = {}
    removed: dict[str, list[Any]] = {}
    for change in sent:
        name, kind = change["attribute"], change["change_type"]
        if kind in (T.UPDATE, T.REMOVE_ALL):
            replaced.setdefault(name, list(change["previous_values"]))
        elif kind == T.ADD:
            added.setdefault(name, []).extend(change["values"])
        else:
            removed.setdefault(name, []).extend(change["values"])
    changes = []
    for name in sorted({*replaced, *added, *removed}):
        now = list(current.get(name, []))
        if name in replaced:
            before = replaced[name]
            kind = T.UPDATE if before else T.REMOVE_ALL
            changes.append(InverseChange(name, kind, before, now))
            continue
        put_back = _minus(removed.get(name, []), added.get(name, []))
        take_out = _minus(added.get(name, []), removed.get(name, []))
        if put_back:
            changes.append(InverseChange(name, T.ADD, put_back, now))
        if take_out:
            changes.append(InverseChange(name, T.REMOVE, take_out, now))
    return changes


def recreated_changes(
    object_type: ConnectedSystemObjectType,
    last_values: dict[str, list[Any]],
    discovered: dict[str, AttributeSpec] | None = None,
) -> list[InverseChange]:
    """The attribute changes of a create that re-creates an object with its last known
    values: the attributes of its type JIM may write — as the system's schema says
    (``discovered``) when it can tell, else as declared — less an external id the
    system makes itself (a directory's ``entryUUID``)."""
    discovered = discovered or {}
    writable: dict[str, bool] = {}
    for a in object_type.attributes.all():
        spec = discovered.get(a.name)
        if a.writability != AttributeWritability.READ_ONLY and (spec is None or spec.writable):
            writable[a.name] = spec.multivalued if spec is not None else a.multivalued
    if object_type.secondary_external_id_attribute:
        writable.pop(object_type.external_id_attribute, None)
    changes = []
    for name in sorted(last_values):
        values = last_values[name]
        if name not in writable or not values:
            continue
        kind = T.ADD if writable[name] else T.UPDATE
        changes.append(InverseChange(name, kind, list(values), []))
    return changes


def _minus(values: list[Any], other: list[Any]) -> list[Any]:
    texts = {str(v) for v in other}
    return [v for v in values if str(v) not in texts]


# --------------------------------------------------------------------------- staging


def _stage(system: ConnectedSystem, items: list[UndoItem], user: Any) -> list[PendingExport]:
    """Insert the inverse exports (and a new CSO for each object to re-create), staged
    by ``user`` (separation of duties keeps them from approving them)."""
    new_csos = []
    for item in items:
        if item.change_type == C.CREATE:
            assert item.object_type_id is not None  # a create is planned with its type
            cso = ConnectorSpaceObject(
                connected_system=system,
                object_type_id=item.object_type_id,
                external_id=item.external_id or None,
                secondary_external_id=item.dn or None,
                secondary_external_id_key=(
                    connector_for(system).secondary_id_key(item.dn) if item.dn else None
                ),
                status=CsoStatus.PENDING_PROVISIONING,
                join_type=JoinType.NOT_JOINED,
                attributes={},
                sync_pending=False,
            )
            new_csos.append(cso)
    insert_instances(new_csos)
    created = iter(new_csos)
    existing = ConnectorSpaceObject.objects.in_bulk(
        [item.cso_ref for item in items if item.change_type != C.CREATE]
    )
    staged: list[tuple[PendingExport, list[PendingExportAttributeChange]]] = []
    for item in items:
        cso = next(created) if item.change_type == C.CREATE else existing[item.cso_ref]
        pe = PendingExport(
            connected_system=system,
            cs_object=cso,
            metaverse_object_id=cso.metaverse_object_id,
            max_retries=system.export_max_retries,
            staged_by=user,
        )
        lifecycle.stage(
            pe,
            change_type=item.change_type,
            dn=item.dn,
            approval=initial_approval(system.approval_mode, item.change_type),
        )
        rows = [
            PendingExportAttributeChange(
                attribute=c.attribute,
                change_type=c.change_type,
                values=c.values,
                previous_values=c.previous_values,
                status=AttributeChangeStatus.PENDING,
            )
            for c in item.changes
        ]
        staged.append((pe, rows))
    enabled = [existing[item.cso_ref] for item in items if item.enables]
    for cso in enabled:
        cso.disabled_at = None
    update_instances(enabled, ["disabled_at"])
    lifecycle.write_staged(staged, [], [], [])
    return [pe for pe, _ in staged]
