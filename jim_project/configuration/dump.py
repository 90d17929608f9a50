"""``jim dump``: the configuration in the database, in the file format of ``jim apply``.

Keys come in the order of the spec's example, and keys at their default are left out
where the example leaves them out, so ``apply`` of the output changes nothing and
``dump`` → ``apply`` → ``dump`` prints the same text. Secrets are never printed: a
stored secret is shown as the ``${VAR}`` it was applied from (see
:mod:`jim_project.configuration.secrets`).

What is printed beyond the example's keys, and when:

* ``base_dir`` of a connected system — when it differs from the folder the output is
  written to (always with standard output, as that folder is unknown); ``""`` for a
  system that has none (relative paths resolve against JIM's working directory).
* ``export`` — when it differs from the defaults, or when an export rule writes to
  the system.
* connected-system attributes — those not at the defaults an import gives a newly
  seen attribute (text, single-valued, read_write, no ``references``, not optional).
* ``schedules`` — when there are any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connectors.choices import AttributeDataType, AttributeWritability
from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    RunProfile,
    Schedule,
)
from connectors.registry import UnknownConnector, get_connector_class
from exports.passwords import parse_policy
from jim_project.configuration.schema import (
    DEFAULT_APPROVAL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF_SECONDS,
    VERSION,
)
from jim_project.configuration.secrets import secret_values, variable_for
from metaverse.choices import FlowKind, SyncRuleDirection
from metaverse.models import MetaverseAttribute, MetaverseObjectType, SyncRule


class Flow(dict):
    """A mapping written on one line: ``{name: Full Import, type: full_import}``."""


class Quoted(str):
    """Text written in double quotes (expressions and DN templates, as in the spec)."""


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, no anchors."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_flow(dumper: yaml.SafeDumper, data: Flow) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=True)


def _represent_text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_quoted(dumper: yaml.SafeDumper, data: Quoted) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


_Dumper.add_representer(Flow, _represent_flow)
_Dumper.add_representer(Quoted, _represent_quoted)
_Dumper.add_representer(str, _represent_text)


def dump_configuration(*, output_dir: Path | None = None) -> str:
    """The stored configuration as YAML text.

    ``output_dir`` is the folder the text will be saved in, when known: a connected
    system whose base folder is that folder is printed without ``base_dir``.
    """
    text = yaml.dump(
        configuration_document(output_dir=output_dir),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=4096,
    )
    return _space_out(text)


def _space_out(text: str) -> str:
    """A blank line before each top-level key and each item of a top-level list."""
    lines: list[str] = []
    previous = ""
    for line in text.splitlines():
        top_level = lines and line[:1] not in (" ", "")
        item = line.startswith("  - ") and not previous.endswith(":")
        if top_level or item:
            lines.append("")
        lines.append(line)
        previous = line
    return "\n".join(lines) + "\n"


def configuration_document(*, output_dir: Path | None = None) -> dict[str, Any]:
    """The stored configuration as the data of a configuration file."""
    export_targets = set(
        SyncRule.objects.filter(direction=SyncRuleDirection.EXPORT).values_list(
            "connected_system_id", flat=True
        )
    )
    document: dict[str, Any] = {
        "version": VERSION,
        "metaverse": {"object_types": _metaverse_types()},
        "connected_systems": [
            _system(system, output_dir, system.pk in export_targets)
            for system in ConnectedSystem.objects.order_by("pk").prefetch_related("run_profiles")
        ],
        "sync_rules": [
            _rule(rule)
            for rule in SyncRule.objects.select_related(
                "connected_system", "cs_object_type", "mv_object_type"
            )
            .prefetch_related("joins", "flows")
            .order_by("precedence", "name")
        ],
    }
    schedules = _schedules()
    if schedules:
        document["schedules"] = schedules
    return document


# --------------------------------------------------------------------------- metaverse


def _metaverse_types() -> dict[str, Any]:
    attributes: dict[int, dict[str, Any]] = {}
    for attribute in MetaverseAttribute.objects.order_by("pk"):
        attributes.setdefault(attribute.object_type_id, {})[attribute.name] = (
            Flow(type=attribute.data_type, multivalued=True)
            if attribute.multivalued
            else attribute.data_type
        )
    types: dict[str, Any] = {}
    for mv_type in MetaverseObjectType.objects.order_by("pk").prefetch_related(
        "authoritative_systems"
    ):
        deletion: dict[str, Any] = {"when": mv_type.deletion_rule}
        authoritative = sorted(s.name for s in mv_type.authoritative_systems.all())
        if authoritative:
            deletion["authoritative"] = authoritative
        deletion["grace_period_days"] = mv_type.deletion_grace_period_days
        types[mv_type.name] = {"attributes": attributes.get(mv_type.pk, {}), "deletion": deletion}
    return types


# --------------------------------------------------------------------------- systems


def _system(
    system: ConnectedSystem, output_dir: Path | None, export_target: bool
) -> dict[str, Any]:
    item: dict[str, Any] = {"name": system.name}
    if system.description:
        item["description"] = system.description
    item["connector"] = system.connector
    settings = _settings(system)
    if settings:
        item["settings"] = settings
    if output_dir is None or system.config_base_dir != str(output_dir):
        item["base_dir"] = system.config_base_dir
    object_types = [_object_type(t) for t in _object_types(system)]
    if object_types:
        item["object_types"] = object_types
    for key in ("deletion_threshold", "change_threshold"):
        if threshold := getattr(system, key):
            item[key] = int(threshold) if threshold.isdigit() else threshold
    export: dict[str, Any] = {"approval": system.approval_mode}
    if system.separate_duties:
        export["separate_duties"] = True
    export["max_retries"] = system.export_max_retries
    export["retry_backoff_seconds"] = system.export_retry_backoff_seconds
    if export_target or export != {
        "approval": DEFAULT_APPROVAL,
        "max_retries": DEFAULT_MAX_RETRIES,
        "retry_backoff_seconds": DEFAULT_RETRY_BACKOFF_SECONDS,
    }:
        item["export"] = export
    profiles = sorted(system.run_profiles.all(), key=lambda p: p.pk)
    if profiles:
        item["run_profiles"] = [_run_profile(p) for p in profiles]
    return item


def _settings(system: ConnectedSystem) -> dict[str, Any]:
    """Non-secret settings as stored, secrets as ``${VAR}``, in the connector's order."""
    try:
        specs = get_connector_class(system.connector).settings_spec
    except UnknownConnector:
        specs = ()
    stored = dict(system.settings or {})
    secrets = secret_values(system.secret_settings or {})
    settings: dict[str, Any] = {}
    for spec in specs:
        if spec.secret:
            if secrets.get(spec.name) not in (None, ""):
                variable = variable_for(system.name, spec.name, system.secret_settings)
                settings[spec.name] = f"${{{variable}}}"
        elif spec.name in stored:
            settings[spec.name] = stored.pop(spec.name)
    for name in sorted(stored):
        if not name.startswith("_"):
            settings[name] = stored[name]
    return settings


def _object_types(system: ConnectedSystem) -> list[ConnectedSystemObjectType]:
    return list(
        ConnectedSystemObjectType.objects.filter(connected_system=system)
        .order_by("pk")
        .prefetch_related("attributes")
    )


def _object_type(object_type: ConnectedSystemObjectType) -> dict[str, Any]:
    item: dict[str, Any] = {"name": object_type.name}
    if object_type.container:
        item["container"] = object_type.container
    item["external_id"] = object_type.external_id_attribute
    if object_type.secondary_external_id_attribute:
        item["secondary_external_id"] = object_type.secondary_external_id_attribute
    if not object_type.selected:
        item["selected"] = False
    attributes = {
        a.name: declaration
        for a in sorted(object_type.attributes.all(), key=lambda a: a.pk)
        if (declaration := _cs_attribute(a)) is not None
    }
    if attributes:
        item["attributes"] = attributes
    return item


def _cs_attribute(attribute: ConnectedSystemAttribute) -> Any:
    """How the file declares an attribute; None when it is as an import would add it."""
    extra: dict[str, Any] = {}
    if attribute.multivalued:
        extra["multivalued"] = True
    if attribute.references:
        extra["references"] = attribute.references
    if attribute.writability != AttributeWritability.READ_WRITE:
        extra["writability"] = attribute.writability
    if attribute.optional:
        extra["optional"] = True
    if extra:
        return Flow(type=attribute.data_type, **extra)
    if attribute.data_type != AttributeDataType.TEXT:
        return attribute.data_type
    return None


def _run_profile(profile: RunProfile) -> Flow:
    item = Flow(name=profile.name, type=profile.profile_type)
    if profile.page_size is not None:
        item["page_size"] = profile.page_size
    return item


# --------------------------------------------------------------------------- sync rules


def _rule(rule: SyncRule) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": rule.name,
        "connected_system": rule.connected_system.name,
        "direction": rule.direction,
        "object_type": rule.cs_object_type.name,
        "metaverse_object_type": rule.mv_object_type.name,
    }
    if not rule.enabled:
        item["enabled"] = False
    if rule.scope:
        item["scope"] = Quoted(rule.scope)
    is_export = rule.direction == SyncRuleDirection.EXPORT
    if is_export:
        item["provision"] = rule.provision
        if rule.dn_template:
            item["dn"] = Quoted(rule.dn_template)
        item["deprovision"] = rule.deprovision_action
        item["enforce_state"] = rule.enforce_state
        if policy := parse_policy(rule.initial_password):  # the file's order, not jsonb's
            item["initial_password"] = Flow(policy.as_json())
        if rule.disable_flows or rule.disable_dn_template:
            disable: dict[str, Any] = {}
            if rule.disable_flows:
                disable["flows"] = [
                    Flow({"cs": flow["target"], "expression": Quoted(flow["expression"])})
                    if flow.get("expression")
                    else Flow({"cs": flow["target"], "from": flow["source"]})
                    for flow in rule.disable_flows
                ]
            if rule.disable_dn_template:
                disable["dn"] = Quoted(rule.disable_dn_template)
            item["disable"] = disable
        if rule.delete_after_days is not None:
            item["delete_after_days"] = rule.delete_after_days
    else:
        joins = [Flow(cs=j.cs_attribute, mv=j.mv_attribute) for j in rule.joins.all()]
        if joins:
            item["join"] = joins
        item["project"] = rule.project
    target = "cs" if is_export else "mv"
    item["flows"] = [
        Flow({target: flow.target, "expression": Quoted(flow.expression)})
        if flow.kind == FlowKind.EXPRESSION
        else Flow({target: flow.target, "from": flow.source})
        for flow in rule.flows.all()
    ]
    return item


# --------------------------------------------------------------------------- schedules


def _schedules() -> list[dict[str, Any]]:
    schedules = []
    for schedule in Schedule.objects.order_by("name").prefetch_related(
        "steps__run_profile__connected_system"
    ):
        item: dict[str, Any] = {"name": schedule.name}
        if schedule.description:
            item["description"] = schedule.description
        item["cron"] = schedule.cron
        if not schedule.enabled:
            item["enabled"] = False
        if not schedule.stop_on_failure:
            item["stop_on_failure"] = False
        item["steps"] = [
            Flow(system=step.run_profile.connected_system.name, profile=step.run_profile.name)
            for step in schedule.steps.all()
        ]
        schedules.append(item)
    return schedules
