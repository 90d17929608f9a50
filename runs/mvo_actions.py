"""The doors' entry to the manual actions on a metaverse object
(:mod:`metaverse.sync.manual`): each is recorded on the audit trail (who, through which
door, which object, why) and run at once as a sync activity of one of the object's
systems, so it is refused — :class:`~runs.runner.AlreadyRunning`, naming the run in the
way — while a sync (or a run of that system) is running, and its RPEIs are browsable
like any run's.

The activity belongs to the CSO's system for the actions on one CSO (disconnect,
re-join, release), or for the others to the system of the MVO's first CSO (the one
that projected it when there is one); an MVO joined to no CSO is deleted or
re-evaluated under the first connected system.

Each door checks what it can before it records anything (ValueError naming the object
and the cause); the processor checks again once it holds the run, and an action
refused there fails its activity having changed nothing.
"""

from __future__ import annotations

from collections.abc import Callable
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
REJOIN = "rejoin"
RELEASE = "release"
#: Every action, as the doors name it.
ACTIONS = (DELETE, DISCONNECT, RE_EVALUATE, REJOIN, RELEASE)


def delete_now(mvo: MetaverseObject, actor: Any, reason: str = "") -> Activity:
    """Delete ``mvo`` now, deprovisioning its CSOs (see :mod:`metaverse.sync.manual`)."""
    return _run(
        home_system(mvo), mvo, _what(DELETE, mvo), actor, reason, manual.delete_now(mvo.pk, reason)
    )


def disconnect(
    mvo: MetaverseObject, cso: ConnectorSpaceObject, actor: Any, reason: str = ""
) -> Activity:
    """Disconnect ``cso`` from ``mvo``; ValueError when it is not joined to it."""
    if cso.metaverse_object_id != mvo.pk:
        raise ValueError(
            f"connector space object {cso.pk} ({cso.external_id}) is not joined to "
            f"metaverse object {mvo.pk} ({mvo.display_name or 'no name'})"
        )
    what = _what(DISCONNECT, mvo, cso)
    processor = manual.disconnect(cso.pk, reason)
    return _run(cso.connected_system, mvo, what, actor, reason, processor)


def re_evaluate(mvo: MetaverseObject, actor: Any, reason: str = "") -> Activity:
    """Sync just ``mvo`` and its CSOs, as a full sync would."""
    return _run(
        home_system(mvo), mvo, _what(RE_EVALUATE, mvo), actor, reason, manual.re_evaluate(mvo.pk)
    )


def rejoin(
    cso: ConnectorSpaceObject, mvo: MetaverseObject | None, actor: Any, reason: str = ""
) -> Activity:
    """Join ``cso``, disconnected by hand, to ``mvo`` (None: the MVO it was disconnected
    from), then re-evaluate that MVO; ValueError naming the cause when it cannot be."""
    if mvo is None:
        if cso.disconnected_from_mvo is None:
            raise ValueError(
                f"{manual.describe_cso(cso)}: it is not known which metaverse object it "
                "was disconnected from; name the one to join it to"
            )
        mvo = MetaverseObject.objects.filter(pk=cso.disconnected_from_mvo).first()
        if mvo is None:
            raise ValueError(
                f"{manual.describe_cso(cso)}: metaverse object {cso.disconnected_from_mvo}, "
                "which it was disconnected from, was deleted since; name another to join it "
                "to, or release it to sync"
            )
    refusal = manual.rejoin_refusal(cso, mvo.pk)
    if refusal:
        raise ValueError(refusal)
    processor = manual.rejoin(cso.pk, mvo.pk, reason)
    return _run(cso.connected_system, mvo, _what(REJOIN, mvo, cso), actor, reason, processor)


def release(cso: ConnectorSpaceObject, actor: Any, reason: str = "") -> Activity:
    """Hand ``cso``, disconnected by hand, back to sync: its next sync's join rules
    decide its join. ValueError when it was not disconnected by hand."""
    if not cso.disconnected_by_hand:
        raise ValueError(
            f"{manual.describe_cso(cso)} was not disconnected by hand: there is nothing to release"
        )
    mvo = MetaverseObject.objects.filter(pk=cso.disconnected_from_mvo or 0).first()
    what = f"{RELEASE} {manual.describe_cso(cso)} to sync"
    if mvo is not None:
        what += f" (disconnected from metaverse object {_name(mvo)})"
    target = mvo if mvo is not None else cso
    return _run(cso.connected_system, target, what, actor, reason, manual.release(cso.pk, reason))


def _what(action: str, mvo: MetaverseObject, cso: ConnectorSpaceObject | None = None) -> str:
    what = f"{action} metaverse object {_name(mvo)}"
    if cso is not None:
        what += f": connector space object {cso.external_id or cso.pk} of "
        what += cso.connected_system.name
    return what


def _name(mvo: MetaverseObject) -> str:
    return mvo.display_name or f"#{mvo.pk}"


def _run(
    system: ConnectedSystem,
    target: MetaverseObject | ConnectorSpaceObject,
    what: str,
    actor: Any,
    reason: str,
    processor: Processor,
) -> Activity:
    def audit(activity: Activity) -> None:
        why = f"; why: {reason}" if reason else ""
        record(actor, Action.MVO_ACTION, target, reason=f"{what} (activity {activity.pk}){why}")

    return run_at_once(system, f"Manual: {what}", actor, processor, audit)


def run_at_once(
    system: ConnectedSystem,
    profile_name: str,
    actor: Any,
    processor: Processor,
    audit: Callable[[Activity], None],
    *,
    preview: bool = False,
) -> Activity:
    """Run ``processor`` now, in this process, as a sync activity of ``system`` started
    by ``actor`` and recorded by ``audit`` in the transaction that creates it; the
    activity, done. :class:`~runs.runner.AlreadyRunning` (the activity recorded as not
    run) while a sync runs."""
    user = actor if hasattr(actor, "get_username") else None
    with transaction.atomic():
        activity = Activity.objects.create(
            connected_system=system,
            profile_type=RunProfileType.FULL_SYNC,  # writes the metaverse: one sync at a time
            profile_name=profile_name[:200],
            status=ActivityStatus.QUEUED,
            initiated_by=user,
            initiated_by_name=(user.get_username() if user else str(actor or ""))[:200],
            preview=preview,
        )
        audit(activity)
    try:
        return execute(activity, processor=processor)
    except AlreadyRunning as exc:
        refuse(activity, str(exc))
        raise


def home_system(mvo: MetaverseObject) -> ConnectedSystem:
    """The system an activity on ``mvo`` belongs to: that of the CSO that projected it
    (else its first CSO, else the first system)."""
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
