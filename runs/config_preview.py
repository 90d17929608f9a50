"""A configuration change in preview: what it would do to the current data.

``jim apply FILE --preview`` asks what a new configuration would do to the current
data. JIM answers as a preview run does (:mod:`runs.preview`): by doing it, then taking
it back. In one database transaction, rolled back at its end:

1. *Baseline.* In a savepoint, a full sync of every connected system that has a full
   sync profile, under the current configuration; what the syncs leave is captured,
   then the savepoint is rolled back. The data may hold changes the next syncs would
   make anyway (an import not synced yet); the baseline keeps them out of the answer.
2. *After.* The change is made — :func:`preview_change` is given it as a callable, as
   this layer knows nothing of configuration files: ``jim apply`` passes "apply the
   checked file" — the same full syncs run under it, and what they leave is compared
   with the baseline.

The comparison (:class:`ChangeEffect`) says, per sync rule, which objects enter and
leave its scope; which metaverse values and which exported values would change; which
pending exports would be created, changed or removed; and, apart, the
deprovisionings: deletes and disables of target objects, disconnections, metaverse
objects deleted or scheduled for deletion; and the object errors that would come or go.

Nothing reaches a connected system: only syncs run (never an import or an export), and
a sync only reads targets (``unique(..., check_target=true)``). The preview takes the
sync lock inside its transaction — an in-progress sync activity that is never
committed — so no sync runs while it does: one started meanwhile waits for it. It does
not start while a sync, or any run of a system it would sync, is running.

Objects are matched between the two captures by what the syncs do not change: an MVO
or a CSO that existed before the preview by its id, an MVO a sync projects by the CSO
that projects it, a CSO a sync provisions by its system and MVO. Each capture is a
stream of rows in that order — the baseline's spooled to a temporary file — compared
:data:`CHUNK` objects at a time, with a fixed number of queries per chunk.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from connectors.activity import ActivityRecorder
from connectors.choices import (
    SYNC_PROFILE_TYPES,
    ActivityStatus,
    CsoStatus,
    JoinType,
    RunProfileType,
)
from connectors.dead_runs import fail_dead
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
)
from connectors.run_lock import first_line
from core.bulk import one_of
from core.collector import collector_paused
from core.spool import Spool
from exports.changes import apply_changes, reference_attributes, reference_names
from exports.choices import PendingExportChangeType
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.choices import MvoStatus, SyncRuleDirection
from metaverse.expressions import AttributeView
from metaverse.models import MetaverseObject, SyncRule
from metaverse.sync import run_full_sync
from metaverse.sync.inbound import ObjectError, in_scope
from metaverse.sync.rules import CompiledRule, RuleSet

logger = logging.getLogger(__name__)

#: Samples kept of each kind of change (the first ones, in a stable order).
SAMPLES = 5
#: Objects read and compared at a time.
CHUNK = 2000

CREATE, DELETE = PendingExportChangeType.CREATE, PendingExportChangeType.DELETE
#: How a CSO that a sync leaves joined came to be (a provisioned one is the export
#: rule's, not an import rule's).
_IMPORTED = (JoinType.PROJECTED, JoinType.JOINED)


class PreviewNotRun(Exception):
    """The preview could not run: a run in the way, or a sync that failed."""


# --------------------------------------------------------------------------- the report


@dataclass
class Tally:
    """How many, and the first few (JSON-ready samples)."""

    limit: int = SAMPLES
    count: int = 0
    samples: list[Any] = field(default_factory=list)

    def add(self, sample: Any) -> None:
        self.count += 1
        if len(self.samples) < self.limit:
            self.samples.append(sample)

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "samples": self.samples}


@dataclass
class ExportTally(Tally):
    """Pending exports, with their counts per system and change type."""

    by_system: dict[str, Counter[str]] = field(default_factory=dict)

    def add_export(self, system: str, change_type: str, sample: dict[str, Any]) -> None:
        self.by_system.setdefault(system, Counter())[change_type] += 1
        self.add(sample)

    def as_json(self) -> dict[str, Any]:
        return {
            **super().as_json(),
            "by_system": {
                system: {kind: counts[kind] for kind in PendingExportChangeType.values}
                for system, counts in sorted(self.by_system.items())
            },
        }


@dataclass
class ScopeChange:
    """The objects that enter and leave one sync rule's scope."""

    rule: str
    direction: str
    system: str
    entering: Tally
    leaving: Tally


@dataclass
class ChangeEffect:
    """What a configuration change would do to the data: the after-syncs compared with
    the baseline-syncs."""

    systems: list[str]
    samples: int = SAMPLES
    scope: dict[str, ScopeChange] = field(default_factory=dict)
    mvos_created: Tally = field(default_factory=Tally)
    attributes: dict[tuple[str, str], Tally] = field(default_factory=dict)
    exports: dict[str, ExportTally] = field(default_factory=dict)
    exported_attributes: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    deletes: Tally = field(default_factory=Tally)
    disables: Tally = field(default_factory=Tally)
    disconnections: Tally = field(default_factory=Tally)
    mvos_deleted: Tally = field(default_factory=Tally)
    mvos_scheduled: Tally = field(default_factory=Tally)
    new_errors: Tally = field(default_factory=Tally)
    resolved_errors: Tally = field(default_factory=Tally)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Tally):
                value.limit = self.samples
        for effect in ("created", "changed", "removed"):
            self.exports.setdefault(effect, ExportTally(limit=self.samples))

    def tally(self) -> Tally:
        return Tally(limit=self.samples)

    @property
    def deprovisionings(self) -> int:
        return sum(
            t.count
            for t in (
                self.deletes,
                self.disables,
                self.disconnections,
                self.mvos_deleted,
                self.mvos_scheduled,
            )
        )

    def as_json(self) -> dict[str, Any]:
        """The effect's keys of ``jim apply FILE --preview --json`` (docs/previews.md)."""
        return {
            "systems": self.systems,
            "scope": [
                {
                    "rule": change.rule,
                    "direction": change.direction,
                    "system": change.system,
                    "entering": change.entering.as_json(),
                    "leaving": change.leaving.as_json(),
                }
                for change in self.scope.values()
            ],
            "metaverse": {
                "created": self.mvos_created.as_json(),
                "attributes": [
                    {"object_type": object_type, "attribute": attribute, **tally.as_json()}
                    for (object_type, attribute), tally in sorted(self.attributes.items())
                ],
            },
            "exports": {
                **{effect: tally.as_json() for effect, tally in self.exports.items()},
                "attributes": [
                    {
                        "system": system,
                        "object_type": object_type,
                        "attribute": attribute,
                        **tally.as_json(),
                    }
                    for (system, object_type, attribute), tally in sorted(
                        self.exported_attributes.items()
                    )
                ],
            },
            "deprovisionings": {
                "count": self.deprovisionings,
                "deletes": self.deletes.as_json(),
                "disables": self.disables.as_json(),
                "disconnections": self.disconnections.as_json(),
                "metaverse_objects_deleted": self.mvos_deleted.as_json(),
                "metaverse_objects_scheduled_for_deletion": self.mvos_scheduled.as_json(),
            },
            "errors": {
                "new": self.new_errors.as_json(),
                "resolved": self.resolved_errors.as_json(),
            },
        }


# --------------------------------------------------------------------------- the preview


T = TypeVar("T")


def preview_change(
    change: Callable[[], T], *, samples: int = SAMPLES, actor_name: str = ""
) -> tuple[T, ChangeEffect]:
    """What ``change`` — a callable that changes the configuration in the database —
    would do to the data, and what it returned; see the module docstring. Nothing is
    changed (an activity left in progress by a dead process is recorded as failed, as
    any run records it).

    Raises :class:`PreviewNotRun` when the preview cannot run, and what ``change``
    raises.
    """
    _refuse_if_running([system.pk for system, _ in _systems_to_sync()])
    with (
        Spool("jim-config-preview-") as objects,
        Spool("jim-config-preview-") as exports,
        transaction.atomic(),
    ):
        current = _systems_to_sync()
        _claim(current, actor_name)
        marks = _Marks.now()
        with transaction.atomic():
            baseline = _Capture(marks, _sync_all(current, "current"))
            baseline.spool(objects, exports)
            transaction.set_rollback(True)
        result = change()
        new = _systems_to_sync()
        after = _Capture(marks, _sync_all(new, "new"))
        effect = ChangeEffect([system.name for system, _ in new], samples=samples)
        _Comparison(effect, baseline, after).run(objects, exports)
        transaction.set_rollback(True)
    return result, effect


def _systems_to_sync() -> list[tuple[ConnectedSystem, RunProfile]]:
    """The systems with a full sync profile, and that profile: the sources first, in
    the precedence of their import rules, then the others by name."""
    profiles: dict[int, RunProfile] = {}
    for profile in RunProfile.objects.filter(profile_type=RunProfileType.FULL_SYNC).order_by("pk"):
        profiles.setdefault(profile.connected_system_id, profile)
    first_rule = dict(
        SyncRule.objects.filter(direction=SyncRuleDirection.IMPORT, enabled=True)
        .values("connected_system_id")
        .annotate(first=Min("precedence"))
        .values_list("connected_system_id", "first")
    )
    systems = ConnectedSystem.objects.filter(pk__in=profiles)
    ordered = sorted(
        systems, key=lambda s: (s.pk not in first_rule, first_rule.get(s.pk, 0), s.name)
    )
    return [(system, profiles[system.pk]) for system in ordered]


# --------------------------------------------------------------------------- claiming


def _refuse_if_running(system_ids: list[int]) -> None:
    """Refuse while a sync, or any run of these systems, is running (one whose process
    died is recorded as failed first, and is no longer in the way)."""
    running = Activity.objects.filter(status=ActivityStatus.IN_PROGRESS).filter(
        Q(profile_type__in=SYNC_PROFILE_TYPES) | Q(connected_system_id__in=system_ids)
    )
    fail_dead(list(running), found_by="a configuration preview was started")
    in_the_way = running.select_related("connected_system").first()
    if in_the_way is not None:
        raise PreviewNotRun(_in_the_way(in_the_way))


def _claim(systems: list[tuple[ConnectedSystem, RunProfile]], actor_name: str) -> None:
    """Take the sync lock inside the preview's transaction: an in-progress sync
    activity, never committed. A sync that claims meanwhile waits for the rollback."""
    if not systems:
        return
    system, profile = systems[0]
    try:
        with transaction.atomic():
            Activity.objects.create(
                connected_system=system,
                run_profile=profile,
                profile_type=RunProfileType.FULL_SYNC,
                profile_name="Configuration preview",
                status=ActivityStatus.IN_PROGRESS,
                started_at=timezone.now(),
                initiated_by_name=actor_name[:200],
                preview=True,
            )
    except IntegrityError:
        running = (
            Activity.objects.filter(status=ActivityStatus.IN_PROGRESS)
            .filter(Q(profile_type__in=SYNC_PROFILE_TYPES) | Q(connected_system=system))
            .select_related("connected_system")
            .first()
        )
        raise PreviewNotRun(
            _in_the_way(running) if running else "a run started meanwhile; try again"
        ) from None


def _in_the_way(activity: Activity) -> str:
    return (
        f"activity #{activity.pk} is running ({activity.connected_system.name} — "
        f"{activity.profile_name}); a configuration preview runs the syncs of every "
        "connected system, so it starts only when no sync and no run of those systems "
        "is running: try again when it has finished"
    )


# --------------------------------------------------------------------------- syncing


def _sync_all(systems: list[tuple[ConnectedSystem, RunProfile]], which: str) -> list[int]:
    """Run a full sync of each system, in order; the ids of their activities (rolled
    back with everything else). :class:`PreviewNotRun` when one fails."""
    activity_ids = []
    for system, profile in systems:
        activity = Activity.objects.create(
            connected_system=system,
            run_profile=profile,
            profile_type=RunProfileType.FULL_SYNC,
            profile_name=profile.name,
            preview=True,
        )
        activity_ids.append(activity.pk)
        recorder = ActivityRecorder(activity)
        try:
            with collector_paused():
                run_full_sync(activity, recorder)
            recorder.flush()
        except Exception as exc:
            logger.info("Configuration preview: the sync of %s failed", system.name, exc_info=True)
            raise PreviewNotRun(
                f"the full sync of {system.name} ({profile.name}) under the {which} "
                f"configuration failed: {first_line(exc)}"
            ) from exc
    return activity_ids


# --------------------------------------------------------------------------- capturing


Key = tuple[int, ...]


@dataclass(frozen=True)
class Ref:
    """A reference value: equal to another by the object it names (``key``), shown by
    its ``name`` (which the change being previewed may change too)."""

    key: Key
    name: str = field(compare=False)

    def __str__(self) -> str:  # what exports.changes.apply_changes compares
        return f"ref:{self.key}"


class _Change(NamedTuple):
    """An attribute change of a pending export (as :func:`apply_changes` reads it)."""

    attribute: str
    change_type: str
    values: list[Any]


@dataclass(frozen=True)
class _Marks:
    """The last MVO and CSO ids before the preview: higher ones are the syncs' own."""

    mvo: int
    cso: int

    @classmethod
    def now(cls) -> _Marks:
        return cls(
            MetaverseObject.objects.aggregate(m=Max("pk"))["m"] or 0,
            ConnectorSpaceObject.objects.aggregate(m=Max("pk"))["m"] or 0,
        )


class _Capture:
    """What one set of syncs left, read as rows keyed so that the same object has the
    same key in both captures (see the module docstring)."""

    def __init__(self, marks: _Marks, activity_ids: list[int]) -> None:
        self.marks = marks
        self.ruleset = RuleSet.load()
        self.system_names = {s.id: s.name for s in self.ruleset.systems.values()}
        #: rule name → (direction, system name)
        self.rules = {
            rule.name: (rule.direction, self.system_names.get(rule.system_id, "?"))
            for rules in (*self.ruleset.import_rules.values(), *self.ruleset.export_rules.values())
            for rule in rules
        }
        self.errors = self._errors(activity_ids)
        self._new_mvos = {
            mvo_id: (1, cso_id)
            for mvo_id, cso_id in ConnectorSpaceObject.objects.filter(
                metaverse_object_id__gt=marks.mvo, join_type=JoinType.PROJECTED
            ).values_list("metaverse_object_id", "pk")
        }
        self._new_csos = {
            cso_id: (1, system_id, *self.mvo_key(mvo_id)) if mvo_id else (2, cso_id)
            for cso_id, system_id, mvo_id in ConnectorSpaceObject.objects.filter(
                pk__gt=marks.cso
            ).values_list("pk", "connected_system_id", "metaverse_object_id")
        }

    def mvo_key(self, pk: int) -> Key:
        return (0, pk) if pk <= self.marks.mvo else self._new_mvos.get(pk, (2, pk))

    def cso_key(self, pk: int) -> Key:
        return (0, pk) if pk <= self.marks.cso else self._new_csos.get(pk, (2, pk))

    def _errors(self, activity_ids: list[int]) -> Counter[tuple[str, str, str, str]]:
        systems = dict(
            Activity.objects.filter(pk__in=activity_ids).values_list("pk", "connected_system__name")
        )
        rows = (
            RunProfileExecutionItem.objects.filter(activity_id__in=activity_ids)
            .exclude(error_type="")
            .values_list("activity_id", "external_id", "error_type", "message")
        )
        return Counter((systems[a], ext, kind, message) for a, ext, kind, message in rows)

    def spool(self, objects: Spool, exports: Spool) -> None:
        for chunk in self.objects():
            objects.write(chunk)
        for chunk in self.exports():
            exports.write(chunk)

    # -- metaverse objects -----------------------------------------------------------

    def objects(self) -> Iterator[list[tuple[Key, dict[str, Any]]]]:
        """Every MVO, in key order, :data:`CHUNK` at a time (three queries a chunk)."""
        keyed = sorted(
            (self.mvo_key(pk), pk) for pk in MetaverseObject.objects.values_list("pk", flat=True)
        )
        for start in range(0, len(keyed), CHUNK):
            chunk = keyed[start : start + CHUNK]
            yield self._object_rows(chunk)

    def _object_rows(self, chunk: list[tuple[Key, int]]) -> list[tuple[Key, dict[str, Any]]]:
        ids = [pk for _, pk in chunk]
        mvos = {
            pk: rest
            for pk, *rest in MetaverseObject.objects.filter(one_of("id", ids)).values_list(
                "pk", "object_type_id", "display_name", "status", "attributes"
            )
        }
        csos: dict[int, list[tuple[Any, ...]]] = {}
        for cso in ConnectorSpaceObject.objects.filter(
            one_of("metaverse_object_id", ids)
        ).values_list(
            "metaverse_object_id",
            "pk",
            "connected_system_id",
            "object_type_id",
            "join_type",
            "status",
            "attributes",
            "secondary_external_id",
            "external_id",
        ):
            csos.setdefault(cso[0], []).append(cso[1:])
        names = self._mvo_names(mvos.values())
        rows = []
        for key, pk in chunk:
            type_id, name, status, attributes = mvos[pk]
            row = self._object_row(pk, type_id, name, status, attributes, csos.get(pk, []), names)
            rows.append((key, row))
        return rows

    def _mvo_names(self, mvos: Iterable[list[Any]]) -> dict[int, str]:
        """The names of the MVOs these MVOs refer to (one query)."""
        wanted: set[int] = set()
        for type_id, _, _, attributes in mvos:
            info = self.ruleset.mv_types.get(type_id)
            for attribute in info.references if info else ():
                wanted.update(v for v in attributes.get(attribute, []) if isinstance(v, int))
        if not wanted:
            return {}
        return dict(
            MetaverseObject.objects.filter(one_of("id", wanted)).values_list("pk", "display_name")
        )

    def _object_row(
        self,
        pk: int,
        type_id: int,
        name: str,
        status: str,
        attributes: dict[str, list[Any]],
        csos: list[tuple[Any, ...]],
        names: dict[int, str],
    ) -> dict[str, Any]:
        info = self.ruleset.mv_types.get(type_id)
        references = info.references if info else frozenset()
        values = {
            attribute: [
                Ref(self.mvo_key(v), names.get(v) or f"metaverse object {v}")
                if attribute in references and isinstance(v, int)
                else v
                for v in found
            ]
            for attribute, found in attributes.items()
        }
        mv = AttributeView(attributes, info.multivalued if info else ())
        joined, imports = {}, set()
        by_system = {}
        for cso_id, system_id, cs_type_id, join_type, cso_status, cs_attributes, dn, ext in csos:
            cs_key = self.cso_key(cso_id)
            system = self.system_names.get(system_id, "?")
            joined[cs_key] = (system, dn or ext or f"CSO {cso_id}", cso_status)
            by_system[system_id] = (join_type, cs_type_id, cs_attributes)
            if cso_status != CsoStatus.NORMAL or join_type not in _IMPORTED:
                continue
            cs = self._cs_view(cs_type_id, cs_attributes)
            for rule in self.ruleset.import_rules.get(cs_type_id, []):
                if rule.mv_object_type_id == type_id and _scoped(rule, cs, mv):
                    imports.add((rule.name, cs_key))
        exports = set()
        for rule in self.ruleset.export_rules.get(type_id, []):
            target = by_system.get(rule.system_id)
            if target is None and not rule.provision:
                continue  # the rule neither holds nor would make an object for it
            if target is not None and target[0] == JoinType.PROJECTED:
                continue  # its own source: export rules never write back to it
            cs = self._cs_view(target[1], target[2]) if target else AttributeView({})
            if _scoped(rule, cs, mv):
                exports.add(rule.name)
        return {
            "type": info.name if info else "?",
            "name": name or f"metaverse object {pk}",
            "status": status,
            "attributes": values,
            "exports": exports,
            "imports": imports,
            "joined": joined,
        }

    def _cs_view(self, cs_type_id: int, attributes: dict[str, list[Any]]) -> AttributeView:
        info = self.ruleset.cs_types.get(cs_type_id)
        return AttributeView(attributes, info.multivalued if info else ())

    # -- pending exports -------------------------------------------------------------

    def exports(self) -> Iterator[list[tuple[Key, dict[str, Any]]]]:
        """Every pending export, by its CSO's key, :data:`CHUNK` at a time (three
        queries a chunk)."""
        keyed = sorted(
            (self.cso_key(cso_id), pk)
            for pk, cso_id in PendingExport.objects.values_list("pk", "cs_object_id")
        )
        references = reference_attributes(set(self.ruleset.cs_types))
        for start in range(0, len(keyed), CHUNK):
            yield self._export_rows(keyed[start : start + CHUNK], references)

    def _export_rows(
        self, chunk: list[tuple[Key, int]], references: set[tuple[int, str]]
    ) -> list[tuple[Key, dict[str, Any]]]:
        ids = [pk for _, pk in chunk]
        pes = {
            pk: rest
            for pk, *rest in PendingExport.objects.filter(pk__in=ids).values_list(
                "pk",
                "connected_system_id",
                "change_type",
                "status",
                "approval",
                "dn",
                "disables",
                "cs_object__object_type_id",
                "cs_object__secondary_external_id",
                "cs_object__external_id",
                "cs_object__attributes",
                "metaverse_object__display_name",
                "identity",
            )
        }
        changes: dict[int, list[tuple[str, str, list[Any]]]] = {}
        for pe_id, attribute, change_type, values in (
            PendingExportAttributeChange.objects.filter(one_of("pending_export_id", ids))
            .order_by("pending_export_id", "attribute", "change_type")
            .values_list("pending_export_id", "attribute", "change_type", "values")
        ):
            changes.setdefault(pe_id, []).append((attribute, change_type, values))
        referring = [
            value
            for pe_id, (_, _, _, _, _, _, type_id, _, _, attributes, _, _) in pes.items()
            for attribute, _, values in changes.get(pe_id, [])
            if (type_id, attribute) in references
            for value in (*values, *attributes.get(attribute, []))
        ]
        names = reference_names(referring)
        rows = []
        for key, pk in chunk:
            (
                system_id,
                change_type,
                status,
                approval,
                dn,
                disables,
                type_id,
                secondary,
                external,
                attributes,
                mvo_name,
                identity,
            ) = pes[pk]

            def normal(attribute: str, values: list[Any], type_id: int = type_id) -> list[Any]:
                if (type_id, attribute) not in references:
                    return list(values)
                return [
                    Ref(self.cso_key(int(v)), names.get(str(v), str(v))) if str(v).isdigit() else v
                    for v in values
                ]

            own = [_Change(a, kind, normal(a, values)) for a, kind, values in changes.get(pk, [])]
            touched = {change.attribute for change in own}
            info = self.ruleset.cs_types.get(type_id)
            rows.append(
                (
                    key,
                    {
                        "system": self.system_names.get(system_id, "?"),
                        "object_type": info.name if info else "?",
                        "target": dn or secondary or external or "",
                        "object": mvo_name or (identity or {}).get("name") or "",
                        "change_type": change_type,
                        "status": status,
                        "approval": approval,
                        "disables": disables,
                        "changes": own,
                        "current": {
                            a: normal(a, attributes[a]) for a in touched if a in attributes
                        },
                    },
                )
            )
        return rows


def _scoped(rule: CompiledRule, cs: AttributeView, mv: AttributeView) -> bool:
    """Whether the object is in the rule's scope; a scope that fails on it is an error
    the sync recorded, and the object is in no scope of that rule."""
    try:
        return in_scope(rule, cs, mv)
    except ObjectError:
        return False


# --------------------------------------------------------------------------- comparing


class _Comparison:
    """Fills a :class:`ChangeEffect` from the baseline's spooled rows and the after
    capture's rows, merged by key."""

    def __init__(self, effect: ChangeEffect, baseline: _Capture, after: _Capture) -> None:
        self.effect = effect
        self.baseline = baseline
        self.after = after

    def run(self, objects: Spool, exports: Spool) -> None:
        for _, before, now in _merged(objects.read(), self.after.objects()):
            self._object(before, now)
        for _, before, now in _merged(exports.read(), self.after.exports()):
            self._export(before, now)
        self._errors()
        self.effect.scope = dict(sorted(self.effect.scope.items()))

    # -- metaverse objects -----------------------------------------------------------

    def _object(self, before: dict | None, now: dict | None) -> None:
        effect = self.effect
        row = now or before
        assert row is not None
        name = row["name"]
        for rule in (now["exports"] if now else set()) - (before["exports"] if before else set()):
            self._scope(rule, entering=True).add(name)
        for rule in (before["exports"] if before else set()) - (now["exports"] if now else set()):
            self._scope(rule, entering=False).add(name)
        for rule, _ in (now["imports"] if now else set()) - (
            before["imports"] if before else set()
        ):
            self._scope(rule, entering=True).add(name)
        for rule, _ in (before["imports"] if before else set()) - (
            now["imports"] if now else set()
        ):
            self._scope(rule, entering=False).add(name)
        if before is None:
            effect.mvos_created.add({"object": name, "object_type": row["type"]})
            return
        if now is None:
            effect.mvos_deleted.add({"object": name, "object_type": row["type"]})
            return
        if now["status"] == MvoStatus.DELETION_SCHEDULED != before["status"]:
            effect.mvos_scheduled.add({"object": name, "object_type": row["type"]})
        for cso_key, (system, target, status) in before["joined"].items():
            # A CSO pending provisioning leaves with its create: nothing is disconnected.
            if cso_key not in now["joined"] and status != CsoStatus.PENDING_PROVISIONING:
                effect.disconnections.add({"system": system, "target": target, "object": name})
        old, new = before["attributes"], now["attributes"]
        for attribute in sorted(old.keys() | new.keys()):
            if not _same(old.get(attribute, []), new.get(attribute, [])):
                tally = effect.attributes.setdefault((row["type"], attribute), effect.tally())
                tally.add(
                    {
                        "object": name,
                        "before": _shown(old.get(attribute, [])),
                        "after": _shown(new.get(attribute, [])),
                    }
                )

    def _scope(self, rule: str, *, entering: bool) -> Tally:
        change = self.effect.scope.get(rule)
        if change is None:
            direction, system = self.after.rules.get(rule) or self.baseline.rules[rule]
            change = self.effect.scope[rule] = ScopeChange(
                rule, direction, system, self.effect.tally(), self.effect.tally()
            )
        return change.entering if entering else change.leaving

    # -- pending exports -------------------------------------------------------------

    def _export(self, before: dict | None, now: dict | None) -> None:
        effect = self.effect
        row = now or before
        assert row is not None
        sample = {
            "system": row["system"],
            "target": row["target"],
            "object": row["object"],
            "change_type": row["change_type"],
        }
        if before is None or now is None:
            sample["attributes"] = sorted(_changes_by_attribute(row))
            what = "created" if before is None else "removed"
            effect.exports[what].add_export(row["system"], row["change_type"], sample)
        elif _export_state(before) != _export_state(now):
            old, new = _changes_by_attribute(before), _changes_by_attribute(now)
            sample["was"] = before["change_type"]
            sample["attributes"] = sorted(
                a for a in old.keys() | new.keys() if old.get(a) != new.get(a)
            )
            effect.exports["changed"].add_export(row["system"], row["change_type"], sample)
        else:
            return
        if now is not None:
            if now["change_type"] == DELETE and (before is None or before["change_type"] != DELETE):
                effect.deletes.add(sample)
            if now["disables"] and not (before and before["disables"]):
                effect.disables.add(sample)
        kinds = {r["change_type"] for r in (before, now) if r is not None}
        if CREATE not in kinds and DELETE not in kinds:
            self._exported_values(row, before, now)

    def _exported_values(self, row: dict, before: dict | None, now: dict | None) -> None:
        """The values an update would leave in the target, before → after."""
        current = {**(before or {}).get("current", {}), **(now or {}).get("current", {})}
        old = apply_changes(current, before["changes"] if before else [])
        new = apply_changes(current, now["changes"] if now else [])
        touched = {c.attribute for r in (before, now) if r is not None for c in r["changes"]}
        for attribute in sorted(touched):
            if _same(old.get(attribute, []), new.get(attribute, [])):
                continue
            key = (row["system"], row["object_type"], attribute)
            tally = self.effect.exported_attributes.setdefault(key, self.effect.tally())
            tally.add(
                {
                    "target": row["target"],
                    "object": row["object"],
                    "before": _shown(old.get(attribute, [])),
                    "after": _shown(new.get(attribute, [])),
                }
            )

    # -- errors ----------------------------------------------------------------------

    def _errors(self) -> None:
        for tally, errors in (
            (self.effect.new_errors, self.after.errors - self.baseline.errors),
            (self.effect.resolved_errors, self.baseline.errors - self.after.errors),
        ):
            for (system, external_id, error_type, message), n in sorted(errors.items()):
                for _ in range(n):
                    tally.add(
                        {
                            "system": system,
                            "external_id": external_id,
                            "error_type": error_type,
                            "message": message,
                        }
                    )


def _export_state(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two pending exports of one CSO the same."""
    return (
        row["change_type"],
        row["approval"],
        row["disables"],
        row["target"],
        _changes_by_attribute(row),
    )


def _changes_by_attribute(row: dict[str, Any]) -> dict[str, list[tuple[str, list[str]]]]:
    """A pending export's attribute changes, comparable: attribute → its changes."""
    changes: dict[str, list[tuple[str, list[str]]]] = {}
    for change in row["changes"]:
        changes.setdefault(change.attribute, []).append(
            (change.change_type, sorted(map(str, change.values)))
        )
    return {attribute: sorted(found) for attribute, found in changes.items()}


def _same(old: list[Any], new: list[Any]) -> bool:
    """The same values (a multi-valued attribute's order does not matter)."""
    return old == new or sorted(map(str, old)) == sorted(map(str, new))


def _shown(values: list[Any]) -> list[Any]:
    """Values as JSON shows them: a reference by the name of what it names."""
    return [value.name if isinstance(value, Ref) else value for value in values]


def _merged(
    baseline: Iterator[list[tuple[Key, Any]]], after: Iterator[list[tuple[Key, Any]]]
) -> Iterator[tuple[Key, Any, Any]]:
    """Two streams of chunks of ``(key, row)`` in key order, merged:
    ``(key, baseline row or None, after row or None)``."""
    left, right = _rows(baseline), _rows(after)
    a, b = next(left, None), next(right, None)
    while a is not None and b is not None:
        if a[0] < b[0]:
            yield a[0], a[1], None
            a = next(left, None)
        elif b[0] < a[0]:
            yield b[0], None, b[1]
            b = next(right, None)
        else:
            yield a[0], a[1], b[1]
            a, b = next(left, None), next(right, None)
    while a is not None:
        yield a[0], a[1], None
        a = next(left, None)
    while b is not None:
        yield b[0], None, b[1]
        b = next(right, None)


def _rows(chunks: Iterator[list[tuple[Key, Any]]]) -> Iterator[tuple[Key, Any]]:
    for chunk in chunks:
        yield from chunk
