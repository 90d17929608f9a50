"""MVO deletion rules: when a disconnected CSO takes its MVO with it.

* ``last_connector_removed``: the MVO goes when no CSO is left joined to it other than
  those JIM provisioned itself (provisioned accounts are the MVO's consequences, not
  its sources, so they do not keep it alive);
* ``authoritative_connector_removed``: the MVO goes when a CSO of one of the type's
  authoritative systems leaves;
* ``manual``: never automatically.

With a grace period the MVO is kept, ``deletion_scheduled`` with the date it becomes
due, and a CSO joining again in the meantime cancels the deletion. Housekeeping at the
start of every sync deletes the MVOs that are due.
"""

from __future__ import annotations

import datetime as dt

from connectors.choices import JoinType
from metaverse.choices import DeletionRule, MvoStatus
from metaverse.models import MetaverseObject
from metaverse.sync.batch import SyncBatch


def deletion_due(batch: SyncBatch, mvo: MetaverseObject, disconnected_system_id: int) -> bool:
    """True when the MVO's deletion rule says it goes now that a CSO of that system left."""
    info = batch.ruleset.mv_types[mvo.object_type_id]
    remaining = batch.mvo_csos.get(mvo.pk, {}).values()
    if info.deletion_rule == DeletionRule.LAST_CONNECTOR_REMOVED:
        return not any(cso.join_type != JoinType.PROVISIONED for cso in remaining)
    if info.deletion_rule == DeletionRule.AUTHORITATIVE_CONNECTOR_REMOVED:
        return disconnected_system_id in info.authoritative_system_ids
    return False


def schedule_or_delete(batch: SyncBatch, mvo: MetaverseObject) -> bool:
    """Schedule the MVO's deletion (grace period) or mark it for deletion now.

    Returns True when it is to be deleted in this batch (its CSOs must then be
    deprovisioned by export evaluation).
    """
    grace = batch.ruleset.mv_types[mvo.object_type_id].grace_period_days
    # An MVO kept for its disabled accounts (metaverse.sync.disabling) is past its grace.
    kept = mvo.status == MvoStatus.DELETION_SCHEDULED and mvo.deletion_due_at is None
    if grace > 0 and not kept:
        if mvo.status != MvoStatus.DELETION_SCHEDULED:
            mvo.status = MvoStatus.DELETION_SCHEDULED
            mvo.deletion_due_at = batch.now + dt.timedelta(days=grace)
            batch.mvo_changed(mvo)
        return False
    batch.deleted_mvos.add(mvo.pk)
    return True
