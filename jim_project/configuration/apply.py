"""Writing a checked configuration to the database, by name, in one transaction.

Every object of the file is created, or updated when a field differs (an object that
already matches is not written at all, so applying the same file twice changes no
row). Joins and flows of a sync rule, and the steps of a schedule, are replaced as a
whole when they differ from the file. With ``prune``, what the file no longer names is
removed: sync rules, schedules (only when the file has a ``schedules`` key), connected
systems, the object types and run profiles of the file's systems, metaverse object
types and the attributes of the file's metaverse types. Connected-system attributes
are never removed: imports and schema discovery add them, not the file.

Each object created, updated or removed gets one entry on the audit trail, in the same
transaction, with its fields before → after (secrets masked; :mod:`audit.recording`),
recorded for whoever runs ``jim apply`` (the ``jim`` command's OS user, via ``cli``).

Sync rule precedence follows the file's order (the first rule has precedence). Stored
precedence numbers are kept when they already give that order; otherwise the file's
rules are numbered 1, 2, 3… in order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from audit.models import Action, AuditEntry
from audit.recording import diff, entry, json_value, secret_fields_of, snapshot
from connectors.choices import AttributeDataType
from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    RunProfile,
    Schedule,
    ScheduleStep,
)
from jim_project.configuration.schema import (
    AttributeDecl,
    Configuration,
    FlowDecl,
    RuleDecl,
    SystemDecl,
)
from jim_project.configuration.secrets import (
    SECRET_ENV_KEY,
    default_variable,
    remembered_variables,
)
from metaverse.choices import FlowKind, SyncRuleDirection
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)

CREATE, UPDATE, REMOVE = "create", "update", "remove"


@dataclass(frozen=True)
class Change:
    """One object created, updated (which keys) or removed."""

    action: str
    kind: str
    name: str
    keys: tuple[str, ...] = ()

    def describe(self, *, planned: bool = False) -> str:
        """``created sync rule 'X'``, or ``would create sync rule 'X'`` when ``planned``."""
        verb = f"would {self.action}" if planned else f"{self.action}d"
        text = f"{verb} {self.kind} {self.name!r}"
        return f"{text}: {', '.join(self.keys)}" if self.keys else text

    def __str__(self) -> str:
        return self.describe()


@dataclass
class Report:
    """What applying a file changed (or, with ``--check``, would change)."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for change in self.changes if change.action == action)

    def summary(self) -> str:
        return (
            f"{self.count(CREATE)} created, {self.count(UPDATE)} updated, "
            f"{self.count(REMOVE)} removed"
        )


def _assign(instance: models.Model, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Set ``values`` on ``instance``; the fields that changed, each ``[before, after]``."""
    changed = {}
    for name, value in values.items():
        before = getattr(instance, name)
        if before != value:
            setattr(instance, name, value)
            changed[name] = [before, value]
    return changed


def _audited(
    action: str, instance: models.Model, changes: dict[str, list[Any]] | None = None
) -> Any:
    """An (unsaved) audit entry for ``instance``; ``changes`` as :func:`_assign`
    gives them, or, for a new object, its values as ``[None, value]``."""
    before = {name: json_value(pair[0]) for name, pair in (changes or {}).items()}
    after = {name: json_value(pair[1]) for name, pair in (changes or {}).items()}
    return entry(
        None, action, instance, changes=diff(before, after, secret_fields_of(type(instance)))
    )


def _created(values: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: [None, value] for name, value in values.items()}


def _removed(instance: models.Model) -> Any:
    return _audited(Action.DELETED, instance, {k: [v, None] for k, v in snapshot(instance).items()})


def _keys(changed: Iterable[str], names: dict[str, str]) -> tuple[str, ...]:
    """Model field names → the file's key names, for the report."""
    return tuple(names.get(field_name, field_name) for field_name in changed)


_SYSTEM_KEYS = {
    "config_base_dir": "base_dir",
    "approval_mode": "export.approval",
    "separate_duties": "export.separate_duties",
    "export_max_retries": "export.max_retries",
    "export_retry_backoff_seconds": "export.retry_backoff_seconds",
}
_OBJECT_TYPE_KEYS = {
    "external_id_attribute": "external_id",
    "secondary_external_id_attribute": "secondary_external_id",
}
_ATTRIBUTE_KEYS = {"data_type": "type"}
_MV_TYPE_KEYS = {
    "deletion_rule": "deletion.when",
    "deletion_grace_period_days": "deletion.grace_period_days",
}
_RULE_KEYS = {
    "connected_system_id": "connected_system",
    "cs_object_type_id": "object_type",
    "mv_object_type_id": "metaverse_object_type",
    "dn_template": "dn",
    "deprovision_action": "deprovision",
    "disable_flows": "disable.flows",
    "disable_dn_template": "disable.dn",
}


class Applier:
    """Applies one :class:`Configuration`; see the module docstring."""

    def __init__(self, config: Configuration, *, prune: bool) -> None:
        self.config = config
        self.prune = prune
        self.report = Report(notes=list(config.notes))
        self.mv_types: dict[str, MetaverseObjectType] = {}
        self.systems: dict[str, ConnectedSystem] = {}
        self.object_types: dict[tuple[str, str], ConnectedSystemObjectType] = {}
        self.audit_entries: list[Any] = []

    def run(self) -> Report:
        self._metaverse_types()
        self._systems()
        self._authoritative_systems()
        self._sync_rules()
        self._inferred_attributes()
        if self.config.schedules is not None:
            self._schedules()
        if self.prune:
            self._prune()
        AuditEntry.objects.bulk_create(self.audit_entries)
        return self.report

    def _record(
        self,
        action: str,
        kind: str,
        name: str,
        keys: Iterable[str] = (),
        *,
        obj: models.Model | None = None,
        changes: dict[str, list[Any]] | None = None,
    ) -> None:
        """Report a change; with ``obj``, put it on the audit trail too (an object
        created in bulk is put there by the caller, once it has its id)."""
        self.report.changes.append(Change(action, kind, name, tuple(keys)))
        if obj is not None:
            self._audit(action, obj, changes)

    def _audit(
        self, action: str, obj: models.Model, changes: dict[str, list[Any]] | None = None
    ) -> None:
        if action == REMOVE:
            self.audit_entries.append(_removed(obj))
        else:
            audit_action = Action.CREATED if action == CREATE else Action.CHANGED
            self.audit_entries.append(_audited(audit_action, obj, changes))

    # -- metaverse --------------------------------------------------------------

    def _metaverse_types(self) -> None:
        self.mv_types = {t.name: t for t in MetaverseObjectType.objects.all()}
        for decl in self.config.metaverse_types:
            values = {
                "deletion_rule": decl.deletion_rule,
                "deletion_grace_period_days": decl.grace_period_days,
            }
            mv_type = self.mv_types.get(decl.name)
            if mv_type is None:
                mv_type = MetaverseObjectType.objects.create(name=decl.name, **values)
                self.mv_types[decl.name] = mv_type
                self._record(
                    CREATE,
                    "metaverse object type",
                    decl.name,
                    obj=mv_type,
                    changes=_created(values),
                )
            elif changed := _assign(mv_type, values):
                mv_type.save(update_fields=changed)
                self._record(
                    UPDATE,
                    "metaverse object type",
                    decl.name,
                    _keys(changed, _MV_TYPE_KEYS),
                    obj=mv_type,
                    changes=changed,
                )
        declared = {self.mv_types[d.name].pk: d for d in self.config.metaverse_types}
        existing = {
            (a.object_type_id, a.name): a
            for a in MetaverseAttribute.objects.filter(object_type_id__in=declared)
        }
        new, updated = [], []
        for type_id, decl in declared.items():
            for attribute in decl.attributes.values():
                values = {"data_type": attribute.data_type, "multivalued": attribute.multivalued}
                label = f"{decl.name}.{attribute.name}"
                stored = existing.get((type_id, attribute.name))
                if stored is None:
                    new.append(
                        MetaverseAttribute(object_type_id=type_id, name=attribute.name, **values)
                    )
                    self._record(CREATE, "metaverse attribute", label)
                elif changed := _assign(stored, values):
                    updated.append(stored)
                    self._record(
                        UPDATE,
                        "metaverse attribute",
                        label,
                        _keys(changed, _ATTRIBUTE_KEYS),
                        obj=stored,
                        changes=changed,
                    )
        MetaverseAttribute.objects.bulk_create(new)
        for attribute in new:
            self._audit(CREATE, attribute, _created(_attribute_values(attribute)))
        MetaverseAttribute.objects.bulk_update(updated, ["data_type", "multivalued"])

    def _authoritative_systems(self) -> None:
        for decl in self.config.metaverse_types:
            mv_type = self.mv_types[decl.name]
            wanted = {self.systems[name].pk for name in decl.authoritative}
            current = set(mv_type.authoritative_systems.values_list("pk", flat=True))
            if wanted != current:
                names = {
                    s.pk: s.name for s in ConnectedSystem.objects.filter(pk__in=wanted | current)
                }
                mv_type.authoritative_systems.set(wanted)
                self._record(
                    UPDATE,
                    "metaverse object type",
                    decl.name,
                    ["deletion.authoritative"],
                    obj=mv_type,
                    changes={
                        "authoritative_systems": [
                            sorted(names[pk] for pk in current),
                            sorted(names[pk] for pk in wanted),
                        ]
                    },
                )

    # -- connected systems -----------------------------------------------------------

    def _systems(self) -> None:
        self.systems = {s.name: s for s in ConnectedSystem.objects.all()}
        for decl in self.config.systems:
            system = self.systems.get(decl.name)
            values = {
                "description": decl.description,
                "connector": decl.connector,
                "settings": decl.settings,
                "config_base_dir": decl.base_dir,
                "deletion_threshold": decl.deletion_threshold,
                "change_threshold": decl.change_threshold,
                "approval_mode": decl.approval_mode,
                "separate_duties": decl.separate_duties,
                "export_max_retries": decl.max_retries,
                "export_retry_backoff_seconds": decl.retry_backoff_seconds,
            }
            current_secrets = dict(system.secret_settings or {}) if system else {}
            values["secret_settings"] = _secret_settings(decl, current_secrets)
            if system is None:
                system = ConnectedSystem.objects.create(name=decl.name, **values)
                self.systems[decl.name] = system
                self._record(
                    CREATE, "connected system", decl.name, obj=system, changes=_created(values)
                )
            elif changed := _assign(system, values):
                system.save(update_fields=changed)
                keys = [
                    _secret_change(current_secrets, values["secret_settings"])
                    if name == "secret_settings"
                    else name
                    for name in changed
                ]
                self._record(
                    UPDATE,
                    "connected system",
                    decl.name,
                    _keys(keys, _SYSTEM_KEYS),
                    obj=system,
                    changes=changed,
                )
        self._object_types()
        self._run_profiles()

    def _object_types(self) -> None:
        declared = self.config.systems
        system_ids = [self.systems[s.name].pk for s in declared]
        for object_type in ConnectedSystemObjectType.objects.filter(
            connected_system_id__in=system_ids
        ).select_related("connected_system"):
            self.object_types[(object_type.connected_system.name, object_type.name)] = object_type
        attribute_work: list[tuple[ConnectedSystemObjectType, str, AttributeDecl]] = []
        for system_decl in declared:
            system = self.systems[system_decl.name]
            for decl in system_decl.object_types:
                label = f"{system.name}/{decl.name}"
                values = {
                    "external_id_attribute": decl.external_id,
                    "secondary_external_id_attribute": decl.secondary_external_id,
                    "container": decl.container,
                    "selected": decl.selected,
                }
                object_type = self.object_types.get((system.name, decl.name))
                if object_type is None:
                    object_type = ConnectedSystemObjectType.objects.create(
                        connected_system=system, name=decl.name, **values
                    )
                    self.object_types[(system.name, decl.name)] = object_type
                    self._record(
                        CREATE, "object type", label, obj=object_type, changes=_created(values)
                    )
                elif changed := _assign(object_type, values):
                    object_type.save(update_fields=changed)
                    self._record(
                        UPDATE,
                        "object type",
                        label,
                        _keys(changed, _OBJECT_TYPE_KEYS),
                        obj=object_type,
                        changes=changed,
                    )
                attribute_work += [(object_type, label, a) for a in decl.attributes.values()]
        self._cs_attributes(attribute_work)

    def _cs_attributes(
        self, work: list[tuple[ConnectedSystemObjectType, str, AttributeDecl]]
    ) -> None:
        existing = {
            (a.object_type_id, a.name): a
            for a in ConnectedSystemAttribute.objects.filter(
                object_type_id__in={object_type.pk for object_type, _, _ in work}
            )
        }
        new, updated = [], []
        for object_type, type_label, decl in work:
            values: dict[str, Any] = {
                "data_type": decl.data_type,
                "multivalued": decl.multivalued,
                "references": decl.references,
                "optional": decl.optional,
            }
            if decl.writability is not None:
                values["writability"] = decl.writability
            label = f"{type_label}.{decl.name}"
            stored = existing.get((object_type.pk, decl.name))
            if stored is None:
                new.append(
                    ConnectedSystemAttribute(object_type=object_type, name=decl.name, **values)
                )
                self._record(CREATE, "attribute", label)
            elif changed := _assign(stored, values):
                updated.append(stored)
                self._record(
                    UPDATE,
                    "attribute",
                    label,
                    _keys(changed, _ATTRIBUTE_KEYS),
                    obj=stored,
                    changes=changed,
                )
        ConnectedSystemAttribute.objects.bulk_create(new)
        for attribute in new:
            self._audit(CREATE, attribute, _created(_attribute_values(attribute)))
        ConnectedSystemAttribute.objects.bulk_update(
            updated, ["data_type", "multivalued", "references", "writability", "optional"]
        )

    def _run_profiles(self) -> None:
        system_ids = [self.systems[s.name].pk for s in self.config.systems]
        existing = {
            (p.connected_system_id, p.name): p
            for p in RunProfile.objects.filter(connected_system_id__in=system_ids)
        }
        for system_decl in self.config.systems:
            system = self.systems[system_decl.name]
            for decl in system_decl.run_profiles:
                values = {"profile_type": decl.profile_type, "page_size": decl.page_size}
                label = f"{system.name}/{decl.name}"
                profile = existing.get((system.pk, decl.name))
                if profile is None:
                    profile = RunProfile.objects.create(
                        connected_system=system, name=decl.name, **values
                    )
                    self._record(
                        CREATE, "run profile", label, obj=profile, changes=_created(values)
                    )
                elif changed := _assign(profile, values):
                    profile.save(update_fields=changed)
                    self._record(
                        UPDATE,
                        "run profile",
                        label,
                        _keys(changed, {"profile_type": "type"}),
                        obj=profile,
                        changes=changed,
                    )

    # -- sync rules --------------------------------------------------------------------

    def _sync_rules(self) -> None:
        existing = {r.name: r for r in SyncRule.objects.prefetch_related("joins", "flows")}
        precedences = _precedences(self.config.rules, existing)
        for decl, precedence in zip(self.config.rules, precedences, strict=True):
            values = self._rule_values(decl, precedence)
            joins = [(j.cs, j.mv) for j in decl.joins]
            flows = [_flow_row(f) for f in decl.flows]
            rule = existing.get(decl.name)
            if rule is None:
                rule = SyncRule.objects.create(name=decl.name, **values)
                _write_joins(rule, joins)
                _write_flows(rule, flows)
                created = {**values, "join": _join_rows(joins), "flows": _flow_rows(flows)}
                self._record(CREATE, "sync rule", decl.name, obj=rule, changes=_created(created))
                continue
            changed = _assign(rule, values)
            if changed:
                rule.save(update_fields=changed)
            stored_joins = [(j.cs_attribute, j.mv_attribute) for j in rule.joins.all()]
            if joins != stored_joins:
                SyncRuleJoin.objects.filter(sync_rule=rule).delete()
                _write_joins(rule, joins)
                changed["join"] = [_join_rows(stored_joins), _join_rows(joins)]
            stored_flows = [(f.kind, f.source, f.expression, f.target) for f in rule.flows.all()]
            if flows != stored_flows:
                SyncRuleFlow.objects.filter(sync_rule=rule).delete()
                _write_flows(rule, flows)
                changed["flows"] = [_flow_rows(stored_flows), _flow_rows(flows)]
            if changed:
                self._record(
                    UPDATE,
                    "sync rule",
                    decl.name,
                    _keys(changed, _RULE_KEYS),
                    obj=rule,
                    changes=changed,
                )

    def _inferred_attributes(self) -> None:
        """Connected-system attributes whose kind the sync rules imply.

        A CS attribute that flows into a metaverse reference, or that an export rule
        fills from one, holds references (an LDAP ``manager``, a group's ``member``);
        one an export rule fills from a multi-valued metaverse attribute is multi-valued.
        Recorded in the schema so that import resolves the values into CSO links and
        export turns them back into DNs, whether or not the file declares them.
        """
        mv_attributes = {(a.object_type_id, a.name): a for a in MetaverseAttribute.objects.all()}
        wanted: dict[tuple[int, str], dict[str, Any]] = {}
        rules = SyncRule.objects.filter(name__in=[r.name for r in self.config.rules])
        for rule in rules.prefetch_related("flows"):
            for flow in rule.flows.all():
                if flow.kind != FlowKind.DIRECT:
                    continue
                export = rule.direction == SyncRuleDirection.EXPORT
                mv_name, cs_name = (
                    (flow.source, flow.target) if export else (flow.target, flow.source)
                )
                mv = mv_attributes.get((rule.mv_object_type_id, mv_name))
                if mv is None:
                    continue
                kind: dict[str, Any] = {}
                if mv.data_type == AttributeDataType.REFERENCE:
                    kind["data_type"] = AttributeDataType.REFERENCE
                if export and mv.multivalued:
                    kind["multivalued"] = True
                if kind:
                    wanted.setdefault((rule.cs_object_type_id, cs_name), {}).update(kind)
        if not wanted:
            return
        existing = {
            (a.object_type_id, a.name): a
            for a in ConnectedSystemAttribute.objects.filter(
                object_type_id__in={type_id for type_id, _ in wanted}
            )
        }
        labels = {t.pk: f"{system}/{name}" for (system, name), t in self.object_types.items()}
        for (type_id, name), kind in wanted.items():
            stored = existing.get((type_id, name))
            label = f"{labels.get(type_id, type_id)}.{name}"
            if stored is None:
                stored = ConnectedSystemAttribute.objects.create(
                    object_type_id=type_id, name=name, **kind
                )
                self._record(
                    CREATE, "attribute", label, obj=stored, changes=_created({"name": name, **kind})
                )
            elif changed := _assign(stored, kind):
                stored.save(update_fields=changed)
                self._record(
                    UPDATE,
                    "attribute",
                    label,
                    _keys(changed, _ATTRIBUTE_KEYS),
                    obj=stored,
                    changes=changed,
                )

    def _rule_values(self, decl: RuleDecl, precedence: int) -> dict[str, Any]:
        system = self.systems[decl.connected_system]
        object_type = self.object_types.get((system.name, decl.object_type))
        if object_type is None:  # a system the file does not declare (kept as stored)
            object_type = ConnectedSystemObjectType.objects.get(
                connected_system=system, name=decl.object_type
            )
            self.object_types[(system.name, decl.object_type)] = object_type
        is_export = decl.direction == SyncRuleDirection.EXPORT
        return {
            "connected_system_id": system.pk,
            "direction": decl.direction,
            "cs_object_type_id": object_type.pk,
            "mv_object_type_id": self.mv_types[decl.metaverse_object_type].pk,
            "precedence": precedence,
            "enabled": decl.enabled,
            "scope": decl.scope,
            "project": decl.project and not is_export,
            "provision": decl.provision and is_export,
            "dn_template": decl.dn if is_export else "",
            "deprovision_action": decl.deprovision,
            "enforce_state": decl.enforce_state and is_export,
            "initial_password": (
                decl.initial_password.as_json() if decl.initial_password and is_export else None
            ),
            "disable_flows": [_disable_flow(f) for f in decl.disable_flows],
            "disable_dn_template": decl.disable_dn,
            "delete_after_days": decl.delete_after_days,
        }

    # -- schedules -----------------------------------------------------------------------

    def _schedules(self) -> None:
        assert self.config.schedules is not None
        existing = {s.name: s for s in Schedule.objects.prefetch_related("steps")}
        profiles = {
            (p.connected_system.name, p.name): p
            for p in RunProfile.objects.select_related("connected_system")
        }
        for decl in self.config.schedules:
            values = {
                "description": decl.description,
                "cron": decl.cron,
                "enabled": decl.enabled,
                "stop_on_failure": decl.stop_on_failure,
            }
            steps = [profiles[(s.system, s.profile)].pk for s in decl.steps]
            names = {p.pk: str(p) for p in profiles.values()}
            step_names = [names[pk] for pk in steps]
            schedule = existing.get(decl.name)
            if schedule is None:
                schedule = Schedule.objects.create(name=decl.name, **values)
                changed = {"steps": [[], step_names]}
                self._record(
                    CREATE,
                    "schedule",
                    decl.name,
                    obj=schedule,
                    changes={**_created(values), **changed},
                )
            else:
                changed = _assign(schedule, values)
                if changed:
                    schedule.save(update_fields=changed)
                stored = [s.run_profile_id for s in schedule.steps.all()]
                if steps != stored:
                    changed["steps"] = [[names.get(pk, pk) for pk in stored], step_names]
                if changed:
                    self._record(
                        UPDATE, "schedule", decl.name, changed, obj=schedule, changes=changed
                    )
            if "steps" in changed:
                ScheduleStep.objects.filter(schedule=schedule).delete()
                ScheduleStep.objects.bulk_create(
                    ScheduleStep(schedule=schedule, order=i, run_profile_id=profile_id)
                    for i, profile_id in enumerate(steps)
                )

    # -- prune -------------------------------------------------------------------------

    def _prune(self) -> None:
        config = self.config
        rule_names = {r.name for r in config.rules}
        for rule in SyncRule.objects.exclude(name__in=rule_names).order_by("name"):
            self._record(REMOVE, "sync rule", rule.name, obj=rule)
            rule.delete()
        if config.schedules is not None:
            names = {s.name for s in config.schedules}
            for schedule in Schedule.objects.exclude(name__in=names).order_by("name"):
                self._record(REMOVE, "schedule", schedule.name, obj=schedule)
                schedule.delete()
        system_names = {s.name for s in config.systems}
        for system in ConnectedSystem.objects.exclude(name__in=system_names).order_by("name"):
            self._record(REMOVE, "connected system", system.name, obj=system)
            system.delete()
        for decl in config.systems:
            system = self.systems[decl.name]
            keep_types = [t.name for t in decl.object_types]
            for object_type in system.object_types.exclude(name__in=keep_types).order_by("name"):
                label = f"{system.name}/{object_type.name}"
                self._record(REMOVE, "object type", label, obj=object_type)
                object_type.delete()
            keep_profiles = [p.name for p in decl.run_profiles]
            for profile in system.run_profiles.exclude(name__in=keep_profiles).order_by("name"):
                label = f"{system.name}/{profile.name}"
                self._record(REMOVE, "run profile", label, obj=profile)
                profile.delete()
        for decl in config.metaverse_types:
            mv_type = self.mv_types[decl.name]
            doomed = list(
                mv_type.attributes.exclude(name__in=list(decl.attributes)).order_by("name")
            )
            for attribute in doomed:
                label = f"{decl.name}.{attribute.name}"
                self._record(REMOVE, "metaverse attribute", label, obj=attribute)
            if doomed:
                MetaverseAttribute.objects.filter(pk__in=[a.pk for a in doomed]).delete()
        type_names = [t.name for t in config.metaverse_types]
        for mv_type in MetaverseObjectType.objects.exclude(name__in=type_names).order_by("name"):
            self._record(REMOVE, "metaverse object type", mv_type.name, obj=mv_type)
            mv_type.delete()


def _write_joins(rule: SyncRule, joins: list[tuple[str, str]]) -> None:
    SyncRuleJoin.objects.bulk_create(
        SyncRuleJoin(sync_rule=rule, order=i, cs_attribute=cs, mv_attribute=mv)
        for i, (cs, mv) in enumerate(joins)
    )


def _write_flows(rule: SyncRule, flows: list[tuple[str, str, str, str]]) -> None:
    SyncRuleFlow.objects.bulk_create(
        SyncRuleFlow(
            sync_rule=rule, order=i, kind=kind, source=source, expression=expression, target=target
        )
        for i, (kind, source, expression, target) in enumerate(flows)
    )


def _join_rows(joins: list[tuple[str, str]]) -> list[str]:
    """Joins as the audit trail shows them: ``cs = mv``."""
    return [f"{cs} = {mv}" for cs, mv in joins]


def _flow_rows(flows: list[tuple[str, str, str, str]]) -> list[str]:
    """Flows as the audit trail shows them: ``target ← source or expression``."""
    return [f"{target} ← {source or expression}" for _, source, expression, target in flows]


def _attribute_values(attribute: models.Model) -> dict[str, Any]:
    """A new attribute's values, for its audit entry (no query)."""
    names = ("name", "data_type", "multivalued", "references", "writability", "optional")
    return {name: getattr(attribute, name) for name in names if hasattr(attribute, name)}


def _disable_flow(flow: FlowDecl) -> dict[str, str]:
    """A ``disable`` flow, as stored (``SyncRule.disable_flows``)."""
    if flow.expression:
        return {"target": flow.target, "expression": flow.expression}
    return {"target": flow.target, "source": flow.source}


def _flow_row(flow: FlowDecl) -> tuple[str, str, str, str]:
    """(kind, source, expression, target) of a flow, as stored."""
    if flow.expression:
        return (FlowKind.EXPRESSION, "", flow.expression, flow.target)
    return (FlowKind.DIRECT, flow.source, "", flow.target)


def _precedences(rules: list[RuleDecl], existing: dict[str, SyncRule]) -> list[int]:
    """Precedence numbers giving the file's order: the stored ones when they already do."""
    if rules and all(r.name in existing for r in rules):
        stored = [(existing[r.name].precedence, r.name) for r in rules]
        if stored == sorted(stored):
            return [precedence for precedence, _ in stored]
    return list(range(1, len(rules) + 1))


def _secret_settings(decl: SystemDecl, current: dict[str, Any]) -> dict[str, Any]:
    """The secret settings to store for ``decl``, with the variables to remember."""
    remembered = remembered_variables(current)
    secrets: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for name, secret in decl.secrets.items():
        if secret.value is None:  # ${VAR} unset: keep the stored secret (checked before)
            secrets[name] = current[name]
            variable = secret.variable or remembered.get(name)
        elif secret.value == "":  # an empty secret is no secret (as dump shows it)
            continue
        else:
            secrets[name] = secret.value
            variable = secret.variable
        if variable and variable != default_variable(decl.name, name):
            variables[name] = variable
    if variables:
        secrets[SECRET_ENV_KEY] = variables
    return secrets


def _secret_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Which secret settings changed, named (never their values)."""
    names = sorted(
        name
        for name in (set(before) | set(after)) - {SECRET_ENV_KEY}
        if before.get(name) != after.get(name)
    )
    if remembered_variables(before) != remembered_variables(after):
        names.append("(remembered variable)")
    return f"secret settings {' '.join(names)}"
