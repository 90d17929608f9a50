"""The doors' entry to the manual actions on a metaverse object
(:mod:`metaverse.sync.manual`): each is recorded on the audit trail (who, through which
door, which object, why) and run at once as a sync activity of one of the object's
systems, so it is refused — :class:`~runs.runner.AlreadyRunning`, naming the run in the
way — while a sync (or a run of that system) is running, and its RPEIs are browsable
like any run's.

The activity belongs to the disconnected CSO's system, or for the other actions to the
system of the MVO's first CSO (the one that projected it when there is one); an MVO
joined to no CSO is deleted or re-evaluated under the first connected system.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.models import Action
from audit.recording import record
from connectors.choices import ActivityStatus, JoinType, RunProfileType
from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from metaverse.models import MetaverseObject
from metaverse.sync import manual
from runs.runner import AlreadyRunning, Processor, execute, refuse

DELETE = "delete"
DISCONNECT = "disconnect"
RE_EVALUATE = "re-evaluate"


def delete_now(mvo: MetaverseObject, actor: Any, reason: str = "") -> Activity:
    """Delete ``mvo`` now, deprovisioning its CSOs (see :mod:`metaverse.sync.manual`)."""
    return _run(mvo, None, DELETE, actor, reason, manual.delete_now(mvo.pk, reason))


def disconnect(
    mvo: MetaverseObject, cso: ConnectorSpaceObject, actor: Any, reason: str = ""
) -> Activity:
    """Disconnect ``cso`` from ``mvo``; ValueError when it is not joined to it."""
    if cso.metaverse_object_id != mvo.pk:
        raise ValueError(
            f"connector space object {cso.pk} ({cso.external_id}) is not joined to "
            f"metaverse object {mvo.pk} ({mvo.display_name or 'no name'})"
        )
    return _run(mvo, cso, DISCONNECT, actor, reason, manual.disconnect(cso.pk, reason))


def re_evaluate(mvo: MetaverseObject, actor: Any, reason: str = "") -> Activity:
    """Sync just ``mvo`` and its CSOs, as a full sync would."""
    return _run(mvo, None, RE_EVALUATE, actor, reason, manual.re_evaluate(mvo.pk))


def _run(
    mvo: MetaverseObject,
    cso: ConnectorSpaceObject | None,
    action: str,
    actor: Any,
    reason: str,
    processor: Processor,
) -> Activity:
    system = cso.connected_system if cso is not None else _system_of(mvo)
    name = mvo.display_name or f"#{mvo.pk}"
    what = f"{action} metaverse object {name}"
    if cso is not None:
        what += f": connector space object {cso.external_id or cso.pk} of {system.name}"
    user = actor if hasattr(actor, "get_username") else None
    with transaction.atomic():
        activity = Activity.objects.create(
            connected_system=system,
            profile_type=RunProfileType.FULL_SYNC,  # writes the metaverse: one sync at a time
            profile_name=f"Manual: {what}"[:200],
            status=ActivityStatus.QUEUED,
            initiated_by=user,
            initiated_by_name="" if user else str(actor or "")[:200],
        )
        record(
            actor,
            Action.MVO_ACTION,
            mvo,
            reason=f"{what} (activity {activity.pk})" + (f"; why: {reason}" if reason else ""),
        )
    try:
        return execute(activity, processor=processor)
    except AlreadyRunning as exc:
        refuse(activity, str(exc))
        raise


def _system_of(mvo: MetaverseObject) -> ConnectedSystem:
    csos = ConnectorSpaceObject.objects.filter(metaverse_object=mvo).select_related(
        "connected_system"
    )
    first = min(csos, key=lambda c: (c.join_type != JoinType.PROJECTED, c.pk), default=None)
    if first is not None:
        return first.connected_system
    system = ConnectedSystem.objects.order_by("pk").first()
    if system is None:
        raise ValueError("there is no connected system to run the action under")
    return system
