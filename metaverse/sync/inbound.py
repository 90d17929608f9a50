"""Inbound sync of one CSO: obsolete handling, join, projection and attribute flow.

This is the "sync" box of seed 002/003 for the connected-system side: a CSO is
disconnected when obsolete or out of every import rule's scope, joined or projected
when not joined, and its values flow into its MVO under the precedence rules of the
spec (the rule listed first wins an attribute; each value remembers the system and
rule that contributed it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.choices import CsoStatus, JoinType, ObjectChangeType, RpeiErrorType
from connectors.models import ConnectorSpaceObject
from core.bulk import new_instance
from metaverse.expressions import AttributeView, ExpressionError
from metaverse.models import MetaverseObject
from metaverse.sync.batch import SyncBatch
from metaverse.sync.keys import normalise_key
from metaverse.sync.rules import CompiledFlow, CompiledRule


class ObjectError(Exception):
    """An error on one object: recorded as an RPEI, the object is skipped this run."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass
class Flowed:
    """What flowed into an MVO, for the RPEI's record of its values (see
    :mod:`connectors.value_changes`): each changed attribute's values before this run
    changed them, and the sync rule that changed it last."""

    before: dict[str, list[Any]] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)

    def changed(self, attribute: str, old: list[Any], rule: CompiledRule) -> None:
        self.before.setdefault(attribute, old)
        self.rules[attribute] = rule.name


@dataclass
class InboundResult:
    """What inbound sync did to one CSO."""

    change: str = ObjectChangeType.NONE
    mvo: MetaverseObject | None = None
    mvo_changed: bool = False
    changed_attributes: list[str] = field(default_factory=list)
    flowed: Flowed = field(default_factory=Flowed)
    disconnected_mvo: MetaverseObject | None = None
    pending_references: list[tuple[CompiledRule, CompiledFlow, list[int]]] = field(
        default_factory=list
    )


def values_of(result: Any) -> list[Any]:
    """A flow's result as a list of values (None and '' are no value)."""
    if result is None:
        return []
    if isinstance(result, (list, tuple, set)):
        return [v for v in result if v not in (None, "")]
    return [] if result == "" else [result]


def cs_view(batch: SyncBatch, cso: ConnectorSpaceObject) -> AttributeView:
    info = batch.ruleset.cs_types[cso.object_type_id]
    return AttributeView(cso.attributes, info.multivalued)


def mv_view(batch: SyncBatch, mvo: MetaverseObject | None) -> AttributeView:
    if mvo is None:
        return AttributeView({})
    return AttributeView(mvo.attributes, batch.ruleset.mv_types[mvo.object_type_id].multivalued)


def in_scope(rule: CompiledRule, cs: AttributeView, mv: AttributeView) -> bool:
    """Evaluate a rule's scope; :class:`ObjectError` when the expression fails."""
    if rule.scope is None:
        return True
    try:
        return bool(rule.scope.evaluate(cs=cs, mv=mv))
    except ExpressionError as exc:
        raise ObjectError(
            RpeiErrorType.EXPRESSION_ERROR,
            f"sync rule {rule.name!r}: scope {rule.scope.source!r} failed: {exc}",
        ) from None


def flow_values(
    rule: CompiledRule, flow: CompiledFlow, cs: AttributeView, mv: AttributeView
) -> list[Any]:
    """The values of an expression flow; :class:`ObjectError` when it fails."""
    assert flow.expression is not None  # callers take direct flows another way
    try:
        return values_of(flow.expression.evaluate(cs=cs, mv=mv))
    except ExpressionError as exc:
        raise ObjectError(
            RpeiErrorType.EXPRESSION_ERROR,
            f"sync rule {rule.name!r}: flow to {flow.target} "
            f"({flow.expression.source!r}) failed: {exc}",
        ) from None


def sync_inbound(batch: SyncBatch, cso: ConnectorSpaceObject) -> InboundResult:
    """Run the import side of sync for one CSO of the system being synced."""
    result = InboundResult()
    if cso.status == CsoStatus.PENDING_PROVISIONING:
        return result
    if cso.status == CsoStatus.OBSOLETE:
        if cso.metaverse_object_id:
            result.disconnected_mvo = disconnect(batch, cso)
            result.change = ObjectChangeType.DISCONNECTED
        batch.deleted_csos.add(cso.pk)
        return result
    rules = batch.ruleset.import_rules.get(cso.object_type_id, [])
    cs = cs_view(batch, cso)
    if cso.metaverse_object_id is None:
        if cso.disconnected_by_hand:
            return result  # an administrator's decision (metaverse.sync.manual)
        _join_or_project(batch, cso, rules, cs, result)
        if result.mvo is None:
            return result
    else:
        result.mvo = batch.mvos[cso.metaverse_object_id]
    mvo = result.mvo
    applicable = [r for r in rules if r.mv_object_type_id == mvo.object_type_id]
    scoped = [r for r in applicable if in_scope(r, cs, mv_view(batch, mvo))]
    if not scoped:
        if applicable and cso.join_type in (JoinType.PROJECTED, JoinType.JOINED):
            result.disconnected_mvo = disconnect(batch, cso)
            result.change = ObjectChangeType.DISCONNECTED
        return result
    for rule in scoped:
        for flow in rule.flows:
            _flow(batch, cso, cs, mvo, rule, flow, result)
    if result.changed_attributes and result.change == ObjectChangeType.NONE:
        result.change = ObjectChangeType.ATTRIBUTE_FLOW
    return result


def _join_or_project(
    batch: SyncBatch,
    cso: ConnectorSpaceObject,
    rules: list[CompiledRule],
    cs: AttributeView,
    result: InboundResult,
) -> None:
    for rule in rules:
        if not in_scope(rule, cs, AttributeView({})):
            continue
        mvo = _find_join(batch, cso, rule, cs)
        if mvo is not None:
            batch.join(cso, mvo, JoinType.JOINED)
            _cancel_scheduled_deletion(batch, mvo)
            result.mvo, result.change, result.mvo_changed = mvo, ObjectChangeType.JOINED, True
            return
        if rule.project:
            mvo = new_instance(MetaverseObject, object_type_id=rule.mv_object_type_id)
            batch.project(cso, mvo)
            result.mvo, result.change, result.mvo_changed = mvo, ObjectChangeType.PROJECTED, True
            return


def _find_join(
    batch: SyncBatch, cso: ConnectorSpaceObject, rule: CompiledRule, cs: AttributeView
) -> MetaverseObject | None:
    """The one MVO the rule's join rules match, tried in order; None when none does."""
    for cs_attribute, mv_attribute in rule.joins:
        values = values_of(cs[cs_attribute])
        if not values:
            continue
        found = batch.join_index.find(rule.mv_object_type_id, mv_attribute, values)
        found -= batch.deleted_mvos
        projected_here = _projected_in_batch(batch, rule, mv_attribute, values)
        if len(found) + len(projected_here) > 1:
            raise ObjectError(
                RpeiErrorType.AMBIGUOUS_MATCH,
                f"sync rule {rule.name!r}: join {cs_attribute} = {mv_attribute} "
                f"({', '.join(map(str, values))}) matches {len(found) + len(projected_here)} "
                "metaverse objects",
            )
        if projected_here or found:
            if projected_here:
                existing = True
                mvo = projected_here[0]
            else:
                batch.load_mvos(found)
                mvo = batch.mvos[next(iter(found))]
                existing = cso.connected_system_id in batch.mvo_csos.get(mvo.pk, {})
            if existing:
                raise ObjectError(
                    RpeiErrorType.COULD_NOT_JOIN_DUE_TO_EXISTING_JOIN,
                    f"sync rule {rule.name!r}: join {cs_attribute} = {mv_attribute} "
                    f"({', '.join(map(str, values))}) matches metaverse object "
                    f"{mvo.display_name or mvo.pk}, which is already joined to another object "
                    f"of this connected system",
                )
            return mvo
    return None


def _projected_in_batch(
    batch: SyncBatch, rule: CompiledRule, mv_attribute: str, values: list[Any]
) -> list[MetaverseObject]:
    """MVOs projected earlier in this batch (not yet indexed) that hold one of ``values``."""
    found: list[MetaverseObject] = []
    for value in values:
        for mvo in batch.projected_keys.get(
            (rule.mv_object_type_id, mv_attribute, normalise_key(value)), []
        ):
            if mvo not in found:
                found.append(mvo)
    return found


def _cancel_scheduled_deletion(batch: SyncBatch, mvo: MetaverseObject) -> None:
    if mvo.status == "deletion_scheduled":
        mvo.status = "normal"
        mvo.deletion_due_at = None
        batch.mvo_changed(mvo)


def _flow(
    batch: SyncBatch,
    cso: ConnectorSpaceObject,
    cs: AttributeView,
    mvo: MetaverseObject,
    rule: CompiledRule,
    flow: CompiledFlow,
    result: InboundResult,
) -> None:
    if flow.expression is not None:
        values = flow_values(rule, flow, cs, mv_view(batch, mvo))
    else:
        values = list(cso.attributes.get(flow.source, []))
        cs_type = batch.ruleset.cs_types[cso.object_type_id]
        if flow.source in cs_type.references:
            # CSO ids become MVO ids once every CSO of the batch is joined.
            result.pending_references.append((rule, flow, [v for v in values if v is not None]))
            return
    if set_attribute(batch, mvo, flow.target, values, rule, result.flowed):
        result.changed_attributes.append(flow.target)
        result.mvo_changed = True


def set_attribute(
    batch: SyncBatch,
    mvo: MetaverseObject,
    attribute: str,
    values: list[Any],
    rule: CompiledRule,
    flowed: Flowed,
) -> bool:
    """Write a flowed value under the precedence rules; True when the MVO changed
    (``flowed`` then keeps the values it held before).

    A rule writes an attribute that no rule contributes, that it contributes itself, or
    that a rule of lower precedence contributes. No value removes the attribute when
    this rule is its contributor.
    """
    source = mvo.attribute_sources.get(attribute)
    if (
        source
        and source.get("rule") != rule.id
        and not batch.ruleset.outranks(rule.id, source.get("rule"))
    ):
        return False
    mv_type = batch.ruleset.mv_types[mvo.object_type_id]
    if attribute not in mv_type.multivalued:
        values = values[:1]
    old = mvo.attributes.get(attribute, [])
    if values:
        new_source = {"system": rule.system_id, "rule": rule.id}
        if _same_values(old, values, attribute in mv_type.multivalued) and source == new_source:
            return False
        mvo.attributes[attribute] = values
        mvo.attribute_sources[attribute] = new_source
    else:
        if attribute not in mvo.attributes and attribute not in mvo.attribute_sources:
            return False
        mvo.attributes.pop(attribute, None)
        mvo.attribute_sources.pop(attribute, None)
    _refresh_display_name(mvo)
    batch.mvo_changed(mvo)
    if _same_values(old, values, attribute in mv_type.multivalued):
        return False
    flowed.changed(attribute, old, rule)  # old is not changed in place: it was replaced
    return True


def _same_values(old: list[Any], new: list[Any], multivalued: bool) -> bool:
    if multivalued:
        return sorted(map(str, old)) == sorted(map(str, new))
    return old == new


def _refresh_display_name(mvo: MetaverseObject) -> None:
    for name in ("displayName", "name", "cn", "accountName"):
        values = mvo.attributes.get(name)
        if values:
            mvo.display_name = str(values[0])[:500]
            return
    mvo.display_name = ""


def disconnect(batch: SyncBatch, cso: ConnectorSpaceObject) -> MetaverseObject | None:
    """Break a CSO's join; returns the MVO it was joined to.

    The values its system contributed are recalled by :func:`recall` unless the MVO's
    deletion rule removes (or schedules the removal of) the MVO instead: an MVO in its
    grace period keeps its values so that a returning object joins it again.
    """
    mvo = batch.mvos.get(cso.metaverse_object_id) if cso.metaverse_object_id else None
    batch.disconnect(cso)
    return mvo


def recall(batch: SyncBatch, mvo: MetaverseObject, system_id: int) -> None:
    """Remove the values a connected system contributed to an MVO.

    The other CSOs still joined to the MVO are marked for sync so the next sync of
    their systems lets the next rule in precedence take over recalled attributes.
    """
    recalled = [
        name for name, source in mvo.attribute_sources.items() if source.get("system") == system_id
    ]
    if not recalled:
        return
    for name in recalled:
        mvo.attributes.pop(name, None)
        mvo.attribute_sources.pop(name, None)
    _refresh_display_name(mvo)
    batch.mvo_changed(mvo)
    for other in batch.mvo_csos.get(mvo.pk, {}).values():
        if not other.sync_pending and other.status == CsoStatus.NORMAL:
            other.sync_pending = True
            batch.cso_changed(other)


def resolve_references(
    batch: SyncBatch,
    mvo: MetaverseObject,
    pending: list[tuple[CompiledRule, CompiledFlow, list[int]]],
    mvo_of_cso: dict[int, int | None],
    flowed: Flowed,
) -> tuple[list[str], list[tuple[CompiledRule, CompiledFlow, list[int]]]]:
    """Flow reference values (CSO ids → their MVO ids).

    Returns the attributes changed, and the flows whose referenced CSOs are not joined
    yet (to retry at the end of the run).
    """
    changed: list[str] = []
    unresolved = []
    for rule, flow, cso_ids in pending:
        mvo_ids = [mvo_of_cso.get(i) for i in cso_ids]
        if any(i is None for i in mvo_ids):
            unresolved.append((rule, flow, cso_ids))
        values = [i for i in mvo_ids if i is not None]
        if set_attribute(batch, mvo, flow.target, values, rule, flowed):
            changed.append(flow.target)
    return changed, unresolved
