"""``jim apply --check``: warnings about expressions that exceed their budget on current data.

Compiling tells whether an expression parses, not whether it stays within its memory
and time budget (docs/expressions.md, "Limits"): that depends on the values it reads.
So each scope, expression flow and DN template of the file is evaluated on a sample of
the objects it would run on — the largest connected-system objects of an import rule's
object type, the largest metaverse objects of an export rule's — and an expression
that exceeds the budget on one of them is reported, with its key path and the object.
These are warnings: the file is valid, and at sync the object fails with
``expression_error`` while the run goes on. With no objects yet, nothing is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast, Length

from connectors.models import ConnectedSystemObjectType, ConnectorSpaceObject
from jim_project.configuration.errors import KeyPath, render_path
from jim_project.configuration.schema import Configuration, RuleDecl
from metaverse.choices import SyncRuleDirection
from metaverse.expressions import (
    AttributeView,
    ExpressionError,
    ExpressionLimitError,
    compile_dn_template,
    compile_expression,
)
from metaverse.models import MetaverseObject, MetaverseObjectType

#: How many objects each rule's expressions are tried on: the largest ones, which are
#: the likeliest to exceed a budget.
SAMPLE_SIZE = 10

#: (what the object is called in a warning, cs view, mv view)
Sample = tuple[str, AttributeView, AttributeView]


def budget_warnings(config: Configuration) -> list[str]:
    """A warning for each expression of ``config`` that exceeds its budget on a sample
    of the stored objects (read after the file is applied, inside ``--check``'s
    transaction, so the object types and attributes are the file's)."""
    warnings = []
    for rule in config.rules:
        samples = list(_samples(rule))
        for path, evaluate in _expressions(rule):
            problem = _first_limit_exceeded(evaluate, samples)
            if problem is not None:
                name, error = problem
                warnings.append(
                    f"warning: {render_path(path)}: exceeds its budget on {name} ({error}); "
                    "that object would fail with expression_error when synced"
                )
    return warnings


def _first_limit_exceeded(evaluate: Any, samples: list[Sample]) -> tuple[str, str] | None:
    for name, cs, mv in samples:
        try:
            evaluate(cs=cs, mv=mv)
        except ExpressionLimitError as exc:
            return name, str(exc)
        except ExpressionError:
            continue  # another failure: the sync reports it; not a budget question
    return None


def _expressions(rule: RuleDecl) -> Iterator[tuple[KeyPath, Any]]:
    if rule.scope.strip():
        yield (*rule.path, "scope"), compile_expression(rule.scope).evaluate
    for flow in rule.flows:
        if flow.expression:
            yield (*flow.path, "expression"), compile_expression(flow.expression).evaluate
    if rule.direction == SyncRuleDirection.EXPORT and rule.dn.strip():
        yield (*rule.path, "dn"), compile_dn_template(rule.dn).render
    for flow in rule.disable_flows:
        if flow.expression:
            yield (*flow.path, "expression"), compile_expression(flow.expression).evaluate
    if rule.disable_dn.strip():
        yield (*rule.path, "disable", "dn"), compile_dn_template(rule.disable_dn).render


def _largest_first(queryset: Any) -> Any:
    return queryset.order_by(Length(Cast("attributes", TextField())).desc(), "pk")[:SAMPLE_SIZE]


def _samples(rule: RuleDecl) -> Iterator[Sample]:
    mv_type = MetaverseObjectType.objects.filter(name=rule.metaverse_object_type).first()
    if mv_type is None:
        return
    mv_multivalued = _multivalued(mv_type)
    if rule.direction == SyncRuleDirection.EXPORT:
        for mvo in _largest_first(MetaverseObject.objects.filter(object_type=mv_type)):
            name = f"metaverse {mv_type.name} {mvo.display_name or mvo.pk!r}"
            yield name, AttributeView({}), AttributeView(mvo.attributes, mv_multivalued)
        return
    cs_type = ConnectedSystemObjectType.objects.filter(
        connected_system__name=rule.connected_system, name=rule.object_type
    ).first()
    if cs_type is None:
        return
    cs_multivalued = _multivalued(cs_type)
    csos = ConnectorSpaceObject.objects.filter(object_type=cs_type).select_related(
        "metaverse_object"
    )
    for cso in _largest_first(csos):
        mvo = cso.metaverse_object
        mv = AttributeView(mvo.attributes if mvo else {}, mv_multivalued)
        name = f"{rule.connected_system} {cs_type.name} {cso.external_id!r}"
        yield name, AttributeView(cso.attributes, cs_multivalued), mv


def _multivalued(object_type: Any) -> frozenset[str]:
    return frozenset(a.name for a in object_type.attributes.all() if a.multivalued)
