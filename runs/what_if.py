"""What would a sync do? One object's outcome under the current rules, changing nothing.

The console's "What would a sync do?" on an MVO or CSO page, and the API's ``what-if``
actions, run the sync of that object — the manual re-evaluate of an MVO
(:func:`metaverse.sync.manual.re_evaluate`), or of a CSO with its MVO's other CSOs
(:func:`metaverse.sync.manual.sync_cso`) — as a preview (:mod:`runs.preview`): the same
code as a real sync, rolled back, its RPEIs (before → after, value by value) and the
pending exports it would create, change or remove recorded on a preview activity.

It holds the sync's lock while it runs, like a real sync of that object, so it is
refused (:class:`~runs.runner.AlreadyRunning`, naming the run in the way) while a sync
runs. Previews are removed by housekeeping after ``JIM_PREVIEW_RETENTION_DAYS``.
"""

from __future__ import annotations

from typing import Any

from audit.models import Action
from audit.recording import record
from connectors.models import Activity, ConnectedSystem, ConnectorSpaceObject
from metaverse.models import MetaverseObject
from metaverse.sync import manual
from runs.mvo_actions import home_system, run_at_once
from runs.runner import Processor


def what_if_mvo(mvo: MetaverseObject, actor: Any) -> Activity:
    """Preview a sync of ``mvo`` and its CSOs, of every system; the preview activity."""
    what = f"metaverse object {mvo.display_name or f'#{mvo.pk}'}"
    return _preview(home_system(mvo), what, actor, manual.re_evaluate(mvo.pk))


def what_if_cso(cso: ConnectorSpaceObject, actor: Any) -> Activity:
    """Preview a sync of ``cso`` (with its MVO's other CSOs when it is joined); the
    preview activity."""
    what = manual.describe_cso(cso)
    return _preview(cso.connected_system, what, actor, manual.sync_cso(cso.pk))


def _preview(system: ConnectedSystem, what: str, actor: Any, processor: Processor) -> Activity:
    def audit(activity: Activity) -> None:
        reason = f"preview of a sync of {what} (activity {activity.pk})"
        record(actor, Action.RUN_STARTED, activity, reason=reason)

    return run_at_once(system, f"What if: sync {what}", actor, processor, audit, preview=True)
