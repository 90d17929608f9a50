"""The sync processor: full and delta sync of one connected system.

Full sync evaluates every CSO of the system; delta sync only those an import changed
since the last sync (``sync_pending``), so its cost grows with the changes. Both go
in batches, each in its own transaction: load what the batch needs (a fixed number of
queries), run inbound sync per CSO (:mod:`metaverse.sync.inbound`), resolve
references, apply deletion rules, evaluate export rules for the MVOs concerned
(:mod:`metaverse.sync.outbound`), write everything in bulk, record RPEIs.

Work that needs every batch done — references to objects of later batches — is
finished in a last pass.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model
from django.utils import timezone

from connectors.activity import ActivityRecorder, write_rpeis
from connectors.choices import ActivityPhase, CsoStatus, JoinType, ObjectChangeType
from connectors.models import Activity, ConnectorSpaceObject
from connectors.value_changes import changes_message, value_changes
from core.bulk import PlannerStatistics, batch_transaction, one_of
from core.writer import PageWriter
from exports import lifecycle
from exports.choices import PendingExportChangeType, PendingExportStatus
from exports.reconciliation import reconcile_changes
from metaverse.choices import MvoStatus
from metaverse.models import MetaverseObject
from metaverse.sync import disabling
from metaverse.sync.batch import SyncBatch
from metaverse.sync.deletion import deletion_due, schedule_or_delete
from metaverse.sync.inbound import (
    Flowed,
    InboundResult,
    ObjectError,
    recall,
    resolve_references,
    sync_inbound,
)
from metaverse.sync.keys import JoinIndex
from metaverse.sync.order import sync_order
from metaverse.sync.outbound import EvaluationResult, ExportEvaluator, TargetIndex
from metaverse.sync.rules import CompiledFlow, CompiledRule, RuleSet

BATCH_SIZE = 1000

PendingReferences = list[tuple[CompiledRule, CompiledFlow, list[int]]]


def run_full_sync(activity: Activity, recorder: ActivityRecorder) -> None:
    """Run profile entry point: sync every CSO of the activity's connected system."""
    SyncRun(activity, recorder, delta=False).run()


def run_delta_sync(activity: Activity, recorder: ActivityRecorder) -> None:
    """Run profile entry point: sync the CSOs changed since the last sync."""
    SyncRun(activity, recorder, delta=True).run()


@dataclass
class _Outcome:
    """What happened to one CSO of the batch, for its RPEI."""

    cso: ConnectorSpaceObject
    inbound: InboundResult | None = None
    error: ObjectError | None = None
    details: dict[str, Any] = field(default_factory=dict)


class SyncRun:
    """One full or delta sync of one connected system."""

    def __init__(self, activity: Activity, recorder: ActivityRecorder, *, delta: bool) -> None:
        self.activity = activity
        self.recorder = recorder
        self.system_id = activity.connected_system_id
        self.delta = delta
        self.ruleset = RuleSet.load()
        self.join_index = JoinIndex()
        self.targets = TargetIndex()
        self.deferred_references: dict[int, PendingReferences] = {}
        self.deferred_exports: set[int] = set()
        self.statistics: dict[type[Model], PlannerStatistics] = {}
        #: the CSOs left marked for sync until the last pass, by MVO id
        self.marked_until_last_pass: dict[int, int] = {}

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.targets.close()

    def _run(self) -> None:
        self.recorder.set_phase(ActivityPhase.SYNCHRONISING)
        self._housekeeping()
        levels = self._cso_levels()
        total = sum(map(len, levels))
        self.recorder.progress(total=total, processed=0, force=True)
        with PageWriter(atomic=batch_transaction) as writer:
            for chunk in _batches(levels):
                with batch_transaction():
                    batch = self._process_batch(chunk, writer)
                self._write_rpeis_behind(writer, batch)
                self.recorder.flush()
                self.recorder.progress(advance=sum(map(len, chunk)))
        self.recorder.set_phase(ActivityPhase.EVALUATING_EXPORTS)
        self._finish_deferred()
        self.recorder.flush()

    def _housekeeping(self) -> None:
        self._delete_expired_disabled()
        self._delete_due_mvos()

    def _write_rpeis_behind(self, writer: PageWriter, batch: SyncBatch) -> None:
        """The batch is committed, its pending exports with it: its RPEIs (a record of
        what it did, not state a later run reads) are written next, behind the next
        batch when the writer can."""
        self._grew(batch.inserted)
        rpeis = self.recorder.take_buffered()
        writer.submit(lambda: write_rpeis(rpeis), lambda: self.recorder.written(rpeis))

    def _cso_levels(self) -> list[list[int]]:
        csos = ConnectorSpaceObject.objects.filter(connected_system_id=self.system_id)
        if self.delta:
            csos = csos.filter(sync_pending=True)
        references = {
            attribute
            for cs_type in self.ruleset.cs_types.values()
            if cs_type.system_id == self.system_id
            for attribute in cs_type.references
        }
        return sync_order(csos, references)

    # -- one batch ------------------------------------------------------------------

    def _grew(self, inserted: dict[type[Model], int]) -> None:
        """Keep the planner's statistics current while a first sync fills the tables."""
        for model in inserted:
            if inserted[model]:
                if model not in self.statistics:
                    self.statistics[model] = PlannerStatistics.of_table(model)
                self.statistics[model].grew(inserted[model])

    def _process_batch(self, levels: list[list[int]], writer: PageWriter) -> SyncBatch:
        """One batch: CSOs of one or more levels of references (see :mod:`.order`)."""
        level_of = {pk: n for n, level in enumerate(levels) for pk in level}
        self.join_index.forget()  # earlier batches' keys are committed: read them back
        csos = list(ConnectorSpaceObject.objects.filter(one_of("id", level_of)).order_by("pk"))
        batch = SyncBatch(self.ruleset, self.join_index, self.activity.pk)
        batch.load(csos)
        batch.load_exports(cso.pk for cso in csos)
        self._prefetch_join_keys(csos)
        outcomes = [self._inbound(batch, cso) for cso in csos]
        batch.create_new_mvos()
        self._resolve_references(batch, outcomes)
        evaluator = ExportEvaluator(batch, self.targets)
        deleted = self._apply_deletion_rules(batch, evaluator, outcomes)
        self._confirm_exports(batch, outcomes)
        self._evaluate_exports(batch, evaluator, outcomes, deleted, level_of)
        batch.hold_exports()
        self._mark_done(batch, outcomes)
        if batch.deleted_csos or batch.deleted_mvos:
            writer.finish()  # the RPEIs in flight may name the objects it deletes
        batch.commit()
        self._record(batch, outcomes, evaluator)
        return batch

    def _mark_done(self, batch: SyncBatch, outcomes: list[_Outcome]) -> None:
        """Clear the sync mark of the CSOs whose work this batch commits. A CSO whose
        MVO waits for the last pass (a reference to an object of a later batch) is
        marked until that pass commits: if the run dies first, the next sync, a delta
        sync included, does that work. A CSO whose MVO's pending export an export run
        is sending (:meth:`SyncBatch.hold_exports`) stays marked for the next sync."""
        for outcome in outcomes:
            cso = outcome.cso
            if outcome.error is not None:
                continue  # left as it was: tried again by the next sync that takes it
            mvo_id = cso.metaverse_object_id
            if mvo_id in self.deferred_references or mvo_id in self.deferred_exports:
                self.marked_until_last_pass[mvo_id] = cso.pk  # waits for the last pass
                keep = True
            else:
                keep = mvo_id in batch.busy_mvos
            if cso.sync_pending != keep:
                cso.sync_pending = keep
                batch.cso_changed(cso)

    def _prefetch_join_keys(self, csos: list[ConnectorSpaceObject]) -> None:
        wanted = []
        for cso in csos:
            if cso.metaverse_object_id or cso.status != CsoStatus.NORMAL:
                continue
            if cso.disconnected_by_hand:
                continue
            for rule in self.ruleset.import_rules.get(cso.object_type_id, []):
                for cs_attribute, mv_attribute in rule.joins:
                    for value in cso.attributes.get(cs_attribute, []):
                        wanted.append((rule.mv_object_type_id, mv_attribute, value))
        self.join_index.prefetch(wanted)

    def _inbound(self, batch: SyncBatch, cso: ConnectorSpaceObject) -> _Outcome:
        """Inbound sync of one CSO; on an error nothing of it is kept."""
        mvo = batch.mvos.get(cso.metaverse_object_id) if cso.metaverse_object_id else None
        saved_mvo = _snapshot(mvo)
        saved_cso = (cso.metaverse_object_id, cso.join_type, cso.joined_at)
        projected = len(batch.new_mvos)
        try:
            result = sync_inbound(batch, cso)
        except ObjectError as exc:
            _restore(mvo, saved_mvo)
            del batch.new_mvos[projected:]
            del batch.projections[projected:]
            if cso.metaverse_object_id and not saved_cso[0]:
                batch.mvo_csos.get(cso.metaverse_object_id, {}).pop(cso.connected_system_id, None)
            cso.metaverse_object = batch.mvos.get(saved_cso[0]) if saved_cso[0] else None
            cso.join_type, cso.joined_at = saved_cso[1], saved_cso[2]
            return _Outcome(cso, error=exc)
        if result.change == ObjectChangeType.PROJECTED and result.mvo is not None:
            batch.register_projection(result.mvo)
        return _Outcome(cso, inbound=result)

    def _resolve_references(self, batch: SyncBatch, outcomes: list[_Outcome]) -> None:
        pending = [r for o in outcomes if (r := o.inbound) is not None and r.pending_references]
        if not pending:
            return
        mvo_of_cso = self._mvo_of_cso(
            batch, {i for r in pending for _, _, ids in r.pending_references for i in ids}
        )
        for result in pending:
            mvo = result.mvo
            assert mvo is not None  # references are only collected by flows into an MVO
            changed, unresolved = resolve_references(
                batch, mvo, result.pending_references, mvo_of_cso, result.flowed
            )
            if changed:
                result.changed_attributes.extend(changed)
                result.mvo_changed = True
                if result.change == ObjectChangeType.NONE:
                    result.change = ObjectChangeType.ATTRIBUTE_FLOW
            if unresolved:
                self.deferred_references[mvo.pk] = unresolved

    def _mvo_of_cso(self, batch: SyncBatch, cso_ids: set[int]) -> dict[int, int | None]:
        known = {i: batch.csos[i].metaverse_object_id for i in cso_ids if i in batch.csos}
        missing = cso_ids - known.keys()
        if missing:
            known.update(
                ConnectorSpaceObject.objects.filter(one_of("id", missing)).values_list(
                    "pk", "metaverse_object_id"
                )
            )
        return known

    def _apply_deletion_rules(
        self, batch: SyncBatch, evaluator: ExportEvaluator, outcomes: list[_Outcome]
    ) -> set[int]:
        deleted: set[int] = set()
        for outcome in outcomes:
            mvo = outcome.inbound.disconnected_mvo if outcome.inbound else None
            if mvo is None or mvo.pk in deleted:
                continue
            if apply_deletion_rule(batch, evaluator, mvo, outcome.cso, outcome.details):
                deleted.add(mvo.pk)
        return deleted

    def _evaluate_exports(
        self,
        batch: SyncBatch,
        evaluator: ExportEvaluator,
        outcomes: list[_Outcome],
        deleted: set[int],
        level_of: dict[int, int],
    ) -> None:
        """Export rules for the MVOs of the batch's CSOs, as far as :func:`_export_scope`
        says.

        Level by level: what a level provisions has its id before the next level's
        references to it are evaluated."""
        Scope = tuple[MetaverseObject, int | None, int | None]
        by_level: dict[int, list[Scope]] = defaultdict(list)
        for outcome in outcomes:
            result = outcome.inbound
            mvo = result.mvo if result is not None else None
            if result is None or mvo is None or mvo.pk in deleted:
                continue
            if mvo.status == MvoStatus.DELETION_SCHEDULED:
                continue
            scope = _export_scope(outcome.cso, mvo, result, self.ruleset)
            by_level[level_of[outcome.cso.pk]].append((mvo, *scope))
        evaluator.prefetch_references([mvo for level in by_level.values() for mvo, *_ in level])
        for level in sorted(by_level):
            for mvo, only_system, drift_of in by_level[level]:
                evaluation = evaluator.evaluate(mvo, only_system=only_system, drift_of=drift_of)
                if evaluation.deferred:
                    self.deferred_exports.add(mvo.pk)
            evaluator.finish_provisioning()
        self._reevaluate_deferred_in_batch(batch, evaluator)

    def _reevaluate_deferred_in_batch(self, batch: SyncBatch, evaluator: ExportEvaluator) -> None:
        """Provisioned in this batch: references to those new CSOs can now be resolved."""
        if not self.deferred_exports or not batch.new_csos:
            return
        for mvo_id in list(self.deferred_exports):
            mvo = batch.mvos.get(mvo_id)
            if mvo is None:
                continue
            evaluator.results.setdefault(mvo_id, EvaluationResult()).deferred = False
            result = evaluator.evaluate(mvo)
            if not result.deferred:
                self.deferred_exports.discard(mvo_id)

    def _confirm_exports(self, batch: SyncBatch, outcomes: list[_Outcome]) -> None:
        """Seed 003: ``export_not_confirmed`` exports of this system checked against the
        CSO's current values: confirmed → deleted; partly → the rest kept, create → update."""
        for outcome in outcomes:
            state = batch.exports.get(outcome.cso.pk)
            if state is None or state.pe is None or state.dirty:
                continue
            if state.pe.status != PendingExportStatus.EXPORT_NOT_CONFIRMED:
                continue
            if state.pe.change_type == PendingExportChangeType.DELETE:
                continue
            multivalued = self.ruleset.cs_types[outcome.cso.object_type_id].multivalued
            exported = [r for r in state.rows if r.status != "pending"]
            if not exported:
                continue
            left, confirmed_any = reconcile_changes(
                copy.deepcopy(state.rows), outcome.cso.attributes, multivalued
            )
            if not left:
                lifecycle.confirm_by_sync(state.pe)
                state.deleted = state.dirty = True
            elif confirmed_any:
                lifecycle.confirm_partly_by_sync(state.pe)
                state.rows = left
                state.dirty = True

    # -- RPEIs ----------------------------------------------------------------------

    def _record(
        self, batch: SyncBatch, outcomes: list[_Outcome], evaluator: ExportEvaluator
    ) -> None:
        """One RPEI per CSO that changed (or failed); none for a CSO that did not."""
        for outcome in outcomes:
            cso = outcome.cso
            system_name = self.ruleset.systems[cso.connected_system_id].name
            external_id = cso.external_id or cso.secondary_external_id or ""
            cso_id = None if cso.pk in batch.deleted_csos else cso.pk
            if outcome.error is not None:
                self.recorder.error(
                    outcome.error.error_type,
                    str(outcome.error),
                    external_id=external_id,
                    cs_object_id=cso_id,
                    metaverse_object_id=_live(batch, cso.metaverse_object_id),
                )
                continue
            result = outcome.inbound
            mvo = result.disconnected_mvo or result.mvo if result else None
            mvo_id = mvo.pk if mvo is not None else None
            evaluation = evaluator.results.get(mvo_id) if mvo_id else None
            effects = evaluation.effects if evaluation else []
            change = result.change if result else ObjectChangeType.NONE
            if change == ObjectChangeType.NONE and any(
                e.system == system_name and e.action in ("update", "delete") for e in effects
            ):
                change = ObjectChangeType.DRIFT_CORRECTION
            if change != ObjectChangeType.NONE or effects:
                details = dict(outcome.details)
                message = ""
                if result and result.mvo and result.changed_attributes:
                    names = sorted(set(result.changed_attributes))
                    details["attributes"] = names
                    details["changes"] = self._value_changes(result.mvo, names, result.flowed)
                    message = changes_message(names)
                if effects:
                    details["exports"] = [effect.detail() for effect in effects]
                self.recorder.item(
                    change,
                    message=message,
                    external_id=external_id,
                    cs_object_id=cso_id,
                    metaverse_object_id=_live(batch, mvo_id),
                    details=details,
                )
            self._record_export_errors(evaluation, external_id, _live(batch, mvo_id))

    def _value_changes(
        self, mvo: MetaverseObject, names: list[str], flowed: Flowed
    ) -> dict[str, dict[str, Any]]:
        """The RPEI's record of the values that flowed into ``mvo`` (references as MVO
        ids), with the sync rule behind each."""
        mv_type = self.ruleset.mv_types[mvo.object_type_id]
        return value_changes(
            names,
            flowed.before,
            mvo.attributes,
            multivalued=mv_type.multivalued,
            references=mv_type.references,
            reference_kind="mvo",
            rules=flowed.rules,
        )

    def _record_export_errors(
        self, evaluation: EvaluationResult | None, external_id: str, mvo_id: int | None
    ) -> None:
        if evaluation is None:
            return
        for error in evaluation.errors:
            self.recorder.error(
                error.error_type,
                str(error),
                external_id=external_id,
                metaverse_object_id=mvo_id,
            )
        evaluation.errors = []

    # -- whole-run steps --------------------------------------------------------------

    def _finish_deferred(self) -> None:
        """References to objects of later batches, resolved now that every batch is done:
        BATCH_SIZE MVOs at a time, each batch in its own transaction (a few percent of
        the MVOs of a first sync wait here; loaded at once they were its peak memory).
        Each batch clears the sync marks its work completes (see :meth:`_mark_done`)."""
        mvo_ids = sorted(set(self.deferred_references) | self.deferred_exports)
        marked = self.marked_until_last_pass
        waiting = set(mvo_ids)
        finished_earlier = [marked.pop(i) for i in list(marked) if i not in waiting]
        _unmark(finished_earlier)  # a later batch of the run resolved what they waited for
        for start in range(0, len(mvo_ids), BATCH_SIZE):
            chunk = mvo_ids[start : start + BATCH_SIZE]
            with batch_transaction():
                busy = self._finish_deferred_batch(chunk)
                _unmark([marked.pop(i) for i in chunk if i in marked and i not in busy])
            self.recorder.flush()
        self.deferred_references, self.deferred_exports = {}, set()

    def _finish_deferred_batch(self, mvo_ids: list[int]) -> set[int | None]:
        """Finish these MVOs; returns those whose exports another run holds (their CSOs
        stay marked for the next sync)."""
        batch = SyncBatch(self.ruleset, self.join_index, self.activity.pk)
        batch.load_mvos(mvo_ids)
        pending_of = {
            i: self.deferred_references[i] for i in mvo_ids if i in self.deferred_references
        }
        cso_ids = {i for refs in pending_of.values() for _, _, ids in refs for i in ids}
        mvo_of_cso = self._mvo_of_cso(batch, cso_ids)
        flowed_into: dict[int, Flowed] = {}  # the MVOs the references changed
        for mvo_id, pending in pending_of.items():
            mvo = batch.mvos.get(mvo_id)
            if mvo is None:
                continue
            resolved = Flowed()
            changed, _ = resolve_references(batch, mvo, pending, mvo_of_cso, resolved)
            if changed:
                flowed_into[mvo_id] = resolved
        evaluator = ExportEvaluator(batch, self.targets)
        to_evaluate = [batch.mvos[i] for i in mvo_ids if i in batch.mvos]
        evaluator.prefetch_references(to_evaluate)
        for mvo in to_evaluate:
            evaluator.evaluate(mvo, final=True)
        evaluator.finish_provisioning()
        batch.hold_exports()
        batch.commit()
        for mvo in to_evaluate:
            evaluation = evaluator.results.get(mvo.pk)
            flowed = flowed_into.get(mvo.pk)
            if flowed or (evaluation and evaluation.effects):
                details: dict[str, Any] = {"deferred_references": True}
                message = ""
                if flowed:
                    names = sorted(flowed.before)  # the attributes that changed
                    details["attributes"] = names
                    details["changes"] = self._value_changes(mvo, names, flowed)
                    message = changes_message(names)
                if evaluation and evaluation.effects:
                    details["exports"] = [
                        {"system": e.system, "action": e.action} for e in evaluation.effects
                    ]
                self.recorder.item(
                    ObjectChangeType.ATTRIBUTE_FLOW,
                    message=message,
                    external_id=mvo.display_name,
                    metaverse_object_id=mvo.pk,
                    details=details,
                )
            self._record_export_errors(evaluation, mvo.display_name, mvo.pk)
        return batch.busy_mvos

    def _delete_due_mvos(self) -> None:
        """Housekeeping: MVOs whose deletion grace period has passed are deleted now."""
        due = list(
            MetaverseObject.objects.filter(
                status=MvoStatus.DELETION_SCHEDULED, deletion_due_at__lte=timezone.now()
            ).values_list("pk", flat=True)
        )
        self.delete_mvos(due, "grace period ended")

    def delete_mvos(self, due: list[int], reason: str) -> None:
        """Delete these MVOs as a deletion rule does: every CSO joined to them is
        deprovisioned or disconnected by its export rule, then the MVO goes (or is kept,
        due, while one of its exports is being sent, or for its disabled accounts)."""
        for start in range(0, len(due), BATCH_SIZE):
            with batch_transaction():
                batch = SyncBatch(self.ruleset, self.join_index, self.activity.pk)
                batch.load_mvos(due[start : start + BATCH_SIZE])
                evaluator = ExportEvaluator(batch, self.targets)
                for mvo in batch.mvos.values():
                    batch.deleted_mvos.add(mvo.pk)
                    evaluator.deprovision_all(mvo)
                batch.hold_exports()
                batch.commit()
            for mvo in batch.mvos.values():
                self._record_export_errors(evaluator.results.get(mvo.pk), mvo.display_name, None)
                if mvo.pk in batch.busy_mvos or disabling.is_kept(mvo):
                    continue  # still due (the next sync deletes it), or kept for its
                    # disabled accounts
                details: dict[str, Any] = {"metaverse_object_deleted": True, "reason": reason}
                evaluation = evaluator.results.get(mvo.pk)
                if evaluation is not None and evaluation.effects:
                    details["exports"] = [effect.detail() for effect in evaluation.effects]
                self.recorder.item(
                    ObjectChangeType.DELETED, external_id=mvo.display_name, details=details
                )
            self.recorder.flush()

    def _delete_expired_disabled(self) -> None:
        """Housekeeping: accounts disabled for their rule's ``delete_after_days`` are
        deleted now (:mod:`metaverse.sync.disabling`)."""
        expired = disabling.expired(self.ruleset, timezone.now())
        mvo_ids = sorted(expired)
        for start in range(0, len(mvo_ids), BATCH_SIZE):
            with batch_transaction():
                batch = SyncBatch(self.ruleset, self.join_index, self.activity.pk)
                batch.load_mvos(mvo_ids[start : start + BATCH_SIZE])
                evaluator = ExportEvaluator(batch, self.targets)
                for mvo in batch.mvos.values():
                    disabling.delete_expired(evaluator, mvo, expired[mvo.pk])
                batch.hold_exports()
                batch.commit()
            for mvo in batch.mvos.values():
                evaluation = evaluator.results.get(mvo.pk)
                if evaluation is not None and evaluation.effects:
                    self.recorder.item(
                        ObjectChangeType.DELETED
                        if mvo.pk in batch.deleted_mvos
                        else ObjectChangeType.UPDATED,
                        external_id=mvo.display_name,
                        metaverse_object_id=_live(batch, mvo.pk),
                        details={
                            "reason": "disabled for delete_after_days",
                            "metaverse_object_deleted": mvo.pk in batch.deleted_mvos,
                            "exports": [
                                {"system": e.system, "action": e.action, "dn": e.dn}
                                for e in evaluation.effects
                            ],
                        },
                    )
                self._record_export_errors(evaluation, mvo.display_name, _live(batch, mvo.pk))
            self.recorder.flush()


def apply_deletion_rule(
    batch: SyncBatch,
    evaluator: ExportEvaluator,
    mvo: MetaverseObject,
    cso: ConnectorSpaceObject,
    details: dict[str, Any],
) -> bool:
    """``cso`` was just disconnected from ``mvo``: recall its system's values, or
    schedule or carry out the MVO's deletion as its deletion rule says (``details``,
    for the RPEI, say which). True when the MVO is deleted in this batch."""
    system_id = cso.connected_system_id
    if not deletion_due(batch, mvo, system_id):
        recall(batch, mvo, system_id)
        return False
    if schedule_or_delete(batch, mvo):
        evaluator.deprovision_all(mvo)
        if disabling.is_kept(mvo):
            details["metaverse_object_kept"] = "disabled accounts"
        else:
            details["metaverse_object_deleted"] = True
        return True
    due = mvo.deletion_due_at
    assert due is not None  # scheduled, now or before, always with its due date
    details["metaverse_object_deletion_due"] = due.isoformat()
    return False


def _export_scope(
    cso: ConnectorSpaceObject, mvo: MetaverseObject, result: InboundResult, ruleset: RuleSet
) -> tuple[int | None, int | None]:
    """Which export rules to evaluate for the MVO of a synced CSO, as ``(only_system,
    drift_of)`` for :meth:`ExportEvaluator.evaluate` — in full and delta syncs alike
    (seed 003's ``enforce_state``):

    * a CSO of a source — it projected its MVO, or its system is no target of the
      MVO's export rules — or a CSO that joined in this run: every rule. A source CSO
      is re-evaluated even when nothing flowed: it was marked for sync, perhaps by a
      run that died before its last pass (see :meth:`SyncRun._mark_done`); a full
      sync of a source is also how a changed export rule reaches its objects.
    * a CSO of a target system: what differs between it and the metaverse is drift
      in that system, corrected only by the system's ``enforce_state`` rules; when
      its MVO changed, the change flows out to the other systems too.
    """
    system_id = cso.connected_system_id
    targets = {rule.system_id for rule in ruleset.export_rules.get(mvo.object_type_id, [])}
    if (
        cso.join_type == JoinType.PROJECTED
        or result.change in (ObjectChangeType.PROJECTED, ObjectChangeType.JOINED)
        or system_id not in targets
    ):
        return None, None
    changed = result.mvo_changed or result.change != ObjectChangeType.NONE
    return (None if changed else system_id), system_id


def _batches(levels: list[list[int]]) -> Iterator[list[list[int]]]:
    """Batches of at most BATCH_SIZE CSOs, each as the levels of references it holds."""
    batch: list[list[int]] = []
    room = BATCH_SIZE
    for level in levels:
        start = 0
        while start < len(level):
            part = level[start : start + room]
            batch.append(part)
            start += len(part)
            room -= len(part)
            if not room:
                yield batch
                batch, room = [], BATCH_SIZE
    if batch:
        yield batch


def _unmark(cso_ids: list[int]) -> None:
    if cso_ids:
        ConnectorSpaceObject.objects.filter(one_of("id", cso_ids)).update(sync_pending=False)


def _live(batch: SyncBatch, mvo_id: int | None) -> int | None:
    """The MVO id for an RPEI, or None when the batch deleted that MVO."""
    return None if mvo_id in batch.deleted_mvos else mvo_id


def _snapshot(mvo: MetaverseObject | None) -> tuple[Any, ...] | None:
    if mvo is None:
        return None
    return (
        {name: list(values) for name, values in mvo.attributes.items()},
        {name: dict(source) for name, source in mvo.attribute_sources.items()},
        mvo.display_name,
        mvo.status,
        mvo.deletion_due_at,
    )


def _restore(mvo: MetaverseObject | None, saved: tuple[Any, ...] | None) -> None:
    if mvo is None or saved is None:
        return
    (
        mvo.attributes,
        mvo.attribute_sources,
        mvo.display_name,
        mvo.status,
        mvo.deletion_due_at,
    ) = saved
