"""The sync rules and schema of one sync run, loaded and compiled once.

A :class:`RuleSet` holds everything the sync processor needs to know about the
configuration — compiled scopes, flows and DN templates, which attributes are
multi-valued or references, deletion rules, approval policies — so that processing an
object never queries the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import nodes

from connectors.base import Connector
from connectors.choices import AttributeDataType, AttributeWritability
from connectors.models import ConnectedSystem, ConnectedSystemObjectType
from connectors.schema import connector_for
from metaverse.choices import DeletionRule, FlowKind, SyncRuleDirection
from metaverse.expressions import (
    CompiledExpression,
    CompiledTemplate,
    compile_dn_template,
    compile_expression,
)
from metaverse.models import MetaverseObjectType, SyncRule


@dataclass(frozen=True)
class CompiledFlow:
    """An attribute flow ready to run.

    ``mv_reads`` are the metaverse attributes the flow reads (for export rules: used
    to avoid sending a value back to the system that contributed it).
    """

    target: str
    source: str
    expression: CompiledExpression | None
    mv_reads: frozenset[str]

    @property
    def label(self) -> str:
        return self.expression.source if self.expression else self.source


@dataclass
class CompiledRule:
    """A sync rule with its expressions compiled."""

    id: int
    name: str
    system_id: int
    direction: str
    cs_object_type_id: int
    mv_object_type_id: int
    precedence: int
    scope: CompiledExpression | None
    joins: list[tuple[str, str]]
    flows: list[CompiledFlow]
    project: bool
    provision: bool
    dn_template: CompiledTemplate | None
    deprovision_action: str
    enforce_state: bool
    #: ``deprovision: disable``: the flows and DN that disable, and the days to delete
    disable_flows: list[CompiledFlow] = field(default_factory=list)
    disable_dn_template: CompiledTemplate | None = None
    delete_after_days: int | None = None


@dataclass
class CsTypeInfo:
    """What sync needs of a connected-system object type."""

    id: int
    system_id: int
    name: str
    external_id_attribute: str
    secondary_external_id_attribute: str
    multivalued: frozenset[str]
    references: frozenset[str]
    #: attributes export flows may never write, and those written only once
    read_only: frozenset[str] = frozenset()
    write_once: frozenset[str] = frozenset()


@dataclass
class MvTypeInfo:
    """What sync needs of a metaverse object type."""

    id: int
    name: str
    multivalued: frozenset[str]
    references: frozenset[str]
    deletion_rule: str
    authoritative_system_ids: frozenset[int]
    grace_period_days: int


@dataclass
class SystemInfo:
    """A connected system as sync sees it: its approval policy and its connector."""

    id: int
    name: str
    approval_mode: str
    max_retries: int
    connector: Connector


@dataclass
class RuleSet:
    """Every enabled sync rule, compiled, with the schema they refer to."""

    import_rules: dict[int, list[CompiledRule]] = field(default_factory=dict)
    export_rules: dict[int, list[CompiledRule]] = field(default_factory=dict)
    cs_types: dict[int, CsTypeInfo] = field(default_factory=dict)
    mv_types: dict[int, MvTypeInfo] = field(default_factory=dict)
    systems: dict[int, SystemInfo] = field(default_factory=dict)
    precedence: dict[int, int] = field(default_factory=dict)
    join_attributes: dict[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> RuleSet:
        """Load and compile the configuration (a handful of queries)."""
        ruleset = cls()
        for system in ConnectedSystem.objects.all():
            ruleset.systems[system.pk] = SystemInfo(
                id=system.pk,
                name=system.name,
                approval_mode=system.approval_mode,
                max_retries=system.export_max_retries,
                connector=connector_for(system),
            )
        for cs_type in ConnectedSystemObjectType.objects.prefetch_related("attributes"):
            ruleset.cs_types[cs_type.pk] = _cs_type_info(cs_type)
        for mv_type in MetaverseObjectType.objects.prefetch_related(
            "attributes", "authoritative_systems"
        ):
            ruleset.mv_types[mv_type.pk] = _mv_type_info(mv_type)
        rules = SyncRule.objects.filter(enabled=True).prefetch_related("joins", "flows")
        join_attributes: dict[int, set[str]] = {}
        for rule in rules.order_by("precedence", "name"):
            compiled = _compile(rule)
            ruleset.precedence[rule.pk] = rule.precedence
            if rule.direction == SyncRuleDirection.IMPORT:
                ruleset.import_rules.setdefault(rule.cs_object_type_id, []).append(compiled)
                join_attributes.setdefault(rule.mv_object_type_id, set()).update(
                    mv for _, mv in compiled.joins
                )
            else:
                ruleset.export_rules.setdefault(rule.mv_object_type_id, []).append(compiled)
        ruleset.join_attributes = {k: frozenset(v) for k, v in join_attributes.items()}
        return ruleset

    def import_rules_for_system(self, system_id: int) -> list[CompiledRule]:
        return [
            r for rules in self.import_rules.values() for r in rules if r.system_id == system_id
        ]

    def outranks(self, rule_id: int, other_rule_id: int) -> bool:
        """True when ``rule_id`` has precedence over ``other_rule_id``.

        A rule no longer in the configuration ranks below every rule that is.
        """
        other = self.precedence.get(other_rule_id)
        return other is None or self.precedence.get(rule_id, 1 << 30) < other


def _cs_type_info(cs_type: ConnectedSystemObjectType) -> CsTypeInfo:
    attributes = list(cs_type.attributes.all())
    return CsTypeInfo(
        id=cs_type.pk,
        system_id=cs_type.connected_system_id,
        name=cs_type.name,
        external_id_attribute=cs_type.external_id_attribute,
        secondary_external_id_attribute=cs_type.secondary_external_id_attribute,
        multivalued=frozenset(a.name for a in attributes if a.multivalued),
        references=frozenset(
            a.name for a in attributes if a.data_type == AttributeDataType.REFERENCE
        ),
        read_only=frozenset(
            a.name for a in attributes if a.writability == AttributeWritability.READ_ONLY
        ),
        write_once=frozenset(
            a.name for a in attributes if a.writability == AttributeWritability.WRITE_ONCE
        ),
    )


def _mv_type_info(mv_type: MetaverseObjectType) -> MvTypeInfo:
    attributes = list(mv_type.attributes.all())
    return MvTypeInfo(
        id=mv_type.pk,
        name=mv_type.name,
        multivalued=frozenset(a.name for a in attributes if a.multivalued),
        references=frozenset(
            a.name for a in attributes if a.data_type == AttributeDataType.REFERENCE
        ),
        deletion_rule=mv_type.deletion_rule or DeletionRule.LAST_CONNECTOR_REMOVED,
        authoritative_system_ids=frozenset(s.pk for s in mv_type.authoritative_systems.all()),
        grace_period_days=mv_type.deletion_grace_period_days,
    )


def _compile(rule: SyncRule) -> CompiledRule:
    is_export = rule.direction == SyncRuleDirection.EXPORT
    flows = []
    for flow in rule.flows.all():
        if flow.kind == FlowKind.EXPRESSION:
            expression = compile_expression(flow.expression)
            reads = _mv_attributes_read(flow.expression) if is_export else frozenset()
            flows.append(CompiledFlow(flow.target, "", expression, reads))
        else:
            reads = frozenset({flow.source}) if is_export else frozenset()
            flows.append(CompiledFlow(flow.target, flow.source, None, reads))
    return CompiledRule(
        id=rule.pk,
        name=rule.name,
        system_id=rule.connected_system_id,
        direction=rule.direction,
        cs_object_type_id=rule.cs_object_type_id,
        mv_object_type_id=rule.mv_object_type_id,
        precedence=rule.precedence,
        scope=compile_expression(rule.scope) if rule.scope.strip() else None,
        joins=[(j.cs_attribute, j.mv_attribute) for j in rule.joins.all()],
        flows=flows,
        project=rule.project,
        provision=rule.provision,
        dn_template=compile_dn_template(rule.dn_template) if rule.dn_template.strip() else None,
        deprovision_action=rule.deprovision_action,
        enforce_state=rule.enforce_state,
        disable_flows=[_compile_disable_flow(flow) for flow in rule.disable_flows],
        disable_dn_template=(
            compile_dn_template(rule.disable_dn_template)
            if rule.disable_dn_template.strip()
            else None
        ),
        delete_after_days=rule.delete_after_days,
    )


def _compile_disable_flow(flow: dict[str, str]) -> CompiledFlow:
    """A flow of an export rule's ``disable`` (stored as ``SyncRule.disable_flows``)."""
    target, source = flow["target"], flow.get("source", "")
    if flow.get("expression"):
        expression = flow["expression"]
        return CompiledFlow(
            target, "", compile_expression(expression), _mv_attributes_read(expression)
        )
    return CompiledFlow(target, source, None, frozenset({source}))


def _mv_attributes_read(source: str) -> frozenset[str]:
    """The ``mv.<name>`` / ``mv['name']`` attributes an expression reads."""
    from jinja2.sandbox import SandboxedEnvironment

    tree = SandboxedEnvironment().parse("{{ " + source + " }}")
    names = {node.attr for node in tree.find_all(nodes.Getattr) if _is_mv(node.node)}
    for node in tree.find_all(nodes.Getitem):
        key = node.arg
        if _is_mv(node.node) and isinstance(key, nodes.Const) and isinstance(key.value, str):
            names.add(key.value)
    return frozenset(names)


def _is_mv(node: nodes.Expr) -> bool:
    return isinstance(node, nodes.Name) and node.name == "mv"
