"""Export evaluation: from a changed MVO to the pending exports of its target systems.

For each export rule of the MVO's type (seeds 001 and 003):

* in scope, no CSO in the target, ``provision`` → join the target's CSO that already
  exists (by the target's import join rules, by external id or by DN) and export only
  the differences; otherwise a ``pending_provisioning`` CSO with the DN from the
  template and a ``create`` pending export holding every flowed attribute;
* in scope, CSO exists → the target values are computed once, from the metaverse, and
  compared with the CSO's values; the differences become the pending export's
  attribute changes (per value for multi-valued attributes), merged into the CSO's one
  open pending export; nothing is staged twice and a rerun stages nothing;
* out of scope (or the MVO is deleted) → a ``delete`` for CSOs JIM provisioned when the
  rule says delete (a create not yet sent is cancelled instead), a disable then a
  delete when it says disable (:mod:`metaverse.sync.disabling`), otherwise a disconnect.

No value is sent back to the system that contributed it (circular sync). What a
pending export's status becomes is the lifecycle's (:mod:`exports.lifecycle`: stage,
cancel); the batch writes it (:meth:`SyncBatch.commit`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from connectors.choices import CsoStatus, JoinType, RpeiErrorType
from connectors.models import ConnectorSpaceObject
from core.bulk import new_instance, one_of
from exports import lifecycle
from exports.approval import initial_approval
from exports.choices import (
    ApprovalState,
    AttributeChangeStatus,
    AttributeChangeType,
    PendingExportChangeType,
    PendingExportStatus,
)
from exports.models import PendingExport
from metaverse.choices import DeprovisionAction
from metaverse.expressions import AttributeView, ExpressionError
from metaverse.models import MetaverseObject
from metaverse.sync import disabling
from metaverse.sync.batch import ChangeRow, ExportState, SyncBatch
from metaverse.sync.inbound import (
    ObjectError,
    cs_view,
    disconnect,
    flow_values,
    in_scope,
    mv_view,
    recall,
    values_of,
)
from metaverse.sync.keys import normalise_key
from metaverse.sync.rules import CompiledRule
from metaverse.sync.unique import UniqueValues
from metaverse.sync.writability import READ_ONLY, read_only_errors, written_once

#: A reference whose target object does not exist in the target system yet.
DEFERRED = object()
#: An attribute the target system contributes to the MVO: never sent back to it.
CIRCULAR = object()


@dataclass
class ExportEffect:
    """What export evaluation did for one MVO and rule, for the RPEI's details."""

    system: str
    action: str  # create, update, delete, cancel, join, disconnect
    dn: str = ""

    def detail(self) -> dict[str, str]:
        """The effect as an RPEI's details list it (the DN only when there is one)."""
        return {
            "system": self.system,
            "action": self.action,
            **({"dn": self.dn} if self.dn else {}),
        }


@dataclass
class ProvisionRequest:
    mvo: MetaverseObject
    rule: CompiledRule
    desired: dict[str, Any]
    dn: str | None
    external_id: str | None
    #: the attributes whose values ``unique(...)`` chose
    unique: frozenset[str] = frozenset()


@dataclass
class EvaluationResult:
    effects: list[ExportEffect] = field(default_factory=list)
    errors: list[ObjectError] = field(default_factory=list)
    deferred: bool = False


class TargetIndex:
    """The CSOs of target systems, looked up once per run: unjoined ones by
    join-attribute value, all of them by DN key and external id.

    Used to find the account a target system already has for an MVO before
    provisioning a new one; the CSOs the run provisions are added as it goes. What
    another run imports into the target meanwhile is found by the next sync (and an
    export of a DN that exists by then is refused by the target, not duplicated).
    """

    def __init__(self) -> None:
        self._index: dict[tuple[int, str], dict[str, set[int]]] = {}
        self._identities: dict[int, dict[tuple[str, str], int]] = {}
        self.taken: set[int] = set()
        self.unique = UniqueValues()

    def close(self) -> None:
        """Close what the run opened in target systems (``unique`` lookups)."""
        self.unique.close()

    def identified(self, system_id: int, kind: str, key: str) -> int | None:
        """The id of the system's CSO with this DN key (``kind`` "dn") or external id
        ("id"), if the run knows one."""
        table = self._identities.get(system_id)
        if table is None:
            table = self._identities[system_id] = {}
            rows = ConnectorSpaceObject.objects.filter(connected_system_id=system_id)
            for pk, dn_key, external_id in rows.values_list(
                "pk", "secondary_external_id_key", "external_id"
            ):
                self._remember(table, pk, dn_key, external_id)
        return table.get((kind, key))

    def provisioned(self, cso: ConnectorSpaceObject) -> None:
        """Record a CSO the run provisioned (its id just given)."""
        table = self._identities.get(cso.connected_system_id)
        if table is not None:
            self._remember(table, cso.pk, cso.secondary_external_id_key, cso.external_id)

    @staticmethod
    def _remember(
        table: dict[tuple[str, str], int], pk: int, dn_key: str | None, external_id: str | None
    ) -> None:
        if dn_key:
            table[("dn", dn_key)] = pk
        if external_id:
            table[("id", external_id)] = pk

    def find(self, cs_type_id: int, attribute: str, values: list[Any]) -> set[int]:
        index = self._index.get((cs_type_id, attribute))
        if index is None:
            index = self._build(cs_type_id, attribute)
        found: set[int] = set()
        for value in values:
            found |= index.get(normalise_key(value), set())
        return found - self.taken

    def _build(self, cs_type_id: int, attribute: str) -> dict[str, set[int]]:
        index: dict[str, set[int]] = defaultdict(set)
        rows = ConnectorSpaceObject.objects.filter(
            object_type_id=cs_type_id,
            metaverse_object__isnull=True,
            status=CsoStatus.NORMAL,
            disconnected_by_hand=False,
        ).values_list("pk", f"attributes__{attribute}")
        for pk, values in rows:
            for value in values_of(values):
                index[normalise_key(value)].add(pk)
        self._index[(cs_type_id, attribute)] = index
        return index


class ExportEvaluator:
    """Evaluates export rules for the MVOs of one batch."""

    def __init__(self, batch: SyncBatch, targets: TargetIndex) -> None:
        self.batch = batch
        self.ruleset = batch.ruleset
        self.targets = targets
        self.requests: list[ProvisionRequest] = []
        self.results: dict[int, EvaluationResult] = {}
        self._reference_targets: dict[tuple[int, int], int] = {}
        self._dn_keys: dict[tuple[int, str], str] = {}
        #: (target system, DN key) of the objects this batch provisions
        self._claimed_dns: set[tuple[int, str]] = set()

    # -- entry points ---------------------------------------------------------------

    def evaluate(
        self,
        mvo: MetaverseObject,
        *,
        only_system: int | None = None,
        drift_of: int | None = None,
        final: bool = False,
    ) -> EvaluationResult:
        """Evaluate the export rules of ``mvo`` (optionally only one target system).

        ``drift_of`` is the system being synced, when ``mvo`` is evaluated for one of
        that system's own (joined or provisioned) CSOs: what differs there now is
        drift in that system, so its rules are evaluated only when they enforce state
        (seed 003); the attributes it contributes itself are never sent back to it.
        """
        result = self.results.setdefault(mvo.pk, EvaluationResult())
        for rule in self.ruleset.export_rules.get(mvo.object_type_id, []):
            if only_system is not None and rule.system_id != only_system:
                continue
            if rule.system_id == drift_of and not rule.enforce_state:
                continue
            try:
                self._evaluate_rule(mvo, rule, result, final=final)
            except ObjectError as exc:
                result.errors.append(exc)
        return result

    def deprovision_all(self, mvo: MetaverseObject) -> EvaluationResult:
        """The MVO is being deleted: deprovision or disconnect every CSO joined to it."""
        result = self.results.setdefault(mvo.pk, EvaluationResult())
        rules = {r.system_id: r for r in self.ruleset.export_rules.get(mvo.object_type_id, [])}
        for system_id, cso in list(self.batch.mvo_csos.get(mvo.pk, {}).items()):
            rule = rules.get(system_id)
            try:
                effect = self._deprovision(cso, rule, mvo, mvo_deleted=True)
            except ObjectError as exc:  # a disable's DN template failed
                result.errors.append(exc)
                # kept, due now (SyncBatch._postpone_busy_deletions): the next sync retries
                self.batch.busy_mvos.add(mvo.pk)
                continue
            if effect:
                result.effects.append(effect)
        disabling.keep_for_disabled_accounts(self.batch, mvo)
        return result

    def prefetch_references(self, mvos: list[MetaverseObject]) -> None:
        """Load, in one query, the target CSOs that the MVOs' references point at."""
        wanted: set[int] = set()
        for mvo in mvos:
            info = self.ruleset.mv_types[mvo.object_type_id]
            for attribute in info.references:
                wanted.update(v for v in mvo.attributes.get(attribute, []) if isinstance(v, int))
        wanted -= {mvo_id for mvo_id, _ in self._reference_targets}
        if not wanted:
            return
        rows = ConnectorSpaceObject.objects.filter(
            one_of("metaverse_object_id", wanted)
        ).values_list("metaverse_object_id", "connected_system_id", "pk")
        for mvo_id, system_id, pk in rows:
            self._reference_targets[(mvo_id, system_id)] = pk

    # -- one rule -------------------------------------------------------------------

    def _evaluate_rule(
        self, mvo: MetaverseObject, rule: CompiledRule, result: EvaluationResult, *, final: bool
    ) -> None:
        cso = self.batch.mvo_csos.get(mvo.pk, {}).get(rule.system_id)
        cs = cs_view(self.batch, cso) if cso is not None else AttributeView({})
        if not in_scope(rule, cs, mv_view(self.batch, mvo)):
            if cso is not None:
                effect = self._deprovision(cso, rule, mvo, mvo_deleted=False)
                if effect:
                    result.effects.append(effect)
            return
        desired = self._desired(mvo, rule, final=final)
        if any(v is DEFERRED for v in desired.values()):
            result.deferred = True
        result.errors.extend(read_only_errors(rule, self._system_name(rule), desired))
        if cso is None:
            if rule.provision:
                unique = self.targets.unique.resolve(self.batch, rule, mvo.pk, None, desired)
                self.requests.append(
                    ProvisionRequest(
                        mvo,
                        rule,
                        desired,
                        self._dn(mvo, rule),
                        self._external_id(rule, desired),
                        unique,
                    )
                )
            return
        if cso.join_type == JoinType.PROJECTED:
            return  # the MVO's own source; export rules never write back to it
        self.targets.unique.resolve(self.batch, rule, mvo.pk, cso, desired)
        if rule.deprovision_action == DeprovisionAction.DISABLE:
            disabling.restore(self, cso, rule, desired)  # a returner: re-enabled
        action = self._stage(cso, rule, desired, self._dn(mvo, rule), mvo)
        if action:
            result.effects.append(ExportEffect(self._system_name(rule), action))

    def _desired(self, mvo: MetaverseObject, rule: CompiledRule, *, final: bool) -> dict[str, Any]:
        """The target values of every flow of the rule, computed from the metaverse."""
        mv_type = self.ruleset.mv_types[mvo.object_type_id]
        cs_type = self.ruleset.cs_types[rule.cs_object_type_id]
        mv = mv_view(self.batch, mvo)
        desired: dict[str, Any] = {}
        for flow in rule.flows:
            if flow.target in cs_type.read_only:
                desired[flow.target] = READ_ONLY
                continue
            if any(
                mvo.attribute_sources.get(a, {}).get("system") == rule.system_id
                for a in flow.mv_reads
            ):
                desired[flow.target] = CIRCULAR
                continue
            if flow.expression is not None:
                values = flow_values(rule, flow, AttributeView({}), mv)
            elif flow.source in mv_type.references:
                values = self._reference_values(mvo.attributes.get(flow.source, []), rule, final)
                if values is DEFERRED:
                    desired[flow.target] = DEFERRED
                    continue
            else:
                values = list(mvo.attributes.get(flow.source, []))
            if flow.target not in cs_type.multivalued:
                values = values[:1]
            desired[flow.target] = values
        return desired

    def _reference_values(self, mvo_ids: list[Any], rule: CompiledRule, final: bool) -> Any:
        values = []
        for mvo_id in mvo_ids:
            target = self._reference_targets.get((mvo_id, rule.system_id))
            if target is None:
                target = self._reference_in_batch(mvo_id, rule.system_id)
            if target is None:
                if not final:
                    return DEFERRED
                continue
            values.append(target)
        return values

    def _reference_in_batch(self, mvo_id: int, system_id: int) -> int | None:
        cso = self.batch.mvo_csos.get(mvo_id, {}).get(system_id)
        return cso.pk if cso is not None and cso.pk else None

    def _dn(self, mvo: MetaverseObject, rule: CompiledRule) -> str | None:
        if rule.dn_template is None:
            return None
        try:
            dn = rule.dn_template.render(mv=mv_view(self.batch, mvo))
        except ExpressionError as exc:
            raise ObjectError(
                RpeiErrorType.EXPRESSION_ERROR,
                f"sync rule {rule.name!r}: DN template {rule.dn_template.source!r} failed: {exc}",
            ) from None
        problem = self.ruleset.systems[rule.system_id].connector.secondary_id_error(dn)
        if problem:
            raise ObjectError(
                RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
                f"sync rule {rule.name!r}: generated DN {dn!r} is not valid: {problem}",
            )
        return dn

    def _external_id(self, rule: CompiledRule, desired: dict[str, Any]) -> str | None:
        attribute = self.ruleset.cs_types[rule.cs_object_type_id].external_id_attribute
        values = desired.get(attribute)
        if not isinstance(values, list) or not values:
            return None
        return str(values[0]).strip() or None

    def _dn_key(self, system_id: int, dn: str) -> str:
        """The connector's normalised form of a DN (parsed once per run and DN)."""
        key = self._dn_keys.get((system_id, dn))
        if key is None:
            key = self.ruleset.systems[system_id].connector.secondary_id_key(dn)
            self._dn_keys[(system_id, dn)] = key
        return key

    def _system_name(self, rule: CompiledRule) -> str:
        return self.ruleset.systems[rule.system_id].name

    # -- staging changes ------------------------------------------------------------

    def _stage(
        self,
        cso: ConnectorSpaceObject,
        rule: CompiledRule,
        desired: dict[str, Any],
        dn: str | None,
        mvo: MetaverseObject,
    ) -> str:
        """Merge the differences between ``desired`` and the CSO into its pending export.

        Returns the pending export's change type when it changed, "" otherwise.
        """
        state = self.batch.export_state(cso)
        pe = state.pe
        if pe is not None and pe.status == PendingExportStatus.EXECUTING:
            self.batch.busy_mvos.add(mvo.pk)  # being sent: the next sync stages this
            return ""
        cs_type = self.ruleset.cs_types[cso.object_type_id]
        new_dn = ""
        if (
            dn
            and cso.secondary_external_id
            and self._dn_key(rule.system_id, dn) != cso.secondary_external_id_key
        ):
            new_dn = dn
        creating = cso.status == CsoStatus.PENDING_PROVISIONING and _create_not_sent(cso, pe)
        if creating and new_dn:
            # Not created yet: the new DN is simply the DN to create with.
            cso.secondary_external_id = new_dn
            cso.secondary_external_id_key = self._dn_key(rule.system_id, new_dn)
            self.batch.cso_changed(cso)
            new_dn = ""
        if not creating:
            desired = written_once(desired, cs_type.write_once, cso.attributes, DEFERRED)
        rows = diff_rows(cso.attributes, desired, cs_type.multivalued)
        merged = merge_rows(state.rows, rows, desired)
        old_dn = pe.dn if pe is not None else ""
        change_type = PendingExportChangeType.CREATE if creating else PendingExportChangeType.UPDATE
        target_dn = (cso.secondary_external_id or "") if creating else new_dn
        if (
            pe is not None
            and _contents(merged) == _contents(state.rows)
            and (
                (pe.change_type == change_type and (old_dn or "") == (target_dn or ""))
                or (pe.status == PendingExportStatus.EXPORTED and not target_dn)
            )
        ):
            # Nothing new. An exported export stays as it is, awaiting its confirming
            # import: what it sent is on the CSO already (applied when sent).
            return ""
        if not merged and not target_dn:
            if pe is not None:
                lifecycle.cancel(pe)
                state.deleted = state.dirty = True
                return "cancel"
            return ""
        self._write(state, cso, rule, mvo, change_type, merged, target_dn)
        return change_type

    def _write(
        self,
        state: ExportState,
        cso: ConnectorSpaceObject,
        rule: CompiledRule,
        mvo: MetaverseObject | None,
        change_type: str,
        rows: list[ChangeRow],
        dn: str,
        *,
        approval_as: str | None = None,
    ) -> None:
        """Set a CSO's pending export to these changes: pending, approval per policy
        (for the change type ``approval_as`` when given: a disable is approved as a
        delete)."""
        system = self.ruleset.systems[rule.system_id]
        pe = state.pe
        if pe is None:
            pe = new_instance(
                PendingExport,
                connected_system_id=cso.connected_system_id,
                created_by_activity_id=self.batch.activity_id,
                max_retries=system.max_retries,
            )
            state.pe = pe
        lifecycle.stage(
            pe,
            change_type=change_type,
            dn=dn,
            approval=initial_approval(system.approval_mode, approval_as or change_type),
        )
        lifecycle.restage_changes(rows)
        pe.metaverse_object_id = mvo.pk if mvo is not None else None
        pe.sync_rule_id = rule.id
        pe.identity = {}  # a delete's (or disable's) own, set by _deprovision
        pe.disables = False  # a disable's own, set by disabling.disable
        state.rows = rows
        state.deleted = False
        state.dirty = True

    def _deprovision(
        self,
        cso: ConnectorSpaceObject,
        rule: CompiledRule | None,
        mvo: MetaverseObject,
        *,
        mvo_deleted: bool,
    ) -> ExportEffect | None:
        """The MVO left the rule's scope (or is deleted): delete, disable or disconnect
        its CSO."""
        system = self.ruleset.systems[cso.connected_system_id].name
        deletes = (
            rule is not None
            and cso.join_type == JoinType.PROVISIONED
            and rule.deprovision_action in (DeprovisionAction.DELETE, DeprovisionAction.DISABLE)
        )
        if not deletes:
            if cso.join_type == JoinType.PROJECTED and not mvo_deleted:
                return None
            disconnect(self.batch, cso)
            if not mvo_deleted:
                recall(self.batch, mvo, cso.connected_system_id)
            return ExportEffect(system, "disconnect", cso.secondary_external_id or "")
        state = self.batch.export_state(cso)
        pe = state.pe
        if pe is not None and pe.status == PendingExportStatus.EXECUTING:
            self.batch.busy_mvos.add(mvo.pk)  # being sent: the next sync deprovisions
            return None
        never_created = cso.status == CsoStatus.PENDING_PROVISIONING and _create_not_sent(cso, pe)
        if never_created:
            if pe is not None:
                lifecycle.cancel(pe)  # deleted with its CSO
            self.batch.disconnect(cso)
            self.batch.deleted_csos.add(cso.pk)
            return ExportEffect(system, "cancel", cso.secondary_external_id or "")
        assert rule is not None
        if rule.deprovision_action == DeprovisionAction.DISABLE and not disabling.window_passed(
            rule, cso, self.batch.now
        ):
            action = disabling.disable(self, cso, rule, mvo, mvo_deleted=mvo_deleted)
            return ExportEffect(system, action, cso.secondary_external_id or "") if action else None
        if mvo_deleted:
            self.batch.disconnect(cso)
        if pe is not None and pe.change_type == PendingExportChangeType.DELETE:
            return None
        if pe is not None and pe.approval == ApprovalState.REJECTED and not state.rows:
            return None
        self._write(state, cso, rule, None if mvo_deleted else mvo, "delete", [], "")
        assert state.pe is not None
        state.pe.identity = self._identity(mvo, mvo_deleted=mvo_deleted)
        return ExportEffect(system, "delete", cso.secondary_external_id or "")

    def _identity(self, mvo: MetaverseObject, *, mvo_deleted: bool) -> dict[str, Any]:
        """Whom a delete deletes, and why, kept on the pending export: the approver
        reads it when the MVO is gone (a few values: its name and join-key values)."""
        keys = sorted(self.ruleset.join_attributes.get(mvo.object_type_id, frozenset()))
        return {
            "metaverse_object": mvo.pk,
            "name": mvo.display_name,
            "object_type": self.ruleset.mv_types[mvo.object_type_id].name,
            "ids": {k: str(mvo.attributes[k][0]) for k in keys if mvo.attributes.get(k)},
            "reason": "metaverse_object_deleted" if mvo_deleted else "out_of_scope",
        }

    # -- provisioning ---------------------------------------------------------------

    def finish_provisioning(self) -> None:
        """Resolve this batch's provisioning requests with one lookup per target system."""
        requests, self.requests = self.requests, []
        if not requests:
            return
        existing = self._existing_targets(requests)
        for request in requests:
            try:
                self._provision(request, existing)
            except ObjectError as exc:
                self.results.setdefault(request.mvo.pk, EvaluationResult()).errors.append(exc)
        for cso in self.batch.assign_new_cso_ids():
            self.targets.provisioned(cso)

    def _existing_targets(
        self, requests: list[ProvisionRequest]
    ) -> dict[tuple[int, str, str], ConnectorSpaceObject]:
        """Target CSOs that already have a requested DN or external id."""
        by_system: dict[int, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
        for request in requests:
            keys, ids = by_system[request.rule.system_id]
            if request.dn:
                keys.add(self._dn_key(request.rule.system_id, request.dn))
            if request.external_id:
                ids.add(request.external_id)
        wanted: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        for system_id, (keys, ids) in by_system.items():
            for kind, values in (("dn", keys), ("id", ids)):
                for key in values:
                    pk = self.targets.identified(system_id, kind, key)
                    if pk is not None:
                        wanted[pk].append((system_id, kind, key))
        if not wanted:
            return {}
        known = {pk: self.batch.csos[pk] for pk in wanted if pk in self.batch.csos}
        missing = [pk for pk in wanted if pk not in known]
        if missing:
            known.update(
                (cso.pk, cso) for cso in ConnectorSpaceObject.objects.filter(one_of("id", missing))
            )
        # A CSO deleted since the run looked it up is simply not there any more.
        return {
            where: known[pk] for pk, places in wanted.items() if pk in known for where in places
        }

    def _provision(
        self,
        request: ProvisionRequest,
        existing: dict[tuple[int, str, str], ConnectorSpaceObject],
    ) -> None:
        mvo, rule = request.mvo, request.rule
        system_id = rule.system_id
        if system_id in self.batch.mvo_csos.get(mvo.pk, {}):
            return  # joined or provisioned meanwhile (an earlier rule of this batch)
        dn_key = self._dn_key(system_id, request.dn) if request.dn else None
        candidate = self._join_candidate(mvo, rule)
        for key in (("id", request.external_id), ("dn", dn_key)):
            if candidate is None and key[1]:
                candidate = existing.get((system_id, key[0], key[1]))
        result = self.results.setdefault(mvo.pk, EvaluationResult())
        if candidate is not None:
            if candidate.disconnected_by_hand:
                raise ObjectError(
                    RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
                    f"sync rule {rule.name!r}: {candidate} in {self._system_name(rule)} was "
                    "disconnected by an administrator; it is not joined again nor another "
                    "object provisioned in its place",
                )
            if candidate.metaverse_object_id and candidate.metaverse_object_id != mvo.pk:
                raise ObjectError(
                    RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
                    f"sync rule {rule.name!r}: {candidate} already exists in "
                    f"{self._system_name(rule)} and is joined to another metaverse object",
                )
            self.targets.taken.add(candidate.pk)
            self.targets.unique.adopt(
                self.batch, rule, mvo.pk, candidate, request.desired, request.unique
            )
            self.batch.csos.setdefault(candidate.pk, candidate)
            self.batch.join(candidate, mvo, JoinType.JOINED)
            result.effects.append(ExportEffect(self._system_name(rule), "join", str(candidate)))
            action = self._stage(candidate, rule, request.desired, request.dn, mvo)
            if action:
                result.effects.append(ExportEffect(self._system_name(rule), action))
            return
        if dn_key and (system_id, dn_key) in self._claimed_dns:
            raise ObjectError(
                RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
                f"sync rule {rule.name!r}: generated DN {request.dn!r} is also generated for "
                "another metaverse object in this run",
            )
        if dn_key:
            self._claimed_dns.add((system_id, dn_key))
        cso = new_instance(
            ConnectorSpaceObject,
            connected_system_id=system_id,
            object_type_id=rule.cs_object_type_id,
            external_id=request.external_id,
            secondary_external_id=request.dn,
            secondary_external_id_key=dn_key,
            status=CsoStatus.PENDING_PROVISIONING,
            join_type=JoinType.PROVISIONED,
            metaverse_object_id=mvo.pk,
            joined_at=self.batch.now,
            attributes={},
            sync_pending=False,
        )
        self.batch.new_csos.append(cso)
        self.batch.mvo_csos.setdefault(mvo.pk, {})[system_id] = cso
        state = self.batch.export_state(cso)
        rows = diff_rows(
            {}, request.desired, self.ruleset.cs_types[rule.cs_object_type_id].multivalued
        )
        self._write(state, cso, rule, mvo, PendingExportChangeType.CREATE, rows, request.dn or "")
        result.effects.append(ExportEffect(self._system_name(rule), "create", request.dn or ""))

    def _join_candidate(
        self, mvo: MetaverseObject, rule: CompiledRule
    ) -> ConnectorSpaceObject | None:
        """The unjoined target CSO the target system's import join rules would join."""
        for import_rule in self.ruleset.import_rules.get(rule.cs_object_type_id, []):
            if import_rule.mv_object_type_id != mvo.object_type_id:
                continue
            for cs_attribute, mv_attribute in import_rule.joins:
                values = values_of(mvo.attributes.get(mv_attribute))
                if not values:
                    continue
                found = self.targets.find(rule.cs_object_type_id, cs_attribute, values)
                if len(found) == 1:
                    pk = next(iter(found))
                    return self.batch.csos.get(pk) or ConnectorSpaceObject.objects.get(pk=pk)
                if len(found) > 1:
                    raise ObjectError(
                        RpeiErrorType.AMBIGUOUS_MATCH,
                        f"sync rule {rule.name!r}: {len(found)} unjoined objects in "
                        f"{self._system_name(rule)} have {cs_attribute} = "
                        f"{', '.join(map(str, values))}",
                    )
        return None


def _create_not_sent(cso: ConnectorSpaceObject, pe: PendingExport | None) -> bool:
    """True when a ``pending_provisioning`` CSO's create has not reached the target
    system yet: its create export is still to be sent (or retried), or there is none
    and no export ever wrote the object (an export that creates it records the values
    it sent on the CSO; a provisioned CSO starts with none).

    A CSO without a pending export whose create was never written — a run that died
    before it was committed could leave one — must not be taken for an existing object:
    an update of an entry that does not exist fails for ever. (Should the object exist
    after all, the create finds it there.)
    """
    if pe is None:
        return not cso.attributes
    return pe.change_type == PendingExportChangeType.CREATE and pe.status in (
        PendingExportStatus.PENDING,
        PendingExportStatus.EXPORT_NOT_CONFIRMED,
        PendingExportStatus.FAILED,
    )


# --------------------------------------------------------------------------- diffing


def diff_rows(
    current: dict[str, list[Any]], desired: dict[str, Any], multivalued: frozenset[str]
) -> list[ChangeRow]:
    """The attribute changes that turn ``current`` into ``desired`` (deferred skipped)."""
    rows: list[ChangeRow] = []
    for attribute, want in desired.items():
        if want is DEFERRED or want is CIRCULAR or want is READ_ONLY:
            continue
        have = list(current.get(attribute, []))
        if attribute in multivalued:
            have_texts = {str(v) for v in have}
            want_texts = {str(v) for v in want}
            adds = [v for v in want if str(v) not in have_texts]
            removes = [v for v in have if str(v) not in want_texts]
            if adds:
                rows.append(ChangeRow(attribute, AttributeChangeType.ADD, adds, have))
            if removes:
                rows.append(ChangeRow(attribute, AttributeChangeType.REMOVE, removes, have))
        elif [str(v) for v in want[:1]] != [str(v) for v in have[:1]]:
            if want:
                rows.append(ChangeRow(attribute, AttributeChangeType.UPDATE, want[:1], have))
            else:
                rows.append(ChangeRow(attribute, AttributeChangeType.REMOVE_ALL, [], have))
    return rows


def merge_rows(
    old: list[ChangeRow], new: list[ChangeRow], desired: dict[str, Any]
) -> list[ChangeRow]:
    """Merge freshly computed changes into a pending export's existing ones.

    Per attribute: the fresh changes replace the old ones, except where they say the
    same thing (kept as they are, with their status), where the old changes were
    exported and await confirmation and nothing new is wanted, or where the attribute
    was not evaluated (deferred reference, not flowed by this rule). Changes of an
    attribute the target itself now contributes are dropped (no circular sync).
    """
    old_by: dict[str, list[ChangeRow]] = defaultdict(list)
    new_by: dict[str, list[ChangeRow]] = defaultdict(list)
    for row in old:
        old_by[row.attribute].append(row)
    for row in new:
        new_by[row.attribute].append(row)
    merged: list[ChangeRow] = []
    for attribute in sorted(set(old_by) | set(new_by)):
        before, after = old_by.get(attribute, []), new_by.get(attribute, [])
        want = desired.get(attribute, DEFERRED)
        if want is CIRCULAR or want is READ_ONLY:
            continue
        evaluated = want is not DEFERRED
        awaiting = before and all(
            r.status == AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION for r in before
        )
        if not evaluated or _contents(before) == _contents(after) or (awaiting and not after):
            merged.extend(before)
        else:
            merged.extend(after)
    return merged


def _contents(rows: list[ChangeRow]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted(row.content() for row in rows)
