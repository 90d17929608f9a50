"""Manual actions on one metaverse object: delete it now, disconnect one of its CSOs,
re-evaluate it. Each is the sync's own code run for that object, as a sync activity
(:mod:`runs.mvo_actions` claims it, so it waits for no running sync and none runs
beside it), in one transaction, with its RPEIs:

* **delete now** deletes the MVO as a deletion rule does when it fires (the ``manual``
  deletion rule means exactly this): each CSO joined to it is deprovisioned or
  disconnected by its export rule through a pending export (approvals and thresholds
  applying as to any), then the MVO goes;
* **disconnect** breaks one CSO's join as an out-of-scope CSO's is broken: its system's
  values are recalled (or the MVO's deletion rule fires, as on any disconnect) and the
  MVO's export rules are evaluated again. The CSO stays in the connector space, unjoined,
  and remembers it was disconnected by hand (``disconnected_by_hand``): sync neither
  joins nor projects it again, even when a join rule matches, until an administrator
  re-joins it or it is imported anew (a new CSO);
* **re-evaluate** is a full sync of just the MVO's CSOs, of every system.
"""

from __future__ import annotations

from typing import Any

from connectors.activity import ActivityRecorder
from connectors.choices import ActivityPhase, ObjectChangeType
from connectors.models import Activity, ConnectorSpaceObject
from core.bulk import batch_transaction
from metaverse.sync.batch import SyncBatch
from metaverse.sync.inbound import disconnect as break_join
from metaverse.sync.order import sync_order
from metaverse.sync.outbound import ExportEvaluator
from metaverse.sync.processor import SyncRun, apply_deletion_rule


class ManualActionError(Exception):
    """The action cannot be done on this object (named in the message)."""


def delete_now(mvo_id: int, reason: str) -> Any:
    """The processor that deletes MVO ``mvo_id`` now."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        sync = SyncRun(activity, recorder, delta=False)
        recorder.set_phase(ActivityPhase.SYNCHRONISING)
        try:
            sync.delete_mvos([mvo_id], _why("deleted by hand", reason))
        finally:
            sync.targets.close()
        recorder.flush()

    return run


def disconnect(cso_id: int, reason: str) -> Any:
    """The processor that disconnects CSO ``cso_id`` from its MVO."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        sync = SyncRun(activity, recorder, delta=False)
        recorder.set_phase(ActivityPhase.SYNCHRONISING)
        try:
            _disconnect(sync, cso_id, _why("disconnected by hand", reason))
        finally:
            sync.targets.close()
        recorder.flush()

    return run


def re_evaluate(mvo_id: int) -> Any:
    """The processor that syncs MVO ``mvo_id``'s CSOs, of every system, as a full sync."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        ObjectSync(activity, recorder, mvo_id).run()

    return run


class ObjectSync(SyncRun):
    """A full sync of one MVO's CSOs, of every system, without the housekeeping of a
    whole run (that is the next sync's)."""

    def __init__(self, activity: Activity, recorder: ActivityRecorder, mvo_id: int) -> None:
        super().__init__(activity, recorder, delta=False)
        self.mvo_id = mvo_id

    def _housekeeping(self) -> None:
        pass

    def _cso_levels(self) -> list[list[int]]:
        csos = ConnectorSpaceObject.objects.filter(metaverse_object_id=self.mvo_id)
        references = {a for cs_type in self.ruleset.cs_types.values() for a in cs_type.references}
        return sync_order(csos, references)


def _disconnect(sync: SyncRun, cso_id: int, reason: str) -> None:
    with batch_transaction():
        cso = ConnectorSpaceObject.objects.filter(pk=cso_id).first()
        if cso is None or cso.metaverse_object_id is None:
            raise ManualActionError(f"connector space object {cso_id} is not joined")
        batch = SyncBatch(sync.ruleset, sync.join_index, sync.activity.pk)
        batch.load([cso])
        mvo = break_join(batch, cso)
        assert mvo is not None  # joined, loaded with it
        cso.disconnected_by_hand = True
        evaluator = ExportEvaluator(batch, sync.targets)
        details: dict[str, Any] = {"reason": reason}
        if not apply_deletion_rule(batch, evaluator, mvo, cso, details):
            evaluator.evaluate(mvo)
            evaluator.finish_provisioning()
        batch.hold_exports()
        batch.commit()
    evaluation = evaluator.results.get(mvo.pk)
    if evaluation is not None and evaluation.effects:
        details["exports"] = [effect.detail() for effect in evaluation.effects]
    sync.recorder.item(
        ObjectChangeType.DISCONNECTED,
        external_id=cso.external_id or cso.secondary_external_id or "",
        cs_object_id=cso.pk,
        metaverse_object_id=None if mvo.pk in batch.deleted_mvos else mvo.pk,
        details=details,
    )
    if evaluation is not None:
        for error in evaluation.errors:
            sync.recorder.error(error.error_type, str(error), metaverse_object_id=mvo.pk)


def _why(what: str, reason: str) -> str:
    return f"{what}: {reason}" if reason else what
