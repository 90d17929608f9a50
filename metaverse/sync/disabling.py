"""Deprovisioning by disabling first and deleting later (``deprovision: disable``).

Seed 001's "disable the account, wait 30 days, then delete", for every target:

* **Disable.** A CSO JIM provisioned whose MVO leaves the export rule's scope (or is
  deleted) gets an update with the rule's ``disable`` flows and a move to its
  ``disable`` DN instead of a delete — a pending export like any other (approval
  policy, change threshold, separation of duties). The approval policy treats it as
  a delete: a system whose deletes wait for a person makes its disables wait too
  (both cut a person off). Objects JIM did not provision are only disconnected.
* **Disabled since.** ``ConnectorSpaceObject.disabled_at`` is set when the disabling
  export is *sent* (:mod:`exports.export_processor`; the export is marked
  ``PendingExport.disables``), or by the sync when the account already holds the
  disabled values and there is nothing to send. Sent, not staged: an approver may
  take days, and the grace period is the time the account has really been disabled;
  not confirmed: confirmation waits for the next import, which ties the window to the
  import schedule, while a disable that fails is never marked sent.
* **Delete.** Every sync run (full or delta, of any system) first finds, with one
  indexed query, the disabled CSOs whose ``delete_after_days`` have passed
  (:func:`expired`), and evaluates their MVOs again: a disable rule whose window has
  passed deprovisions by deleting (:func:`window_passed`), through the usual
  lifecycle. No ``delete_after_days``: the account stays disabled until it comes back.
* **Return.** An MVO back in scope gets the rule's normal flows and DN again — the
  account is re-enabled and moved back, the same object, no create — the attributes
  only the ``disable`` flows write are cleared, and ``disabled_at`` is cleared
  (:func:`restore`).
* **MVO deletion.** To be recognised when the person returns, a disabled account must
  stay joined to its MVO: an MVO whose deletion rule fires while it has such accounts
  is *kept* (:func:`keep_for_disabled_accounts`): ``deletion_scheduled`` with no due
  date, its other CSOs deprovisioned as usual. A returning source object joins it by
  the import join rules, which cancels the deletion, and the account is re-enabled.
  The MVO goes when its last disabled account is deleted (the sweep deletes it with
  them).
"""

from __future__ import annotations

import datetime as dt
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from django.db.models import OuterRef, Q, QuerySet, Subquery

from connectors.choices import JoinType, RpeiErrorType
from connectors.models import ConnectorSpaceObject
from exports import lifecycle
from exports.choices import PendingExportChangeType
from metaverse.choices import DeprovisionAction, MvoStatus, SyncRuleDirection
from metaverse.expressions import ExpressionError
from metaverse.models import MetaverseObject, SyncRule
from metaverse.sync.batch import SyncBatch
from metaverse.sync.inbound import ObjectError, flow_values, mv_view
from metaverse.sync.rules import CompiledRule, RuleSet

if TYPE_CHECKING:
    from metaverse.sync.outbound import ExportEvaluator


def window_passed(rule: CompiledRule, cso: ConnectorSpaceObject, now: dt.datetime) -> bool:
    """True when the CSO has been disabled for the rule's ``delete_after_days``."""
    return (
        rule.delete_after_days is not None
        and cso.disabled_at is not None
        and cso.disabled_at + dt.timedelta(days=rule.delete_after_days) <= now
    )


def disable(
    evaluator: ExportEvaluator,
    cso: ConnectorSpaceObject,
    rule: CompiledRule,
    mvo: MetaverseObject,
    *,
    mvo_deleted: bool,
) -> str:
    """Stage the disable of a provisioned CSO (its MVO left scope or is deleted); the
    CSO stays joined. Returns ``"disable"`` when the pending export changed, ``""``
    when there was nothing new to stage."""
    from metaverse.sync.outbound import diff_rows  # outbound imports this module

    batch = evaluator.batch
    state = batch.export_state(cso)
    pe = state.pe
    multivalued = batch.ruleset.cs_types[cso.object_type_id].multivalued
    rows = diff_rows(cso.attributes, _disable_values(batch, rule, mvo), multivalued)
    new_dn = _disable_dn(batch, rule, mvo, cso)
    if not rows and not new_dn:
        # The account holds the disabled values already: nothing to send.
        staged = pe is not None and pe.disables
        if pe is not None and not staged:
            lifecycle.cancel(pe)  # what it would change no longer flows
            state.deleted = state.dirty = True
        if cso.disabled_at is None and not staged:
            cso.disabled_at = batch.now
            batch.cso_changed(cso)
        return ""
    if (
        pe is not None
        and pe.disables
        and sorted(r.content() for r in rows) == sorted(r.content() for r in state.rows)
        and (pe.dn or "") == new_dn
    ):
        return ""  # staged already (awaiting approval, rejected, or being confirmed)
    evaluator._write(
        state,
        cso,
        rule,
        mvo,
        PendingExportChangeType.UPDATE,
        rows,
        new_dn,
        approval_as=PendingExportChangeType.DELETE,
    )
    assert state.pe is not None  # written just now
    state.pe.disables = True
    state.pe.identity = evaluator._identity(mvo, mvo_deleted=mvo_deleted)
    return "disable"


def restore(
    evaluator: ExportEvaluator,
    cso: ConnectorSpaceObject,
    rule: CompiledRule,
    desired: dict[str, Any],
) -> None:
    """A disabled (or being disabled) CSO whose MVO is back in the rule's scope: the
    attributes only the ``disable`` flows write are cleared (``desired`` gains them,
    empty), and the CSO is no longer disabled. The rule's normal flows and DN, staged
    by the caller, re-enable the account and move it back."""
    batch = evaluator.batch
    pe = batch.export_state(cso).pe
    if cso.disabled_at is None and not (pe is not None and pe.disables):
        return
    for flow in rule.disable_flows:
        desired.setdefault(flow.target, [])
    if cso.disabled_at is not None:
        cso.disabled_at = None
        batch.cso_changed(cso)


def keep_for_disabled_accounts(batch: SyncBatch, mvo: MetaverseObject) -> bool:
    """After an MVO's CSOs were deprovisioned for its deletion: keep the MVO while
    disabled accounts (not yet deleted) hang on it, so that a returning person is
    recognised — ``deletion_scheduled`` with no due date. True when kept.

    An MVO one of whose exports is being sent is left to
    :meth:`SyncBatch._postpone_busy_deletions` (due now: the next sync deprovisions
    what is left, and keeps it then).
    """
    if mvo.pk in batch.busy_mvos:
        return False
    rules = {
        r.system_id: r
        for r in batch.ruleset.export_rules.get(mvo.object_type_id, [])
        if r.deprovision_action == DeprovisionAction.DISABLE
    }
    held = [
        cso
        for system_id, cso in batch.mvo_csos.get(mvo.pk, {}).items()
        if system_id in rules and cso.join_type == JoinType.PROVISIONED
    ]
    if not held:
        return False
    batch.deleted_mvos.discard(mvo.pk)
    if mvo.status != MvoStatus.DELETION_SCHEDULED or mvo.deletion_due_at is not None:
        mvo.status = MvoStatus.DELETION_SCHEDULED
        mvo.deletion_due_at = None
        batch.mvo_changed(mvo)
    return True


def is_kept(mvo: MetaverseObject) -> bool:
    """True for an MVO kept only for its disabled accounts (its deletion already due)."""
    return mvo.status == MvoStatus.DELETION_SCHEDULED and mvo.deletion_due_at is None


def expired(ruleset: RuleSet, now: dt.datetime) -> dict[int, set[int]]:
    """The MVOs with a disabled CSO whose ``delete_after_days`` have passed, with the
    systems of those CSOs: one query, on the partial index of disabled CSOs.

    When several disable rules write one object type (for different metaverse types)
    the shortest window selects; each CSO's own rule decides when it is evaluated.
    """
    days: dict[int, int] = {}
    for rules in ruleset.export_rules.values():
        for rule in rules:
            if rule.deprovision_action == DeprovisionAction.DISABLE and (
                rule.delete_after_days is not None
            ):
                known = days.get(rule.cs_object_type_id, rule.delete_after_days)
                days[rule.cs_object_type_id] = min(known, rule.delete_after_days)
    if not days:
        return {}
    passed = reduce(
        or_,
        (
            Q(object_type_id=type_id, disabled_at__lte=now - dt.timedelta(days=n))
            for type_id, n in sorted(days.items())
        ),
    )
    found: dict[int, set[int]] = {}
    rows = ConnectorSpaceObject.objects.filter(passed, metaverse_object__isnull=False)
    for mvo_id, system_id in rows.values_list("metaverse_object_id", "connected_system_id"):
        found.setdefault(mvo_id, set()).add(system_id)
    return found


def delete_expired(evaluator: ExportEvaluator, mvo: MetaverseObject, systems: set[int]) -> None:
    """Evaluate again an MVO whose disabled accounts in ``systems`` are due for
    deletion: their rules now deprovision by deleting. A kept MVO goes with its
    last disabled account (kept again while others wait)."""
    if is_kept(mvo):
        evaluator.batch.deleted_mvos.add(mvo.pk)
        evaluator.deprovision_all(mvo)
        return
    for system_id in sorted(systems):
        evaluator.evaluate(mvo, only_system=system_id)


def with_delete_after_days(queryset: QuerySet[ConnectorSpaceObject]) -> QuerySet[Any]:
    """CSOs annotated with the ``delete_after_days`` of their object type's disable
    rule (the shortest, when several), for showing when a disabled account is deleted
    (:func:`delete_due_at`) without a query per object."""
    days = (
        SyncRule.objects.filter(
            direction=SyncRuleDirection.EXPORT,
            deprovision_action=DeprovisionAction.DISABLE,
            enabled=True,
            cs_object_type_id=OuterRef("object_type_id"),
            delete_after_days__isnull=False,
        )
        .order_by("delete_after_days")
        .values("delete_after_days")[:1]
    )
    return queryset.annotate(disable_delete_after_days=Subquery(days))


def delete_due_at(cso: ConnectorSpaceObject) -> dt.datetime | None:
    """When a disabled CSO (annotated by :func:`with_delete_after_days`) is deleted;
    None when it is not disabled or stays disabled."""
    days = getattr(cso, "disable_delete_after_days", None)
    if cso.disabled_at is None or days is None:
        return None
    return cso.disabled_at + dt.timedelta(days=days)


def disabled_text(cso: ConnectorSpaceObject) -> str:
    """ "disabled since …, deleted after …" for a disabled CSO, "" otherwise."""
    if cso.disabled_at is None:
        return ""
    text = f"disabled since {cso.disabled_at:%Y-%m-%d}"
    due = delete_due_at(cso)
    return f"{text}, deleted after {due:%Y-%m-%d}" if due else text


# --------------------------------------------------------------------------- values


def _disable_values(batch: SyncBatch, rule: CompiledRule, mvo: MetaverseObject) -> dict[str, Any]:
    """The target values of the rule's ``disable`` flows, computed from the MVO."""
    mv = mv_view(batch, mvo)
    multivalued = batch.ruleset.cs_types[rule.cs_object_type_id].multivalued
    desired: dict[str, Any] = {}
    for flow in rule.disable_flows:
        if flow.expression is not None:
            values = flow_values(rule, flow, mv_view(batch, None), mv)
        else:
            values = list(mvo.attributes.get(flow.source, []))
        desired[flow.target] = values if flow.target in multivalued else values[:1]
    return desired


def _disable_dn(
    batch: SyncBatch, rule: CompiledRule, mvo: MetaverseObject, cso: ConnectorSpaceObject
) -> str:
    """The DN the disabled account moves to, or "" when it stays where it is."""
    template = rule.disable_dn_template
    if template is None or not cso.secondary_external_id:
        return ""
    try:
        dn = template.render(mv=mv_view(batch, mvo))
    except ExpressionError as exc:
        raise ObjectError(
            RpeiErrorType.EXPRESSION_ERROR,
            f"sync rule {rule.name!r}: disable DN template {template.source!r} failed: {exc}",
        ) from None
    connector = batch.ruleset.systems[rule.system_id].connector
    problem = connector.secondary_id_error(dn)
    if problem:
        raise ObjectError(
            RpeiErrorType.INVALID_GENERATED_EXTERNAL_ID,
            f"sync rule {rule.name!r}: generated disable DN {dn!r} is not valid: {problem}",
        )
    return "" if connector.secondary_id_key(dn) == cso.secondary_external_id_key else dn
