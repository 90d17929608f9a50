"""The shape of a configuration file, checked key by key, into plain declarations.

:func:`read_declarations` checks everything that can be checked without the database —
unknown keys (with a "did you mean" hint), missing required keys, types, enumerations
(from the ``TextChoices`` of ``*/choices.py``), the connector and its declared
settings, expressions and DN templates that do not compile, duplicate names — and
turns the file into :class:`Configuration`. Names that refer to other things (a sync
rule's connected system, a flow's attribute) are checked against the file *and* the
database by :mod:`jim_project.configuration.references`.

Every problem names its key path; all of them are collected before any is reported.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from connectors.base import Connector, SettingSpec
from connectors.choices import (
    ApprovalMode,
    AttributeDataType,
    AttributeWritability,
    RunProfileType,
)
from connectors.models import (
    validate_change_threshold,
    validate_cron,
    validate_deletion_threshold,
)
from connectors.registry import CONNECTORS, UnknownConnector, get_connector_class
from exports.passwords import PasswordPolicy, parse_policy, policy_problems
from jim_project.configuration.errors import KeyPath, Problems
from jim_project.configuration.loader import VariableUse
from metaverse.choices import DeletionRule, DeprovisionAction, SyncRuleDirection
from metaverse.expressions import ExpressionSyntaxError, compile_dn_template, compile_expression

VERSION = 1

#: Defaults of the keys a file may leave out (also what ``dump`` leaves out).
DEFAULT_APPROVAL = ApprovalMode.NONE
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_BACKOFF_SECONDS = 60
DEFAULT_DEPROVISION = DeprovisionAction.DISCONNECT
DEFAULT_DELETION_RULE = DeletionRule.LAST_CONNECTOR_REMOVED

_THRESHOLD = re.compile(r"^\s*(\d+)\s*(%?)\s*$")
_TRUE_TEXT = frozenset({"true", "yes", "on", "1"})
_FALSE_TEXT = frozenset({"false", "no", "off", "0"})

# --------------------------------------------------------------------------- declarations


@dataclass
class AttributeDecl:
    """A declared attribute. ``writability`` is None when the file does not say."""

    name: str
    data_type: str = AttributeDataType.TEXT
    multivalued: bool = False
    references: str = ""
    writability: str | None = None
    optional: bool = False
    path: KeyPath = ()


@dataclass
class MvTypeDecl:
    name: str
    attributes: dict[str, AttributeDecl]
    deletion_rule: str = DEFAULT_DELETION_RULE
    authoritative: list[str] = field(default_factory=list)
    grace_period_days: int = 0
    path: KeyPath = ()


@dataclass
class SecretDecl:
    """A secret setting as the file gives it.

    ``value`` is None when it is ``${VAR}`` and VAR is unset: the stored secret is
    kept (an error when there is none). ``variable`` is VAR when the value is exactly
    ``${VAR}``; ``clear_text`` when the file spells the secret out.
    """

    value: str | None
    variable: str | None
    clear_text: bool
    path: KeyPath


@dataclass
class ObjectTypeDecl:
    name: str
    external_id: str
    secondary_external_id: str = ""
    container: str = ""
    selected: bool = True
    attributes: dict[str, AttributeDecl] = field(default_factory=dict)
    path: KeyPath = ()


@dataclass
class RunProfileDecl:
    name: str
    profile_type: str
    page_size: int | None = None
    path: KeyPath = ()


@dataclass
class SystemDecl:
    """A connected system. ``base_dir`` is already resolved (absolute, or '' for none)."""

    name: str
    connector: str
    description: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, SecretDecl] = field(default_factory=dict)
    base_dir: str = ""
    deletion_threshold: str = ""
    change_threshold: str = ""
    approval_mode: str = DEFAULT_APPROVAL
    separate_duties: bool = False
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_seconds: int = DEFAULT_RETRY_BACKOFF_SECONDS
    object_types: list[ObjectTypeDecl] = field(default_factory=list)
    run_profiles: list[RunProfileDecl] = field(default_factory=list)
    path: KeyPath = ()


@dataclass
class JoinDecl:
    cs: str
    mv: str
    path: KeyPath = ()


@dataclass
class FlowDecl:
    """An attribute flow: ``target`` is the ``mv`` (import) or ``cs`` (export) attribute;
    ``source`` the attribute of the other side (a direct flow) or ``expression``."""

    target: str
    source: str = ""
    expression: str = ""
    path: KeyPath = ()


@dataclass
class RuleDecl:
    name: str
    connected_system: str
    direction: str
    object_type: str
    metaverse_object_type: str
    enabled: bool = True
    scope: str = ""
    joins: list[JoinDecl] = field(default_factory=list)
    project: bool = False
    provision: bool = False
    dn: str = ""
    deprovision: str = DEFAULT_DEPROVISION
    enforce_state: bool = False
    initial_password: PasswordPolicy | None = None
    flows: list[FlowDecl] = field(default_factory=list)
    #: ``deprovision: disable``: the flows and DN that disable, the days until delete
    disable_flows: list[FlowDecl] = field(default_factory=list)
    disable_dn: str = ""
    delete_after_days: int | None = None
    path: KeyPath = ()


@dataclass
class StepDecl:
    system: str
    profile: str
    path: KeyPath = ()


@dataclass
class ScheduleDecl:
    name: str
    cron: str
    description: str = ""
    enabled: bool = True
    stop_on_failure: bool = True
    steps: list[StepDecl] = field(default_factory=list)
    path: KeyPath = ()


@dataclass
class Configuration:
    """Everything a file declares, checked for shape, in the file's order.

    ``schedules`` is None when the file has no ``schedules`` key (then ``--prune``
    leaves schedules alone).
    """

    metaverse_types: list[MvTypeDecl] = field(default_factory=list)
    systems: list[SystemDecl] = field(default_factory=list)
    rules: list[RuleDecl] = field(default_factory=list)
    schedules: list[ScheduleDecl] | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reader


_MISSING = object()


class Reader:
    """Reads values out of the parsed YAML, adding a problem for each one that is wrong."""

    def __init__(self, problems: Problems, uses: Mapping[KeyPath, VariableUse]) -> None:
        self.problems = problems
        self.uses = uses
        #: Paths whose unset variables have been dealt with (secrets kept as stored).
        self.handled: set[KeyPath] = set()

    def error(self, path: KeyPath, message: str) -> None:
        self.problems.add(path, message)

    # -- containers ---------------------------------------------------------------

    def mapping(
        self,
        value: Any,
        path: KeyPath,
        *,
        keys: Iterable[str],
        required: Iterable[str] = (),
        what: str = "",
    ) -> dict[str, Any] | None:
        """``value`` as a mapping with only ``keys``, holding every key of ``required``."""
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping{f' ({what})' if what else ''}, not {_kind(value)}")
            return None
        allowed = list(keys)
        for key in value:
            if not isinstance(key, str):
                self.error(path, f"key {key!r} must be text")
            elif key not in allowed:
                self.error((*path, key), f"unknown key {key!r}{_suggest(key, allowed)}")
        for key in required:
            if key not in value:
                self.error((*path, key), "missing required key")
        return value

    def sequence(self, value: Any, path: KeyPath) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, not {_kind(value)}")
            return []
        return value

    def named_mapping(self, value: Any, path: KeyPath) -> dict[str, Any]:
        """A mapping of names (metaverse object types, attributes) to declarations."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of names, not {_kind(value)}")
            return {}
        return {key: item for key, item in value.items() if self._name_key(key, path)}

    def _name_key(self, key: Any, path: KeyPath) -> bool:
        if isinstance(key, str) and key.strip():
            return True
        self.error(path, f"{key!r} is not a name")
        return False

    # -- scalars ------------------------------------------------------------------

    def text(
        self,
        data: dict[str, Any],
        key: str,
        path: KeyPath,
        default: Any = "",
        *,
        blank: bool = False,
    ) -> Any:
        """Text at ``data[key]`` (a number is taken as its text); empty only if ``blank``."""
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.error((*path, key), f"must be text, not {_kind(value)}")
            return default
        text = str(value)
        if not blank and not text.strip():
            self.error((*path, key), "must not be empty")
            return default
        return text

    def name(self, data: dict[str, Any], key: str, path: KeyPath) -> str:
        """A required name: non-empty text (a missing key was reported by mapping())."""
        if key not in data:
            return ""
        return self.text(data, key, path)

    def boolean(self, data: dict[str, Any], key: str, path: KeyPath, default: bool) -> bool:
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error((*path, key), f"must be true or false, not {_kind(value)}")
            return default
        return value

    def integer(
        self, data: dict[str, Any], key: str, path: KeyPath, default: Any, *, minimum: int = 0
    ) -> Any:
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error((*path, key), f"must be a whole number, not {_kind(value)}")
            return default
        if value < minimum:
            self.error((*path, key), f"must be {minimum} or more, not {value}")
            return default
        return value

    def choice(
        self,
        data: dict[str, Any],
        key: str,
        path: KeyPath,
        choices: Iterable[str],
        default: str = "",
    ) -> str:
        allowed = [str(c) for c in choices]
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        return self.choice_value(value, (*path, key), allowed, default)

    def choice_value(self, value: Any, path: KeyPath, allowed: list[str], default: str) -> str:
        """``value`` when it is one of ``allowed``; a problem (and ``default``) otherwise."""
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) else _kind(value)
            self.error(
                path,
                f"{shown} is not one of: {', '.join(allowed)}{_suggest(str(value), allowed)}",
            )
            return default
        return value

    def expression(self, data: dict[str, Any], key: str, path: KeyPath, *, dn: bool = False) -> str:
        source = self.text(data, key, path)
        if not source:
            return ""
        try:
            (compile_dn_template if dn else compile_expression)(source)
        except ExpressionSyntaxError as exc:
            self.error((*path, key), f"does not compile: {exc}")
            return ""
        return source


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _duplicates(reader: Reader, names: Iterable[tuple[str, KeyPath]], what: str) -> None:
    """Report every name given twice in one list."""
    first: dict[str, KeyPath] = {}
    for name, path in names:
        if not name:
            continue
        if name in first:
            reader.error((*path, "name"), f"duplicate {what} name {name!r}")
        else:
            first[name] = path


# --------------------------------------------------------------------------- top level

_TOP_KEYS = ("version", "metaverse", "connected_systems", "sync_rules", "schedules")


def read_declarations(
    document: Any, problems: Problems, uses: Mapping[KeyPath, VariableUse], base_dir: str
) -> Configuration:
    """Check the file's shape into a :class:`Configuration` (problems added to ``problems``).

    ``document`` has ``${VAR}`` already replaced (``uses`` says where); ``base_dir``
    is the folder of the file.
    """
    reader = Reader(problems, uses)
    config = Configuration()
    if not isinstance(document, dict):
        reader.error((), f"the file must be a mapping (version: 1, …), not {_kind(document)}")
        return config
    top = reader.mapping(document, (), keys=_TOP_KEYS, required=("version",))
    if top is None:
        return config
    if "version" in top and (isinstance(top["version"], bool) or top["version"] != VERSION):
        reader.error(("version",), f"must be {VERSION}, not {top['version']!r}")
    if top.get("metaverse") is not None:
        config.metaverse_types = _metaverse(reader, top["metaverse"])
    config.systems = [
        system
        for index, item in enumerate(
            reader.sequence(top.get("connected_systems"), ("connected_systems",))
        )
        if (system := _system(reader, item, ("connected_systems", index), base_dir))
    ]
    _duplicates(reader, ((s.name, s.path) for s in config.systems), "connected system")
    config.rules = [
        rule
        for index, item in enumerate(reader.sequence(top.get("sync_rules"), ("sync_rules",)))
        if (rule := _rule(reader, item, ("sync_rules", index)))
    ]
    _duplicates(reader, ((r.name, r.path) for r in config.rules), "sync rule")
    if "schedules" in top:
        config.schedules = [
            schedule
            for index, item in enumerate(reader.sequence(top["schedules"], ("schedules",)))
            if (schedule := _schedule(reader, item, ("schedules", index)))
        ]
        _duplicates(reader, ((s.name, s.path) for s in config.schedules), "schedule")
    _unset_variables(reader)
    return config


def _unset_variables(reader: Reader) -> None:
    for path, use in reader.uses.items():
        if use.missing and path not in reader.handled:
            names = ", ".join(use.missing)
            plural = "s" if len(use.missing) > 1 else ""
            reader.error(path, f"environment variable{plural} {names} not set")


# --------------------------------------------------------------------------- metaverse

_ATTRIBUTE_KEYS_MV = ("type", "multivalued")
_ATTRIBUTE_KEYS_CS = ("type", "multivalued", "references", "writability", "optional")


def _metaverse(reader: Reader, value: Any) -> list[MvTypeDecl]:
    metaverse = reader.mapping(value, ("metaverse",), keys=("object_types",))
    if metaverse is None:
        return []
    path: KeyPath = ("metaverse", "object_types")
    types = reader.named_mapping(metaverse.get("object_types"), path)
    return [_mv_type(reader, name, item, (*path, name)) for name, item in types.items()]


def _mv_type(reader: Reader, name: str, value: Any, path: KeyPath) -> MvTypeDecl:
    decl = MvTypeDecl(name=name, attributes={}, path=path)
    data = reader.mapping({} if value is None else value, path, keys=("attributes", "deletion"))
    if data is None:
        return decl
    decl.attributes = _attributes(reader, data.get("attributes"), (*path, "attributes"), False)
    if data.get("deletion") is not None:
        _deletion(reader, data["deletion"], (*path, "deletion"), decl)
    return decl


def _attributes(
    reader: Reader, value: Any, path: KeyPath, connected_system: bool
) -> dict[str, AttributeDecl]:
    keys = _ATTRIBUTE_KEYS_CS if connected_system else _ATTRIBUTE_KEYS_MV
    declared = {}
    for name, item in reader.named_mapping(value, path).items():
        item_path = (*path, name)
        decl = AttributeDecl(name=name, path=item_path)
        if item is None:
            pass  # "name:" alone: text
        elif isinstance(item, str):
            decl.data_type = reader.choice_value(
                item, item_path, AttributeDataType.values, AttributeDataType.TEXT
            )
        else:
            data = reader.mapping(item, item_path, keys=keys, what="a type or {type: …}")
            if data is None:
                continue
            decl.data_type = reader.choice(
                data, "type", item_path, AttributeDataType.values, AttributeDataType.TEXT
            )
            decl.multivalued = reader.boolean(data, "multivalued", item_path, False)
            if connected_system:
                decl.references = reader.text(data, "references", item_path)
                decl.optional = reader.boolean(data, "optional", item_path, False)
                if "writability" in data:
                    decl.writability = (
                        reader.choice(data, "writability", item_path, AttributeWritability.values)
                        or None
                    )
                if decl.references and decl.data_type != AttributeDataType.REFERENCE:
                    reader.error(
                        (*item_path, "references"),
                        f"only a reference attribute refers to an object type "
                        f"(this one is {decl.data_type})",
                    )
        declared[name] = decl
    return declared


def _deletion(reader: Reader, value: Any, path: KeyPath, decl: MvTypeDecl) -> None:
    data = reader.mapping(value, path, keys=("when", "authoritative", "grace_period_days"))
    if data is None:
        return
    decl.deletion_rule = reader.choice(
        data, "when", path, DeletionRule.values, DEFAULT_DELETION_RULE
    )
    decl.grace_period_days = reader.integer(data, "grace_period_days", path, 0)
    authoritative = reader.sequence(data.get("authoritative"), (*path, "authoritative"))
    for index, name in enumerate(authoritative):
        if isinstance(name, str) and name.strip():
            decl.authoritative.append(name)
        else:
            reader.error((*path, "authoritative", index), "must be a connected system's name")
    is_authoritative = decl.deletion_rule == DeletionRule.AUTHORITATIVE_CONNECTOR_REMOVED
    if is_authoritative and not authoritative and "when" in data:
        reader.error(
            (*path, "authoritative"),
            "authoritative_connector_removed needs the list of authoritative connected systems",
        )
    elif authoritative and not is_authoritative:
        reader.error(
            (*path, "authoritative"),
            "only used with when: authoritative_connector_removed",
        )


# --------------------------------------------------------------------------- systems

_SYSTEM_KEYS = (
    "name",
    "description",
    "connector",
    "settings",
    "base_dir",
    "object_types",
    "deletion_threshold",
    "change_threshold",
    "export",
    "run_profiles",
)
_OBJECT_TYPE_KEYS = (
    "name",
    "container",
    "external_id",
    "secondary_external_id",
    "selected",
    "attributes",
)


def _system(reader: Reader, value: Any, path: KeyPath, base_dir: str) -> SystemDecl | None:
    data = reader.mapping(value, path, keys=_SYSTEM_KEYS, required=("name", "connector"))
    if data is None:
        return None
    decl = SystemDecl(
        name=reader.name(data, "name", path),
        connector=reader.name(data, "connector", path),
        description=reader.text(data, "description", path, blank=True),
        path=path,
    )
    connector = _connector(reader, decl.connector, (*path, "connector"))
    if connector is not None:
        _settings(reader, connector, data.get("settings"), (*path, "settings"), decl)
    decl.base_dir = _base_dir(reader, data, path, base_dir)
    decl.deletion_threshold = _threshold(
        reader, data, path, "deletion_threshold", validate_deletion_threshold
    )
    decl.change_threshold = _threshold(
        reader, data, path, "change_threshold", validate_change_threshold
    )
    if data.get("export") is not None:
        export = reader.mapping(
            data["export"],
            (*path, "export"),
            keys=("approval", "separate_duties", "max_retries", "retry_backoff_seconds"),
        )
        if export is not None:
            export_path = (*path, "export")
            decl.approval_mode = reader.choice(
                export, "approval", export_path, ApprovalMode.values, DEFAULT_APPROVAL
            )
            decl.separate_duties = reader.boolean(export, "separate_duties", export_path, False)
            decl.max_retries = reader.integer(
                export, "max_retries", export_path, DEFAULT_MAX_RETRIES
            )
            decl.retry_backoff_seconds = reader.integer(
                export, "retry_backoff_seconds", export_path, DEFAULT_RETRY_BACKOFF_SECONDS
            )
    types_path = (*path, "object_types")
    for index, item in enumerate(reader.sequence(data.get("object_types"), types_path)):
        object_type = _object_type(reader, item, (*types_path, index))
        if object_type is not None:
            decl.object_types.append(object_type)
    _duplicates(reader, ((t.name, t.path) for t in decl.object_types), "object type")
    profiles_path = (*path, "run_profiles")
    for index, item in enumerate(reader.sequence(data.get("run_profiles"), profiles_path)):
        profile = _run_profile(reader, item, (*profiles_path, index))
        if profile is not None:
            decl.run_profiles.append(profile)
    _duplicates(reader, ((p.name, p.path) for p in decl.run_profiles), "run profile")
    return decl


def _connector(reader: Reader, name: str, path: KeyPath) -> type[Connector] | None:
    if not name:
        return None
    try:
        return get_connector_class(name)
    except UnknownConnector:
        known = ", ".join(sorted(CONNECTORS))
        reader.error(
            path, f"unknown connector {name!r}{_suggest(name, CONNECTORS)} (known: {known})"
        )
        return None


def _settings(
    reader: Reader, connector: type[Connector], value: Any, path: KeyPath, decl: SystemDecl
) -> None:
    specs = {spec.name: spec for spec in connector.settings_spec}
    data = reader.mapping({} if value is None else value, path, keys=specs)
    if data is None:
        return
    for key, raw in data.items():
        spec = specs.get(key) if isinstance(key, str) else None
        if spec is None:
            continue  # reported by mapping()
        if spec.secret:
            secret = _secret(reader, raw, (*path, key))
            if secret is not None:
                decl.secrets[key] = secret
            continue
        setting = _setting_value(reader, spec, raw, (*path, key), connector.name)
        if setting is not _MISSING:
            decl.settings[key] = setting
    for spec in connector.settings_spec:
        if spec.required and spec.name not in data:
            reader.error(
                (*path, spec.name), f"missing required setting of the {connector.name} connector"
            )


def _setting_value(
    reader: Reader, spec: SettingSpec, value: Any, path: KeyPath, connector: str
) -> Any:
    """A setting converted to its declared type (text from ``${VAR}`` is converted too)."""
    from_env = path in reader.uses
    if spec.type is bool:
        if (
            isinstance(value, str)
            and from_env
            and value.strip().lower() in _TRUE_TEXT | _FALSE_TEXT
        ):
            value = value.strip().lower() in _TRUE_TEXT
        if not isinstance(value, bool):
            reader.error(path, f"must be true or false, not {_kind(value)}")
            return _MISSING
    elif spec.type is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            reader.error(path, f"must be a whole number, not {_kind(value)}")
            return _MISSING
    else:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            reader.error(path, f"must be text, not {_kind(value)}")
            return _MISSING
        value = str(value)
    if spec.choices and value not in spec.choices:
        reader.error(
            path,
            f"{value!r} is not one of: {', '.join(spec.choices)}"
            f"{_suggest(str(value), spec.choices)}",
        )
        return _MISSING
    return value


def _secret(reader: Reader, value: Any, path: KeyPath) -> SecretDecl | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        reader.error(path, f"must be text, not {_kind(value)}")
        return None
    use = reader.uses.get(path)
    if use is None:
        return SecretDecl(value=str(value), variable=None, clear_text=True, path=path)
    if use.missing and use.whole:
        reader.handled.add(path)  # kept as stored, or an error if none is (references.py)
        return SecretDecl(value=None, variable=use.whole, clear_text=False, path=path)
    return SecretDecl(value=str(value), variable=use.whole, clear_text=False, path=path)


def _base_dir(reader: Reader, data: dict[str, Any], path: KeyPath, file_dir: str) -> str:
    """The folder relative paths are resolved against: ``base_dir`` or the file's folder."""
    if "base_dir" not in data:
        return file_dir
    value = reader.text(data, "base_dir", path, blank=True)
    if not value:
        return ""
    folder = Path(value).expanduser()
    return str(folder if folder.is_absolute() else (Path(file_dir) / folder).resolve())


def _threshold(
    reader: Reader,
    data: dict[str, Any],
    path: KeyPath,
    key: str,
    validate: Callable[[str], None],
) -> str:
    """A threshold key (``deletion_threshold``, ``change_threshold``), normalised."""
    value = data.get(key)
    if value is None:
        return ""
    what = key.removesuffix("_threshold")
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    match = _THRESHOLD.match(text or "")
    if text is None or not match:
        reader.error(
            (*path, key),
            f"{value!r} is not a {what} threshold: use a count (500) or a percentage (20%)",
        )
        return ""
    normalised = match.group(1).lstrip("0") or "0"
    normalised += match.group(2)
    try:
        validate(normalised)
    except ValidationError as exc:
        reader.error((*path, key), exc.messages[0].rstrip("."))
        return ""
    return normalised


def _object_type(reader: Reader, value: Any, path: KeyPath) -> ObjectTypeDecl | None:
    data = reader.mapping(value, path, keys=_OBJECT_TYPE_KEYS, required=("name", "external_id"))
    if data is None:
        return None
    return ObjectTypeDecl(
        name=reader.name(data, "name", path),
        external_id=reader.name(data, "external_id", path),
        secondary_external_id=reader.text(data, "secondary_external_id", path, blank=True),
        container=reader.text(data, "container", path, blank=True),
        selected=reader.boolean(data, "selected", path, True),
        attributes=_attributes(reader, data.get("attributes"), (*path, "attributes"), True),
        path=path,
    )


def _run_profile(reader: Reader, value: Any, path: KeyPath) -> RunProfileDecl | None:
    data = reader.mapping(
        value, path, keys=("name", "type", "page_size"), required=("name", "type")
    )
    if data is None:
        return None
    return RunProfileDecl(
        name=reader.name(data, "name", path),
        profile_type=reader.choice(data, "type", path, RunProfileType.values),
        page_size=reader.integer(data, "page_size", path, None, minimum=1),
        path=path,
    )


# --------------------------------------------------------------------------- sync rules

_RULE_KEYS = (
    "name",
    "connected_system",
    "direction",
    "object_type",
    "metaverse_object_type",
    "enabled",
    "scope",
    "join",
    "project",
    "provision",
    "dn",
    "deprovision",
    "enforce_state",
    "initial_password",
    "flows",
    "disable",
    "delete_after_days",
)
_RULE_REQUIRED = ("name", "connected_system", "direction", "object_type", "metaverse_object_type")
_IMPORT_ONLY = ("join", "project")
_EXPORT_ONLY = (
    "provision",
    "dn",
    "deprovision",
    "enforce_state",
    "initial_password",
    "disable",
    "delete_after_days",
)


def _rule(reader: Reader, value: Any, path: KeyPath) -> RuleDecl | None:
    data = reader.mapping(value, path, keys=_RULE_KEYS, required=_RULE_REQUIRED)
    if data is None:
        return None
    decl = RuleDecl(
        name=reader.name(data, "name", path),
        connected_system=reader.name(data, "connected_system", path),
        direction=reader.choice(data, "direction", path, SyncRuleDirection.values),
        object_type=reader.name(data, "object_type", path),
        metaverse_object_type=reader.name(data, "metaverse_object_type", path),
        enabled=reader.boolean(data, "enabled", path, True),
        scope=reader.expression(data, "scope", path),
        path=path,
    )
    is_import = decl.direction == SyncRuleDirection.IMPORT
    if decl.direction:
        wrong = _EXPORT_ONLY if is_import else _IMPORT_ONLY
        for key in wrong:
            if key in data:
                reader.error(
                    (*path, key),
                    f"not allowed on an {decl.direction} rule "
                    f"(only on {'export' if is_import else 'import'} rules)",
                )
    decl.project = reader.boolean(data, "project", path, False)
    decl.provision = reader.boolean(data, "provision", path, False)
    decl.enforce_state = reader.boolean(data, "enforce_state", path, False)
    decl.deprovision = reader.choice(
        data, "deprovision", path, DeprovisionAction.values, DEFAULT_DEPROVISION
    )
    decl.dn = reader.expression(data, "dn", path, dn=True)
    join_path = (*path, "join")
    for index, item in enumerate(reader.sequence(data.get("join"), join_path)):
        join = reader.mapping(item, (*join_path, index), keys=("cs", "mv"), required=("cs", "mv"))
        if join is not None:
            decl.joins.append(
                JoinDecl(
                    cs=reader.name(join, "cs", (*join_path, index)),
                    mv=reader.name(join, "mv", (*join_path, index)),
                    path=(*join_path, index),
                )
            )
    flows_path = (*path, "flows")
    for index, item in enumerate(reader.sequence(data.get("flows"), flows_path)):
        flow = _flow(reader, item, (*flows_path, index), decl.direction)
        if flow is not None:
            decl.flows.append(flow)
    _duplicate_targets(reader, decl)
    if "initial_password" in data and not is_import:
        decl.initial_password = _initial_password(reader, data["initial_password"], path, decl)
    _disable(reader, data, path, decl)
    return decl


def _initial_password(
    reader: Reader, value: Any, path: KeyPath, decl: RuleDecl
) -> PasswordPolicy | None:
    """The rule's password policy; its attribute is set by no flow (the password is)."""
    path = (*path, "initial_password")
    problems = policy_problems(value)
    for key_path, message in problems:
        reader.error((*path, *key_path), message)
    if problems:
        return None
    policy = parse_policy(value)
    assert policy is not None
    for index, flow in enumerate(decl.flows):
        if flow.target.lower() == policy.attribute.lower():
            reader.error(
                (*path, "attribute"),
                f"{flow.target!r} is the target of flows[{index}]; the initial password "
                "is the only value it is given",
            )
            return None
    return policy


def _disable(reader: Reader, data: dict[str, Any], path: KeyPath, decl: RuleDecl) -> None:
    """``disable`` and ``delete_after_days``: only with ``deprovision: disable``."""
    present = [key for key in ("disable", "delete_after_days") if key in data]
    if not present or decl.direction != SyncRuleDirection.EXPORT:
        return  # an import rule's were reported as not allowed
    if decl.deprovision != DeprovisionAction.DISABLE:
        for key in present:
            reader.error(
                (*path, key),
                f"only with 'deprovision: disable' (this rule's deprovision is "
                f"{decl.deprovision!r})",
            )
        return
    decl.delete_after_days = reader.integer(data, "delete_after_days", path, None, minimum=1)
    if "disable" not in data:
        return
    disable_path = (*path, "disable")
    block = reader.mapping(
        data["disable"], disable_path, keys=("flows", "dn"), what="the disable flows and DN"
    )
    if block is None:
        return
    decl.disable_dn = reader.expression(block, "dn", disable_path, dn=True)
    if decl.disable_dn and not decl.dn:
        reader.error(
            (*disable_path, "dn"),
            "moving a disabled account needs the rule's own 'dn' template too: it moves "
            "the account back when the person returns",
        )
    flows_path = (*disable_path, "flows")
    for index, item in enumerate(reader.sequence(block.get("flows"), flows_path)):
        flow = _flow(reader, item, (*flows_path, index), decl.direction)
        if flow is not None:
            decl.disable_flows.append(flow)
    first: dict[str, int] = {}
    for index, flow in enumerate(decl.disable_flows):
        if flow.target in first:
            reader.error(
                (*flow.path, "cs"),
                f"{flow.target!r} is already the target of disable.flows[{first[flow.target]}]",
            )
        elif flow.target:
            first[flow.target] = index


def _flow(reader: Reader, value: Any, path: KeyPath, direction: str) -> FlowDecl | None:
    target_key = "cs" if direction == SyncRuleDirection.EXPORT else "mv"
    other_key = "mv" if target_key == "cs" else "cs"
    data = reader.mapping(value, path, keys=(target_key, "from", "expression", other_key))
    if data is None or not direction:
        return None
    if other_key in data:
        side = "metaverse" if target_key == "mv" else "connected system"
        reader.error(
            (*path, other_key),
            f"{direction} flows write the {side} attribute: name it with "
            f"{target_key!r} (the source goes in 'from' or 'expression')",
        )
    if target_key not in data:
        reader.error((*path, target_key), "missing required key")
    has_source = "from" in data
    has_expression = "expression" in data
    if has_source == has_expression:
        reader.error(
            path,
            "give either 'from' (an attribute) or 'expression', not both"
            if has_source
            else "missing 'from' (an attribute) or 'expression'",
        )
    return FlowDecl(
        target=reader.name(data, target_key, path),
        source=reader.name(data, "from", path) if has_source else "",
        expression=reader.expression(data, "expression", path) if has_expression else "",
        path=path,
    )


def _duplicate_targets(reader: Reader, decl: RuleDecl) -> None:
    first: dict[str, int] = {}
    key = "cs" if decl.direction == SyncRuleDirection.EXPORT else "mv"
    for index, flow in enumerate(decl.flows):
        if not flow.target:
            continue
        if flow.target in first:
            reader.error(
                (*flow.path, key),
                f"{flow.target!r} is already the target of flows[{first[flow.target]}]",
            )
        else:
            first[flow.target] = index


# --------------------------------------------------------------------------- schedules


def _schedule(reader: Reader, value: Any, path: KeyPath) -> ScheduleDecl | None:
    data = reader.mapping(
        value,
        path,
        keys=("name", "description", "cron", "enabled", "stop_on_failure", "steps"),
        required=("name", "cron", "steps"),
    )
    if data is None:
        return None
    decl = ScheduleDecl(
        name=reader.name(data, "name", path),
        cron=reader.name(data, "cron", path),
        description=reader.text(data, "description", path, blank=True),
        enabled=reader.boolean(data, "enabled", path, True),
        stop_on_failure=reader.boolean(data, "stop_on_failure", path, True),
        path=path,
    )
    if decl.cron:
        try:
            validate_cron(decl.cron)
        except ValidationError as exc:
            reader.error((*path, "cron"), exc.messages[0])
    steps_path = (*path, "steps")
    for index, item in enumerate(reader.sequence(data.get("steps"), steps_path)):
        step_path = (*steps_path, index)
        step = reader.mapping(
            item, step_path, keys=("system", "profile"), required=("system", "profile")
        )
        if step is not None:
            decl.steps.append(
                StepDecl(
                    system=reader.name(step, "system", step_path),
                    profile=reader.name(step, "profile", step_path),
                    path=step_path,
                )
            )
    if "steps" in data and not decl.steps:
        reader.error(steps_path, "a schedule needs at least one step")
    return decl
