"""Manual actions on one metaverse object: delete it now, disconnect one of its CSOs (and
re-join or release it later), re-evaluate it. Each is the sync's own code run for that
object, as a sync activity (:mod:`runs.mvo_actions` claims it, so it waits for no
running sync and none runs beside it), in one transaction, with its RPEIs:

* **delete now** deletes the MVO as a deletion rule does when it fires (the ``manual``
  deletion rule means exactly this): each CSO joined to it is deprovisioned or
  disconnected by its export rule through a pending export (approvals and thresholds
  applying as to any), then the MVO goes;
* **disconnect** breaks one CSO's join as an out-of-scope CSO's is broken: its system's
  values are recalled (or the MVO's deletion rule fires, as on any disconnect) and the
  MVO's export rules are evaluated again. The CSO stays in the connector space, unjoined,
  and remembers it was disconnected by hand (``disconnected_by_hand``, and from which
  MVO: ``disconnected_from_mvo``): sync neither joins nor projects it again, even when
  a join rule matches, until an administrator re-joins or releases it, or it is
  imported anew (a new CSO);
* **re-evaluate** is a full sync of just the MVO's CSOs, of every system;
* **re-join** is the way back from a disconnect: the CSO is joined to an MVO the
  administrator names (the one it was disconnected from, or another of an object type
  a sync rule maps it to, with no CSO of that system yet) — the join rules are not
  asked, that is the point — and the MVO is then re-evaluated, so the CSO's values flow
  and its exports are evaluated as after any join (a CSO out of every import rule's
  scope is disconnected again by that sync, as sync would);
* **release** hands a CSO disconnected by hand back to sync: the mark goes, and the
  next sync of its system (delta or full) joins or projects it by the join rules.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from connectors.activity import ActivityRecorder, RunFailed
from connectors.choices import ActivityPhase, CsoStatus, JoinType, ObjectChangeType
from connectors.models import Activity, ConnectorSpaceObject
from core.bulk import batch_transaction
from metaverse.choices import MvoStatus
from metaverse.models import MetaverseObject, SyncRule
from metaverse.sync.batch import SyncBatch
from metaverse.sync.inbound import disconnect as break_join
from metaverse.sync.order import sync_order
from metaverse.sync.outbound import ExportEvaluator
from metaverse.sync.processor import SyncRun, apply_deletion_rule


class ManualActionError(RunFailed):
    """The action cannot be done on this object (named in the message): the activity
    fails with that message, having changed nothing."""


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

    def _csos(self) -> QuerySet[ConnectorSpaceObject]:
        return ConnectorSpaceObject.objects.filter(metaverse_object_id=self.mvo_id)

    def _cso_levels(self) -> list[list[int]]:
        references = {a for cs_type in self.ruleset.cs_types.values() for a in cs_type.references}
        return sync_order(self._csos(), references)


def sync_cso(cso_id: int) -> Any:
    """The processor that syncs CSO ``cso_id`` as a full sync would: with its MVO's other
    CSOs when it is joined, else alone (the join rules, projection)."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        CsoSync(activity, recorder, cso_id).run()

    return run


class CsoSync(ObjectSync):
    """A full sync of one CSO — of its MVO's CSOs when it is joined, else of it alone
    (the join rules, projection) — without the housekeeping of a whole run."""

    def __init__(self, activity: Activity, recorder: ActivityRecorder, cso_id: int) -> None:
        mvo_id = (
            ConnectorSpaceObject.objects.filter(pk=cso_id)
            .values_list("metaverse_object_id", flat=True)
            .first()
        )
        super().__init__(activity, recorder, mvo_id or 0)
        self.cso_id = cso_id

    def _csos(self) -> QuerySet[ConnectorSpaceObject]:
        if self.mvo_id:
            return super()._csos()
        return ConnectorSpaceObject.objects.filter(pk=self.cso_id)


def rejoin(cso_id: int, mvo_id: int, reason: str) -> Any:
    """The processor that joins CSO ``cso_id``, disconnected by hand, to MVO ``mvo_id``,
    then re-evaluates that MVO."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        sync = ObjectSync(activity, recorder, mvo_id)
        recorder.set_phase(ActivityPhase.SYNCHRONISING)
        try:
            _rejoin(sync, cso_id, mvo_id, _why("re-joined by hand", reason))
        except BaseException:
            sync.targets.close()
            raise
        sync.run()

    return run


def release(cso_id: int, reason: str) -> Any:
    """The processor that hands CSO ``cso_id``, disconnected by hand, back to sync."""

    def run(activity: Activity, recorder: ActivityRecorder) -> None:
        recorder.set_phase(ActivityPhase.SYNCHRONISING)
        with transaction.atomic():
            cso = _locked_cso(cso_id)
            if not cso.disconnected_by_hand:
                raise ManualActionError(
                    f"{describe_cso(cso)} was not disconnected by hand: there is nothing to release"
                )
            ConnectorSpaceObject.objects.filter(pk=cso.pk).update(
                disconnected_by_hand=False, disconnected_from_mvo=None, sync_pending=True
            )
        recorder.item(
            external_id=cso.external_id or cso.secondary_external_id or "",
            cs_object_id=cso.pk,
            message="released to sync: the next sync's join rules decide its join",
            details={"reason": _why("released by hand", reason)},
        )
        recorder.flush()

    return run


def rejoin_refusal(cso: ConnectorSpaceObject, mvo_id: int) -> str:
    """Why ``cso`` cannot be re-joined to MVO ``mvo_id``; '' when it can (three
    queries at most; ``cso`` with its system and object type)."""
    name = describe_cso(cso)
    if cso.metaverse_object_id is not None:
        return (
            f"{name} is joined to metaverse object {cso.metaverse_object_id}; disconnect it first"
        )
    if not cso.disconnected_by_hand:
        return f"{name} was not disconnected by hand: the join rules decide its join"
    if cso.status == CsoStatus.OBSOLETE:
        return f"{name} is obsolete: its system no longer holds it"
    mvo = MetaverseObject.objects.select_related("object_type").filter(pk=mvo_id).first()
    if mvo is None:
        gone = " (the one it was disconnected from, deleted since)"
        return f"there is no metaverse object {mvo_id}" + (
            gone if mvo_id == cso.disconnected_from_mvo else ""
        )
    mapped = SyncRule.objects.filter(
        enabled=True, cs_object_type_id=cso.object_type_id, mv_object_type_id=mvo.object_type_id
    )
    if not mapped.exists():
        return (
            f"no enabled sync rule maps {cso.connected_system.name} {cso.object_type.name} "
            f"objects to metaverse {mvo.object_type.name} objects (metaverse object {mvo_id}, "
            f"{mvo.display_name or 'no name'})"
        )
    other = ConnectorSpaceObject.objects.filter(
        connected_system_id=cso.connected_system_id, metaverse_object_id=mvo_id
    ).first()
    if other is not None:
        return (
            f"metaverse object {mvo_id} ({mvo.display_name or 'no name'}) is already joined "
            f"to connector space object {other.pk} ({other.external_id}) of "
            f"{cso.connected_system.name}: one object per system"
        )
    return ""


def describe_cso(cso: ConnectorSpaceObject) -> str:
    """``connector space object 12 (1001) of HR``."""
    return (
        f"connector space object {cso.pk} ({cso.external_id or cso.secondary_external_id or '-'})"
        f" of {cso.connected_system.name}"
    )


def _locked_cso(cso_id: int) -> ConnectorSpaceObject:
    cso = (
        ConnectorSpaceObject.objects.select_for_update(of=("self",))
        .select_related("connected_system", "object_type")
        .filter(pk=cso_id)
        .first()
    )
    if cso is None:
        raise ManualActionError(f"there is no connector space object {cso_id}")
    return cso


def _rejoin(sync: SyncRun, cso_id: int, mvo_id: int, reason: str) -> None:
    # Not a batch transaction: an administrator's decision is not redone by a later run.
    with transaction.atomic():
        cso = _locked_cso(cso_id)
        refusal = rejoin_refusal(cso, mvo_id)
        if refusal:
            raise ManualActionError(refusal)
        batch = SyncBatch(sync.ruleset, sync.join_index, sync.activity.pk)
        batch.load([cso])
        batch.load_mvos([mvo_id])
        mvo = batch.mvos[mvo_id]
        provisioning = cso.status == CsoStatus.PENDING_PROVISIONING
        batch.join(cso, mvo, JoinType.PROVISIONED if provisioning else JoinType.JOINED)
        cso.disconnected_by_hand = False
        cso.disconnected_from_mvo = None
        cso.sync_pending = True
        if mvo.status == MvoStatus.DELETION_SCHEDULED:  # a source is back, as on a join
            mvo.status, mvo.deletion_due_at = MvoStatus.NORMAL, None
            batch.mvo_changed(mvo)
        batch.commit()
    sync.recorder.item(
        ObjectChangeType.JOINED,
        external_id=cso.external_id or cso.secondary_external_id or "",
        cs_object_id=cso.pk,
        metaverse_object_id=mvo_id,
        details={"reason": reason},
    )


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
        cso.disconnected_from_mvo = mvo.pk
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
