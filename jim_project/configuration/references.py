"""Checking the names a file refers to, against the file and the database together.

A sync rule may name a connected system, an object type or a metaverse attribute
that the file declares or that is already stored (the file need not repeat what it
does not change). :class:`Outcome` is the configuration as it will be once the file is
applied — the file's declarations plus what is stored, less what ``--prune`` removes —
and :func:`check_references` checks every name against it.

Connected-system attribute names that a rule *reads* (joins, import flows, ``cs.x`` in
scopes and expressions) are only checked when that object type's attributes are
known: once an import of its system has completed and stored objects of it (the import
stores every attribute it sees; a CSV import, every column). Before that any name is
accepted. The targets of export flows are never checked against them: an import only
sees the attributes its objects have, and JIM may be the first to write one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef

from connectors.choices import (
    IMPORT_PROFILE_TYPES,
    ActivityStatus,
    AttributeWritability,
    CsoStatus,
)
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
)
from connectors.registry import connector_sets_passwords
from core.dn import DNError, is_within, normalise_dn
from jim_project.configuration.errors import KeyPath, Problems
from jim_project.configuration.schema import Configuration, FlowDecl, RuleDecl, SecretDecl
from jim_project.configuration.secrets import default_variable
from metaverse.choices import SyncRuleDirection
from metaverse.expressions import (
    HELPERS,
    OBJECT_NAMES,
    ExpressionSyntaxError,
    names_read,
    unique_problem,
)
from metaverse.models import MetaverseAttribute, MetaverseObject, MetaverseObjectType

# --------------------------------------------------------------------------- stored


@dataclass
class StoredObjectType:
    name: str
    external_id: str
    secondary_external_id: str
    imported: bool = False  # an import stored objects of it: its attributes are known
    attributes: dict[str, str] = field(default_factory=dict)  # name → data type
    writability: dict[str, str] = field(default_factory=dict)  # name → writability


@dataclass
class StoredSystem:
    name: str
    connector: str
    secrets: frozenset[str]  # secret settings that hold a value
    object_types: dict[str, StoredObjectType] = field(default_factory=dict)
    run_profiles: set[str] = field(default_factory=set)


@dataclass
class Stored:
    """The configuration in the database, by name (a few queries)."""

    mv_types: dict[str, dict[str, str]] = field(default_factory=dict)  # type → attr → data type
    systems: dict[str, StoredSystem] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Stored:
        stored = cls()
        for type_name in MetaverseObjectType.objects.values_list("name", flat=True):
            stored.mv_types[type_name] = {}
        for type_name, name, data_type in MetaverseAttribute.objects.values_list(
            "object_type__name", "name", "data_type"
        ):
            stored.mv_types[type_name][name] = data_type
        for system in ConnectedSystem.objects.only("name", "connector", "secret_settings"):
            stored.systems[system.name] = StoredSystem(
                name=system.name,
                connector=system.connector,
                secrets=frozenset(
                    key
                    for key, value in (system.secret_settings or {}).items()
                    if not key.startswith("_") and value not in (None, "")
                ),
            )
        imported_systems = Activity.objects.filter(
            connected_system=OuterRef("connected_system"),
            preview=False,
            profile_type__in=IMPORT_PROFILE_TYPES,
            status__in=(ActivityStatus.COMPLETE, ActivityStatus.COMPLETE_WITH_ERRORS),
        )
        imported_objects = ConnectorSpaceObject.objects.filter(object_type=OuterRef("pk")).exclude(
            status=CsoStatus.PENDING_PROVISIONING
        )
        object_types = ConnectedSystemObjectType.objects.select_related(
            "connected_system"
        ).annotate(imported=Exists(imported_systems) & Exists(imported_objects))
        for object_type in object_types:
            stored.systems[object_type.connected_system.name].object_types[object_type.name] = (
                StoredObjectType(
                    name=object_type.name,
                    external_id=object_type.external_id_attribute,
                    secondary_external_id=object_type.secondary_external_id_attribute,
                    imported=object_type.imported,
                )
            )
        for (
            system_name,
            type_name,
            name,
            data_type,
            writability,
        ) in ConnectedSystemAttribute.objects.values_list(
            "object_type__connected_system__name",
            "object_type__name",
            "name",
            "data_type",
            "writability",
        ):
            stored_type = stored.systems[system_name].object_types[type_name]
            stored_type.attributes[name] = data_type
            stored_type.writability[name] = writability
        for system_name, name in RunProfile.objects.values_list("connected_system__name", "name"):
            stored.systems[system_name].run_profiles.add(name)
        return stored


# --------------------------------------------------------------------------- outcome


class Outcome:
    """The configuration as it will be after applying ``config`` (with or without prune)."""

    def __init__(self, config: Configuration, stored: Stored, *, prune: bool) -> None:
        self.config = config
        self.stored = stored
        self.prune = prune
        self._mv = {t.name: t for t in config.metaverse_types}
        self._systems = {s.name: s for s in config.systems}

    def mv_attributes(self, type_name: str) -> dict[str, str] | None:
        """Attribute name → data type of a metaverse object type; None when there is none."""
        declared = self._mv.get(type_name)
        stored = self.stored.mv_types.get(type_name)
        if declared is None:
            return None if self.prune or stored is None else dict(stored)
        attributes = {} if self.prune or stored is None else dict(stored)
        attributes.update({a.name: a.data_type for a in declared.attributes.values()})
        return attributes

    def mv_type_names(self) -> list[str]:
        names = list(self._mv)
        if not self.prune:
            names += [n for n in self.stored.mv_types if n not in self._mv]
        return names

    def system_names(self) -> list[str]:
        names = list(self._systems)
        if not self.prune:
            names += [n for n in self.stored.systems if n not in self._systems]
        return names

    def has_system(self, name: str) -> bool:
        return name in self._systems or (not self.prune and name in self.stored.systems)

    def connector(self, system: str) -> str:
        declared = self._systems.get(system)
        stored = self.stored.systems.get(system)
        return declared.connector if declared else stored.connector if stored else ""

    def object_type_names(self, system: str) -> list[str]:
        stored = self.stored.systems.get(system)
        stored_names = list(stored.object_types) if stored else []
        declared = self._systems.get(system)
        if declared is None:
            return [] if self.prune else stored_names
        names = [t.name for t in declared.object_types]
        if not self.prune:
            names += [n for n in stored_names if n not in names]
        return names

    def secondary_external_id(self, system: str, object_type: str) -> str:
        declared = self._systems.get(system)
        for decl in declared.object_types if declared else ():
            if decl.name == object_type:
                return decl.secondary_external_id
        stored = self.stored.systems.get(system)
        found = stored.object_types.get(object_type) if stored else None
        return found.secondary_external_id if found else ""

    def container(self, system: str, object_type: str) -> str:
        """The object type's container as the file declares it ("" when it does not)."""
        declared = self._systems.get(system)
        for decl in declared.object_types if declared else ():
            if decl.name == object_type:
                return decl.container
        return ""

    def cs_attributes(self, system: str, object_type: str) -> dict[str, str] | None:
        """Attribute name → data type, when the object type's attributes are known."""
        stored_system = self.stored.systems.get(system)
        stored = stored_system.object_types.get(object_type) if stored_system else None
        declared_system = self._systems.get(system)
        declared = (
            next((t for t in declared_system.object_types if t.name == object_type), None)
            if declared_system
            else None
        )
        declared_attributes = declared.attributes if declared else {}
        if stored is None or not stored.imported:
            return None  # never imported: any name may turn up
        attributes = dict(stored.attributes)
        attributes.update({a.name: a.data_type for a in declared_attributes.values()})
        ids = (declared or stored).external_id, (declared or stored).secondary_external_id
        for name in ids:
            if name:
                attributes.setdefault(name, "text")
        return attributes

    def writability(self, system: str, object_type: str, attribute: str) -> str:
        """The attribute's writability as the file declares it, else as stored;
        "" when neither says."""
        declared_system = self._systems.get(system)
        for decl in declared_system.object_types if declared_system else ():
            declared = decl.attributes.get(attribute) if decl.name == object_type else None
            if declared is not None and declared.writability is not None:
                return declared.writability
        stored_system = self.stored.systems.get(system)
        stored = stored_system.object_types.get(object_type) if stored_system else None
        return stored.writability.get(attribute, "") if stored else ""

    def run_profile_names(self, system: str) -> list[str]:
        stored = self.stored.systems.get(system)
        stored_names = sorted(stored.run_profiles) if stored else []
        declared = self._systems.get(system)
        if declared is None:
            return [] if self.prune else stored_names
        names = [p.name for p in declared.run_profiles]
        if not self.prune:
            names += [n for n in stored_names if n not in names]
        return names


# --------------------------------------------------------------------------- checks


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _suggest_name(name: str) -> str:
    """A suggestion for an unknown name in an expression (``sc`` → ``cs``)."""
    close = difflib.get_close_matches(name, [*OBJECT_NAMES, *HELPERS], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fixed_parent(template: str) -> str | None:
    """The parent DN a DN template always ends in — the text after its last placeholder,
    when that is ``,<a DN>`` (``uid={{ mv.uid }},ou=people,dc=example,dc=org`` →
    ``ou=people,dc=example,dc=org``); None when the template does not fix one."""
    if "{%" in template:
        return None
    tail = template[template.rfind("}}") + 2 :] if "}}" in template else ""
    tail = tail.strip()
    if not tail.startswith(",") or not tail[1:].strip():
        return None
    return tail[1:].strip()


def check_references(config: Configuration, outcome: Outcome, problems: Problems) -> None:
    """Add a problem for every name that does not refer to anything in ``outcome``."""
    for mv_type in config.metaverse_types:
        for index, name in enumerate(mv_type.authoritative):
            if not outcome.has_system(name):
                problems.add(
                    (*mv_type.path, "deletion", "authoritative", index),
                    f"no connected system {name!r}{_suggest(name, outcome.system_names())}",
                )
    for system in config.systems:
        for object_type in system.object_types:
            for attribute in object_type.attributes.values():
                if attribute.references and attribute.references not in outcome.object_type_names(
                    system.name
                ):
                    problems.add(
                        (*attribute.path, "references"),
                        f"{system.name} has no object type {attribute.references!r} "
                        f"(known: {_known(outcome.object_type_names(system.name))})",
                    )
        for secret in system.secrets.values():
            _check_secret(system.name, secret, outcome, config, problems)
    for rule in config.rules:
        RuleChecker(rule, outcome, problems).check()
    for schedule in config.schedules or ():
        for step in schedule.steps:
            if not step.system or not step.profile:
                continue
            if not outcome.has_system(step.system):
                problems.add(
                    (*step.path, "system"),
                    f"no connected system {step.system!r}"
                    f"{_suggest(step.system, outcome.system_names())}",
                )
            elif step.profile not in outcome.run_profile_names(step.system):
                profiles = outcome.run_profile_names(step.system)
                problems.add(
                    (*step.path, "profile"),
                    f"{step.system} has no run profile {step.profile!r}"
                    f"{_suggest(step.profile, profiles)} (known: {_known(profiles)})",
                )
    if outcome.prune:
        _check_prunable(config, outcome, problems)


def _check_secret(
    system: str, secret: SecretDecl, outcome: Outcome, config: Configuration, problems: Problems
) -> None:
    setting = secret.path[-1]
    if secret.value is None:
        stored = outcome.stored.systems.get(system)
        if stored is None or setting not in stored.secrets:
            problems.add(
                secret.path,
                f"environment variable {secret.variable} not set, and {system} has no stored "
                f"{setting} to keep",
            )
        else:
            config.notes.append(
                f"note: {system}: {secret.variable} is not set; the stored {setting} is kept"
            )
    elif secret.clear_text and secret.value:
        line = problems.line_of(secret.path)
        where = f" (line {line})" if line else ""
        config.notes.append(
            f"warning: {system}: {setting} is written in clear text in the file{where}; "
            f"write ${{{default_variable(system, str(setting))}}} and set that environment "
            "variable instead"
        )


def _check_prunable(config: Configuration, outcome: Outcome, problems: Problems) -> None:
    """Metaverse object types that ``--prune`` would remove must hold no objects."""
    declared = {t.name for t in config.metaverse_types}
    doomed = [name for name in outcome.stored.mv_types if name not in declared]
    if not doomed:
        return
    counts = (
        MetaverseObject.objects.filter(object_type__name__in=doomed)
        .values_list("object_type__name")
        .annotate(n=Count("pk"))
    )
    for name, count in counts:
        problems.add(
            ("metaverse", "object_types"),
            f"--prune would remove metaverse object type {name!r}, but {count} metaverse "
            "objects are of that type: delete them first, or keep the type in the file",
        )


class RuleChecker:
    """Checks the names one sync rule refers to."""

    def __init__(self, rule: RuleDecl, outcome: Outcome, problems: Problems) -> None:
        self.rule = rule
        self.outcome = outcome
        self.problems = problems
        self.mv_attributes: dict[str, str] | None = None
        self.cs_attributes: dict[str, str] | None = None
        self.cs_label = ""

    def check(self) -> None:
        if not self._check_targets():
            return
        rule = self.rule
        is_export = rule.direction == SyncRuleDirection.EXPORT
        for join in rule.joins:
            self._cs(join.cs, (*join.path, "cs"))
            self._mv(join.mv, (*join.path, "mv"))
        for flow in rule.flows:
            self._check_flow(flow, is_export)
        if rule.scope:
            self._check_expression(rule.scope, (*rule.path, "scope"), objects=("cs", "mv"))
            self._check_unique(rule.scope, (*rule.path, "scope"), export_flow=False)
        if rule.dn:
            self._check_expression(rule.dn, (*rule.path, "dn"), objects=("mv",), template=True)
            self._check_within_container(rule.dn, (*rule.path, "dn"), "the objects it creates")
        for flow in rule.disable_flows:
            self._check_flow(flow, is_export)
        if rule.disable_dn:
            path = (*rule.path, "disable", "dn")
            self._check_expression(rule.disable_dn, path, objects=("mv",), template=True)
            self._check_within_container(rule.disable_dn, path, "a disabled account moved there")
        if (
            is_export
            and rule.provision
            and not rule.dn
            and self.outcome.secondary_external_id(rule.connected_system, rule.object_type) == "dn"
        ):
            self.problems.add(
                (*rule.path, "provision"),
                f"provisioning {rule.object_type} objects of {rule.connected_system} needs a "
                "'dn' template (their secondary external id is the DN)",
            )
        if rule.initial_password:
            self._check_passwords()

    def _check_within_container(self, template: str, path: KeyPath, what: str) -> None:
        """A DN template whose fixed parent lies outside the object type's container
        makes objects that imports never see: a provisioned object is never confirmed,
        a moved one looks deleted."""
        rule = self.rule
        container = self.outcome.container(rule.connected_system, rule.object_type)
        parent = fixed_parent(template)
        if not container or parent is None:
            return
        try:
            outside = not is_within(normalise_dn(parent), normalise_dn(container))
        except DNError:
            return  # the template's own check names a malformed DN
        if outside:
            self.problems.add(
                path,
                f"{parent!r} is outside the container {container!r} of {rule.object_type} "
                f"in {rule.connected_system}: imports would not see {what} (an object "
                "that leaves the container is taken for deleted); use a DN within it, or "
                "widen the container",
            )

    def _check_passwords(self) -> None:
        """An initial password goes only to a connector that knows how to send one."""
        connector = self.outcome.connector(self.rule.connected_system)
        if connector and not connector_sets_passwords(connector):
            self.problems.add(
                (*self.rule.path, "initial_password"),
                f"the {connector} connector of {self.rule.connected_system} does not set "
                "passwords (the ldap connector does)",
            )

    def _check_targets(self) -> bool:
        """The rule's system, object types; False when the rest cannot be checked."""
        rule, outcome = self.rule, self.outcome
        ok = True
        if rule.connected_system and not outcome.has_system(rule.connected_system):
            self.problems.add(
                (*rule.path, "connected_system"),
                f"no connected system {rule.connected_system!r}"
                f"{_suggest(rule.connected_system, outcome.system_names())}"
                f" (known: {_known(outcome.system_names())})",
            )
            ok = False
        elif rule.connected_system and rule.object_type:
            names = outcome.object_type_names(rule.connected_system)
            if rule.object_type not in names:
                self.problems.add(
                    (*rule.path, "object_type"),
                    f"{rule.connected_system} has no object type {rule.object_type!r}"
                    f"{_suggest(rule.object_type, names)} (known: {_known(names)})",
                )
                ok = False
            else:
                self.cs_attributes = outcome.cs_attributes(rule.connected_system, rule.object_type)
                self.cs_label = f"{rule.object_type} of {rule.connected_system}"
        if rule.metaverse_object_type:
            self.mv_attributes = outcome.mv_attributes(rule.metaverse_object_type)
            if self.mv_attributes is None:
                names = outcome.mv_type_names()
                self.problems.add(
                    (*rule.path, "metaverse_object_type"),
                    f"no metaverse object type {rule.metaverse_object_type!r}"
                    f"{_suggest(rule.metaverse_object_type, names)} (known: {_known(names)})",
                )
                ok = False
        return ok and bool(rule.direction and rule.metaverse_object_type and rule.object_type)

    def _mv(self, name: str, path: KeyPath, how: str = "") -> None:
        if not name or self.mv_attributes is None or name in self.mv_attributes:
            return
        self.problems.add(
            path,
            f"no metaverse attribute {name!r} on {self.rule.metaverse_object_type}{how}"
            f"{_suggest(name, self.mv_attributes)}",
        )

    def _cs(self, name: str, path: KeyPath, how: str = "") -> None:
        if not name or self.cs_attributes is None or name in self.cs_attributes:
            return
        self.problems.add(
            path,
            f"no attribute {name!r} on {self.cs_label}{how}{_suggest(name, self.cs_attributes)}"
            " (not seen by its imports; declare it under the object type's attributes if the "
            "system has it)",
        )

    def _check_flow(self, flow: FlowDecl, is_export: bool) -> None:
        if is_export:
            # The target is not checked: an import only sees the attributes its objects
            # have, and JIM may be the first to write one (a directory's ``mail``).
            self._mv(flow.source, (*flow.path, "from"))
            self._check_writable(flow)
            objects: tuple[str, ...] = ("mv",)
        else:
            self._mv(flow.target, (*flow.path, "mv"))
            self._cs(flow.source, (*flow.path, "from"))
            objects = ("cs", "mv")
        if flow.expression:
            self._check_expression(flow.expression, (*flow.path, "expression"), objects=objects)
            self._check_unique(flow.expression, (*flow.path, "expression"), export_flow=is_export)

    def _check_writable(self, flow: FlowDecl) -> None:
        """An export flow to an attribute known to be read-only is refused."""
        rule = self.rule
        writability = self.outcome.writability(rule.connected_system, rule.object_type, flow.target)
        if writability == AttributeWritability.READ_ONLY:
            self.problems.add(
                (*flow.path, "cs"),
                f"{flow.target} of {self.cs_label} is read-only (writability: read_only): "
                "an export flow cannot write it; remove the flow, or declare the attribute "
                "read_write if the system accepts it",
            )

    def _check_unique(self, source: str, path: KeyPath, *, export_flow: bool) -> None:
        try:
            problem = unique_problem(source, export_flow=export_flow)
        except ExpressionSyntaxError:
            return  # reported by _check_expression
        if problem:
            self.problems.add(path, problem)

    def _check_expression(
        self, source: str, path: KeyPath, *, objects: tuple[str, ...], template: bool = False
    ) -> None:
        try:
            read = names_read(source, template=template)
        except ExpressionSyntaxError as exc:
            self.problems.add(path, f"does not compile: {exc}")
            return
        for name in sorted(read.unknown):
            self.problems.add(path, f"unknown name {name!r}{_suggest_name(name)}")
        for name in sorted(read.objects - set(objects)):
            what = "a DN template" if template else "an export flow"
            self.problems.add(
                path,
                f"{what} can only read mv (the metaverse object), not {name}",
            )
        if "mv" in objects:
            for attribute in sorted(read.attributes["mv"]):
                self._mv(attribute, path, f" (read as mv.{attribute})")
        if "cs" in objects:
            for attribute in sorted(read.attributes["cs"]):
                self._cs(attribute, path, f" (read as cs.{attribute})")
