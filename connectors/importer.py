"""The import processor: full and delta import of a connected system (seed 002).

One processor for both; the connector does the delta filtering from the watermark.
An import works in two steps, so that bad input never becomes a mass change:

1. **Stage**: the connector's pages are read one at a time and checked with a fixed
   number of queries per page (existing CSOs of the page, pending-provisioning CSOs
   by DN, referenced CSOs); what each page would write is spooled to disk
   (:mod:`connectors.importing.spool`) while a tally counts what would change.
2. **Screen, then write**: once the whole source is read, an import that lost an
   attribute or would change one on more objects than the change threshold is
   refused with nothing written (:mod:`connectors.importing.screening`); otherwise
   the spooled pages are written, one transaction per page — new CSOs, changed CSOs
   and the RPEIs of what happened to them — by a
   :class:`~core.writer.PageWriter`.

CSOs are handled as plain rows and written with :mod:`core.bulk`. Per object,
in the seed's order:

1. duplicate attribute names → ``duplicate_imported_attributes``;
2. object type not among the selected ones → ``could_not_match_object_type``;
3. no external id → ``missing_external_id``;
4. external id already seen in an earlier page → ``duplicate_object``;
5. external id twice or more in this page → every copy ``duplicate_object``: no
   random winner, the source has to be fixed;
6. delete (delta): the CSO becomes ``obsolete`` (RPEI ``deleted``); none: ignored;
7. no CSO → a new one (``normal``, not joined, sync pending; RPEI ``added``);
   a CSO → only real attribute changes are staged (RPEI ``updated`` naming them; no
   RPEI and no write when nothing changed). A ``pending_provisioning`` CSO — found by
   external id, or by DN while it has none yet — becomes ``normal``: it is the object
   JIM provisioned, confirmed, not a new one (seed 000).

After the last page is written: attributes seen for the first time are added to the
schema; a full import runs deletion detection (:mod:`connectors.importing.deletion`);
unresolved references are retried (:mod:`connectors.importing.references`); the
watermark is saved. A failure while staging (a
:class:`~connectors.base.ConnectorError` from the page iterator, a refusal) writes
nothing; a failure after that (the deletion threshold, a lost database connection)
keeps the committed pages. Either way the watermark stays where it was, so the next
delta import reads those changes again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from connectors.activity import ActivityRecorder, RunFailed
from connectors.base import Connector, ImportObject, ImportObjectError, ImportPage, ObjectTypeSpec
from connectors.choices import (
    ActivityPhase,
    AttributeDataType,
    CsoStatus,
    JoinType,
    ObjectChangeType,
    RpeiErrorType,
)
from connectors.importing.deletion import DeletionScope, detect_deletions
from connectors.importing.identities import RunIdentities
from connectors.importing.references import Found, ReferenceResolver, chunks, with_unresolved
from connectors.importing.screening import (
    ChangeTally,
    ScreenedType,
    refuse_missing_columns,
    screen,
)
from connectors.importing.spool import Spool
from connectors.importing.values import (
    changed_attributes,
    data_type_of,
    external_id_key,
    json_values,
    storable_text,
    unstorable,
    unstorable_text,
)
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfileExecutionItem,
)
from connectors.schema import (
    add_attributes,
    connector_for,
    discovered_attributes,
    object_type_spec,
)
from connectors.value_changes import changes_message, value_changes
from core.bulk import PlannerStatistics, insert_rows, one_of, update_rows
from core.writer import PageWriter
from history import recording as history
from history.models import Event, ObjectKind

logger = logging.getLogger(__name__)

#: The CSO columns the import reads, in :class:`_Cso` order.
CSO_COLUMNS = (
    "id",
    "object_type_id",
    "external_id",
    "secondary_external_id",
    "secondary_external_id_key",
    "status",
    "attributes",
    "unresolved_references",
    "sync_pending",
)
#: Columns an import writes to an existing CSO.
UPDATE_COLUMNS = (*CSO_COLUMNS[1:], "updated_at")
#: External ids per lookup query.
LOOKUP_CHUNK = 5000


class Confirm(Protocol):
    """Reconciles the pending exports of CSOs a page has just written (the confirming
    import of seed 002; the runs layer passes :func:`exports.confirmation.confirm_exports`:
    the connector space knows nothing of pending exports)."""

    def __call__(
        self,
        system: ConnectedSystem,
        csos: list[Any],
        recorder: ActivityRecorder,
        *,
        multivalued: Callable[[int], frozenset[str]],
        dn_key: Callable[[str], str],
    ) -> None: ...


def run_full_import(activity: Activity, recorder: ActivityRecorder, *, confirm: Confirm) -> None:
    """Run-profile entry point: full import (with deletion detection)."""
    ImportRun(activity, recorder, delta=False, confirm=confirm).run()


def run_delta_import(activity: Activity, recorder: ActivityRecorder, *, confirm: Confirm) -> None:
    """Run-profile entry point: delta import (deletes come from the connector)."""
    ImportRun(activity, recorder, delta=True, confirm=confirm).run()


@dataclass
class _ImportType:
    """A selected object type as the import uses it, and the attributes it discovers."""

    id: int
    spec: ObjectTypeSpec
    known_attributes: frozenset[str]
    #: attributes the source may lose (see :mod:`connectors.importing.screening`)
    optional: frozenset[str]
    #: multi-valued attributes (their changes are recorded as values added and removed)
    multivalued: frozenset[str]
    #: attributes seen that the schema lacks → the data type of their first value
    new_attributes: dict[str, str] = field(default_factory=dict)
    multivalued_seen: set[str] = field(default_factory=set)


@dataclass
class _Candidate:
    """An imported object that passed the checks, with its normalised identifiers."""

    obj: ImportObject
    type: _ImportType
    key: str
    dn: str | None
    dn_key: str | None


@dataclass(slots=True)
class _Cso:
    """A CSO as the import reads and writes it: a plain row, not a model instance
    (building 100,000 model instances costs more than the rest of the work on them)."""

    id: int | None
    object_type_id: int
    external_id: str | None
    secondary_external_id: str | None
    secondary_external_id_key: str | None
    status: str
    attributes: dict[str, list[Any]]
    unresolved_references: dict[str, list[str]]
    sync_pending: bool

    def row(self) -> dict[str, Any]:
        return {column: getattr(self, column) for column in CSO_COLUMNS}


@dataclass
class _PageWrites:
    """What one page writes: new and changed CSOs, and the RPEIs of what happened."""

    creates: list[_Cso] = field(default_factory=list)
    updates: list[_Cso] = field(default_factory=list)
    #: CSOs the page imported without a change (nothing written; a confirming import
    #: still reconciles them: an export applied its values to the CSO already)
    unchanged: list[_Cso] = field(default_factory=list)
    items: list[tuple[str, _Cso, dict[str, Any]]] = field(default_factory=list)


class ImportRun:
    """One full or delta import of one connected system."""

    def __init__(
        self, activity: Activity, recorder: ActivityRecorder, *, delta: bool, confirm: Confirm
    ) -> None:
        self.activity = activity
        self.recorder = recorder
        self.delta = delta
        self.confirm = confirm
        # Read afresh: the watermark and settings are those of now, not of whoever
        # created the activity.
        self.system = ConnectedSystem.objects.get(pk=activity.connected_system_id)
        self.started = timezone.now()
        #: Normalised external ids of every object this run met, errors included.
        self.seen: set[str] = set()
        #: Objects that passed the checks (zero-import safety counts these).
        self.imported = 0
        #: Objects the connector could not read and could not name.
        self.unidentified = 0
        self.identities = RunIdentities()
        self.tally = ChangeTally()
        self.connector: Connector = connector_for(self.system)
        if self.delta and not self.connector.supports_delta_import:
            raise RunFailed(
                f"{self.system.name}: the {self.connector.name} connector has no delta "
                "import; use a full import."
            )
        self.types, self.resolver = self._load_types()
        self.types_by_id = {t.id: t for t in self.types.values()}
        self.history_source = history.Source.of(activity)
        self.statistics = PlannerStatistics(
            ConnectorSpaceObject,
            ["connected_system_id", "object_type_id", "external_id", "secondary_external_id_key"],
            ConnectorSpaceObject.objects.filter(connected_system=self.system).count(),
        )

    # -- the run ----------------------------------------------------------------------

    def run(self) -> None:
        self.recorder.set_phase(ActivityPhase.CONNECTING)
        with self.connector as connector:
            stream = connector.import_objects(
                [t.spec for t in self.types.values()],
                delta=self.delta,
                persisted_data=self.system.persisted_connector_data,
                page_size=self._page_size(),
            )
            screening = not self.activity.allow_changes
            if screening and stream.attribute_names is not None:
                refuse_missing_columns(self.system, self._screened(), stream.attribute_names)
            self.recorder.progress(total=stream.total, processed=0, phase=ActivityPhase.IMPORTING)
            try:
                with Spool[_PageWrites]() as spool:
                    for page in stream.pages:
                        writes = self._stage_page(page)
                        if writes is not None:
                            spool.add(writes)
                        self.recorder.progress(advance=len(page.objects) + len(page.errors))
                    if screening:
                        screen(
                            self.system,
                            self._screened(),
                            self.tally,
                            full=not self.delta,
                            columns_known=stream.attribute_names is not None,
                        )
                    self._write_all(spool)
            except BaseException:
                self._undo_reservations_quietly()
                raise
            self.identities.undo_unfulfilled()
            self._store_new_attributes(connector)
        self.recorder.flush()
        if not self.delta:
            self.recorder.set_phase(ActivityPhase.DELETION_DETECTION)
            self._detect_deletions()
        self.recorder.set_phase(ActivityPhase.RESOLVING_REFERENCES)
        self.resolver.resolve_remaining(self.recorder, self.started)
        self.recorder.set_phase(ActivityPhase.FINISHING)
        self._save_watermark(stream.watermark)

    def _load_types(self) -> tuple[dict[str, _ImportType], ReferenceResolver]:
        """The selected object types by name, and the resolver of their references."""
        types: dict[str, _ImportType] = {}
        all_types = list(
            ConnectedSystemObjectType.objects.filter(connected_system=self.system)
            .prefetch_related("attributes")
            .order_by("name")
        )
        for object_type in all_types:
            if object_type.selected:
                attributes = object_type.attributes.all()
                types[object_type.name] = _ImportType(
                    object_type.pk,
                    object_type_spec(object_type),
                    frozenset(a.name for a in attributes),
                    frozenset(a.name for a in attributes if a.optional),
                    frozenset(a.name for a in attributes if a.multivalued),
                )
        if not types:
            raise RunFailed(
                f"{self.system.name} has no object type selected for import; "
                "declare one (object_types in the configuration) and select it."
            )
        resolver = ReferenceResolver(
            self.system.pk, _reference_kinds(all_types), self.connector.secondary_id_key
        )
        return types, resolver

    def _page_size(self) -> int | None:
        profile = self.activity.run_profile
        return profile.page_size if profile is not None else None

    def _screened(self) -> list[ScreenedType]:
        return [
            ScreenedType(
                t.id, t.spec.name, t.spec.external_id_attribute, t.known_attributes, t.optional
            )
            for t in self.types.values()
        ]

    def _write_all(self, spool: Spool[_PageWrites]) -> None:
        """Write the staged pages, one transaction each (in the background when it can)."""
        self.recorder.set_phase(ActivityPhase.WRITING)
        with PageWriter() as writer:
            for writes in spool.replay():
                writer.submit(partial(self._write, writes), partial(self._written, writes))

    # -- one page -----------------------------------------------------------------------

    def _stage_page(self, page: ImportPage) -> _PageWrites | None:
        """Check and stage one page's objects: what the page would write."""
        self._record_unreadable(page.errors)
        candidates = self._screen(page.objects)
        if not candidates:
            return None
        existing, provisioned = self._load_existing(candidates)
        targets: dict[str, _Cso | None] = {}
        for candidate in candidates:
            cso = existing.get(candidate.key)
            if cso is None and candidate.dn_key:
                cso = provisioned.get(candidate.dn_key)
            targets[candidate.key] = cso
        new = [c for c in candidates if targets[c.key] is None and c.obj.change != "delete"]
        new_ids = self._new_ids(new)
        found, found_for_new = self._lookup_references(candidates, new)
        writes = _PageWrites()
        for candidate in candidates:
            cso = targets[candidate.key]
            if candidate.obj.change == "delete":
                self._stage_delete(candidate, cso, writes)
            elif cso is None:
                self._stage_create(candidate, new_ids.get(candidate.key), found_for_new, writes)
            else:
                self._stage_update(candidate, cso, found, writes)
        return writes

    def _new_ids(self, new: list[_Candidate]) -> dict[str, int]:
        """The ids the page's new CSOs will have (when ids are known before writing)."""
        if not new or not self.identities.enabled:
            return {}
        keys = [candidate.key for candidate in new]
        return dict(zip(keys, self.identities.assign(keys), strict=True))

    def _undo_reservations_quietly(self) -> None:
        """The run is failing: undo what can be undone, let its own error be raised."""
        try:
            self.identities.undo_unfulfilled()
        except Exception:
            logger.exception("Undoing the reservations of a failed import failed")

    def _written(self, writes: _PageWrites) -> None:
        """A page is committed (its CSOs and their RPEIs): count its RPEIs.

        This runs in the import's own thread, after the page's transaction.
        """
        # Confirming import (seed 002): every CSO the page imported is persisted with
        # its imported values; reconcile their exported pending exports.
        with transaction.atomic():
            self.confirm(
                self.system,
                [*writes.creates, *writes.updates, *writes.unchanged],
                self.recorder,
                multivalued=self._multivalued,
                dn_key=self.connector.secondary_id_key,
            )
        for change_type, _, _ in writes.items:
            self.recorder.count(change_type)
        self.identities.committed([cso.external_id for cso in writes.creates if cso.external_id])

    def _multivalued(self, object_type_id: int) -> frozenset[str]:
        for import_type in self.types.values():
            if import_type.id == object_type_id:
                return frozenset(
                    name for name, spec in import_type.spec.attributes.items() if spec.multivalued
                ) | frozenset(import_type.multivalued_seen)
        return frozenset()

    def _record_unreadable(self, errors: list[ImportObjectError]) -> None:
        """Objects the connector could not read: an RPEI each; protect their CSOs."""
        for error in errors:
            key = external_id_key(error.external_id)
            if key and unstorable_text(key):
                key = ""  # no CSO can have it: the object cannot be named
            if key:
                self.seen.add(key)
            else:
                self.unidentified += 1
            message = f"{error.location}: {error.message}" if error.location else error.message
            self.recorder.error(
                error.error_type or RpeiErrorType.INVALID_DATA,
                storable_text(message),
                external_id=key,
            )

    def _screen(self, objects: list[ImportObject]) -> list[_Candidate]:
        """Checks 1 to 5 of the module doc, then a value PostgreSQL cannot store
        (``invalid_data``); returns the objects that passed them."""
        candidates: list[_Candidate] = []
        page_keys: set[str] = set()
        seen, types = self.seen, self.types
        for obj in objects:
            import_type = types.get(obj.object_type)
            key = self._external_id(obj, import_type)
            if key:
                page_keys.add(key)
            if obj.duplicate_attribute_names or import_type is None or not key or key in seen:
                self._reject_first_failed_check(obj, import_type, key)
                continue
            problem = unstorable(obj)
            if problem:
                # Seen (its CSO is still there); but an id that cannot be stored names
                # no CSO: then the object is unidentified, as if unreadable.
                if unstorable_text(key):
                    self.unidentified += 1
                message = f"{problem}; the object is skipped until the source is fixed"
                self._reject(RpeiErrorType.INVALID_DATA, obj, message, key)
                continue
            dn = self._dn(obj, import_type)
            dn_key = self.connector.secondary_id_key(dn) if dn else None
            candidates.append(_Candidate(obj, import_type, key, dn, dn_key))
        self.seen |= page_keys
        accepted = self._reject_same_page_duplicates(candidates)
        self.imported += len(accepted)
        return accepted

    def _reject_first_failed_check(
        self, obj: ImportObject, import_type: _ImportType | None, key: str
    ) -> None:
        if obj.duplicate_attribute_names:
            names = ", ".join(obj.duplicate_attribute_names)
            self._reject(
                RpeiErrorType.DUPLICATE_IMPORTED_ATTRIBUTES,
                obj,
                f"attribute names appear more than once ({names}); the object is skipped "
                "until the source is fixed",
                key,
            )
        elif import_type is None:
            self._reject(
                RpeiErrorType.COULD_NOT_MATCH_OBJECT_TYPE,
                obj,
                f"object type {obj.object_type!r} is not a selected object type of "
                f"{self.system.name} (selected: {', '.join(sorted(self.types))})",
                key,
            )
        elif not key:
            self._reject(
                RpeiErrorType.MISSING_EXTERNAL_ID,
                obj,
                f"no value for {import_type.spec.external_id_attribute!r}, the external id "
                f"of {import_type.spec.name}",
                key,
            )
        else:
            self._reject(
                RpeiErrorType.DUPLICATE_OBJECT,
                obj,
                f"external id {key!r} was already imported from an earlier page of this run; "
                "the copy is skipped",
                key,
            )

    def _reject_same_page_duplicates(self, candidates: list[_Candidate]) -> list[_Candidate]:
        counts = Counter(candidate.key for candidate in candidates)
        if len(counts) == len(candidates):
            return candidates
        locations: dict[str, list[str]] = {}
        for candidate in candidates:
            if counts[candidate.key] > 1:
                locations.setdefault(candidate.key, []).append(candidate.obj.location)
        accepted = []
        for candidate in candidates:
            if counts[candidate.key] == 1:
                accepted.append(candidate)
                continue
            others = ", ".join(loc for loc in locations[candidate.key][:5] if loc)
            self._reject(
                RpeiErrorType.DUPLICATE_OBJECT,
                candidate.obj,
                f"external id {candidate.key!r} appears {counts[candidate.key]} times in the "
                "source" + (f" ({others})" if others else "") + "; every copy is rejected "
                "until the source is fixed",
                candidate.key,
            )
        return accepted

    def _reject(self, error_type: str, obj: ImportObject, message: str, key: str) -> None:
        where = f"{obj.location}: " if obj.location else ""
        self.recorder.error(
            error_type, storable_text(where + message), external_id=storable_text(key)
        )

    @staticmethod
    def _external_id(obj: ImportObject, import_type: _ImportType | None) -> str:
        if obj.external_id is not None:
            return external_id_key(obj.external_id)
        if import_type is None:
            return ""
        values = obj.attributes.get(import_type.spec.external_id_attribute)
        return external_id_key(values[0]) if values else ""

    @staticmethod
    def _dn(obj: ImportObject, import_type: _ImportType) -> str | None:
        if obj.secondary_external_id:
            return obj.secondary_external_id
        attribute = import_type.spec.secondary_external_id_attribute
        values = obj.attributes.get(attribute) if attribute else None
        return str(values[0]) if values else None

    def _load_existing(
        self, candidates: list[_Candidate]
    ) -> tuple[dict[str, _Cso], dict[str, _Cso]]:
        """The page's CSOs by external id, and pending-provisioning CSOs without an
        external id yet by normalised DN (two queries)."""
        csos = ConnectorSpaceObject.objects.filter(connected_system=self.system)
        existing: dict[str, _Cso] = {}
        for keys in chunks([c.key for c in candidates], LOOKUP_CHUNK):
            for row in csos.filter(one_of("external_id", keys)).values_list(*CSO_COLUMNS):
                cso = _Cso(*row)
                if cso.external_id is not None:  # always: it was looked up by its value
                    existing[cso.external_id] = cso
        dn_keys = [c.dn_key for c in candidates if c.dn_key and c.key not in existing]
        provisioned: dict[str, _Cso] = {}
        for keys in chunks(dn_keys, LOOKUP_CHUNK):
            rows = csos.filter(
                one_of("secondary_external_id_key", keys),
                status=CsoStatus.PENDING_PROVISIONING,
                external_id__isnull=True,
            ).values_list(*CSO_COLUMNS)
            for row in rows:
                cso = _Cso(*row)
                if cso.secondary_external_id_key is not None:  # always, as above
                    provisioned[cso.secondary_external_id_key] = cso
        return existing, provisioned

    def _lookup_references(
        self, candidates: list[_Candidate], new: list[_Candidate]
    ) -> tuple[Found, Found]:
        """The CSO ids of the page's reference values: (for existing CSOs, for new ones).

        Both see the CSOs in the database and those this run created; new CSOs also
        see reservations for objects not read yet (see
        :mod:`connectors.importing.identities`).
        """
        wanted = {
            pair
            for candidate in candidates
            if candidate.obj.change != "delete"
            for pair in self.resolver.wanted(candidate.type.id, candidate.obj.attributes)
        }
        found = self.resolver.lookup(wanted) if wanted else {}
        identities = self.identities
        if not identities.enabled:
            return found, found
        for uses_dn, key in wanted:
            if not uses_dn and (False, key) not in found and key in identities.created:
                found[(False, key)] = identities.created[key]
        missing = {
            key
            for candidate in new
            for uses_dn, key in self.resolver.wanted(candidate.type.id, candidate.obj.attributes)
            if not uses_dn and key and (False, key) not in found
        }
        if not missing:
            return found, found
        reserved = identities.reserve(missing)
        return found, {**found, **{(False, key): pk for key, pk in reserved.items()}}

    # -- staging --------------------------------------------------------------------

    def _document(
        self, candidate: _Candidate, found: Found
    ) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """The object's attribute document (references as CSO ids) and what is unresolved."""
        import_type = candidate.type
        attributes = dict(candidate.obj.attributes)
        for name, values in candidate.obj.attributes.items():
            if len(values) != 1 or type(values[0]) is not str:  # else already as stored
                stored = json_values(values)
                if stored:
                    attributes[name] = stored
                else:
                    del attributes[name]
        new = attributes.keys() - import_type.known_attributes
        for name in new:
            if name not in import_type.new_attributes:
                import_type.new_attributes[name] = data_type_of(candidate.obj.attributes[name][0])
            if len(attributes[name]) > 1:
                import_type.multivalued_seen.add(name)
        return self.resolver.split(import_type.id, attributes, found)

    def _stage_create(
        self, candidate: _Candidate, cso_id: int | None, found: Found, writes: _PageWrites
    ) -> None:
        attributes, unresolved = self._document(candidate, found)
        self.tally.imported(candidate.type.spec.name, attributes)
        self.tally.imported(candidate.type.spec.name, unresolved)
        if cso_id is not None and self.identities.awaited:
            for name, key in self.resolver.external_id_references(
                candidate.type.id, candidate.obj.attributes
            ):
                self.identities.refer(key, cso_id, name)
        cso = _Cso(
            id=cso_id,
            object_type_id=candidate.type.id,
            external_id=candidate.key,
            secondary_external_id=candidate.dn,
            secondary_external_id_key=candidate.dn_key,
            status=CsoStatus.NORMAL,
            attributes=attributes,
            unresolved_references=unresolved,
            sync_pending=True,
        )
        writes.creates.append(cso)
        writes.items.append((ObjectChangeType.ADDED, cso, {}))

    def _stage_update(
        self,
        candidate: _Candidate,
        cso: _Cso,
        found: Found,
        writes: _PageWrites,
    ) -> None:
        attributes, unresolved = self._document(candidate, found)
        changed = changed_attributes(cso.attributes, attributes)
        unresolved_changed = changed_attributes(cso.unresolved_references, unresolved)
        if unresolved_changed:
            changed = sorted(set(changed) | set(unresolved_changed))
        name = candidate.type.spec.name
        self.tally.imported(name, attributes)
        self.tally.imported(name, unresolved)
        if cso.status != CsoStatus.PENDING_PROVISIONING:  # confirming a create: not a change
            self.tally.existing(name, candidate.key, cso.attributes, attributes, changed)
        details: dict[str, Any] = {}
        if changed:
            details["attributes"] = changed
            details["changes"] = self._value_changes(
                candidate.type, changed, cso, attributes, unresolved
            )
        if cso.status == CsoStatus.OBSOLETE:
            details["status"] = "returned: obsolete → normal"
        dn_changed = candidate.dn is not None and candidate.dn != cso.secondary_external_id
        if dn_changed and cso.secondary_external_id_key not in (None, candidate.dn_key):
            details["dn"] = [cso.secondary_external_id, candidate.dn]  # renamed or moved
        confirmed = cso.status == CsoStatus.PENDING_PROVISIONING
        identity_changed = (
            dn_changed
            or cso.external_id != candidate.key
            or cso.object_type_id != candidate.type.id
        )
        if not (details or confirmed or identity_changed):
            writes.unchanged.append(cso)  # nothing changed: no write, no RPEI
            return
        cso.attributes = attributes
        cso.unresolved_references = unresolved
        cso.status = CsoStatus.NORMAL
        cso.external_id = candidate.key
        cso.object_type_id = candidate.type.id
        if candidate.dn is not None:
            cso.secondary_external_id = candidate.dn
            cso.secondary_external_id_key = candidate.dn_key
        cso.sync_pending = True
        writes.updates.append(cso)
        if details:
            writes.items.append((ObjectChangeType.UPDATED, cso, details))

    def _value_changes(
        self,
        import_type: _ImportType,
        changed: list[str],
        cso: _Cso,
        attributes: dict[str, list[Any]],
        unresolved: dict[str, list[str]],
    ) -> dict[str, dict[str, Any]]:
        """The RPEI's record of the changed values (a reference's unresolved values are
        recorded as the system gave them, beside the ids of those that resolved)."""
        old, new = cso.attributes, attributes
        if cso.unresolved_references or unresolved:
            old = with_unresolved(old, cso.unresolved_references)
            new = with_unresolved(new, unresolved)
        return value_changes(
            changed,
            old,
            new,
            multivalued=import_type.multivalued,
            references=self.resolver.references.get(import_type.id, {}),
            reference_kind="cso",
        )

    def _stage_delete(self, candidate: _Candidate, cso: _Cso | None, writes: _PageWrites) -> None:
        if cso is None or cso.status == CsoStatus.OBSOLETE:
            return  # nothing to delete
        cso.status = CsoStatus.OBSOLETE
        cso.sync_pending = True
        writes.updates.append(cso)
        writes.items.append((ObjectChangeType.DELETED, cso, {"reason": "deleted in the source"}))

    def _write(self, writes: _PageWrites) -> None:
        """Write a page: its CSOs, then the RPEIs of what happened to them.

        The page's RPEIs are written with the CSOs they describe, in the same
        transaction (the recorder counts them once committed); this may run in the page
        writer's thread, so nothing here goes through the recorder.
        """
        if writes.creates:
            common = {"connected_system_id": self.system.pk, "join_type": JoinType.NOT_JOINED}
            rows = [{**cso.row(), **common} for cso in writes.creates]
            if self.identities.enabled:  # ids known since staging
                insert_rows(ConnectorSpaceObject, rows, returning=False)
            else:
                for row in rows:
                    del row["id"]
                ids = insert_rows(ConnectorSpaceObject, rows)
                for cso, pk in zip(writes.creates, ids, strict=True):
                    cso.id = pk
            self.statistics.grew(len(rows))
        if writes.updates:
            now = timezone.now()
            rows = [{**cso.row(), "updated_at": now} for cso in writes.updates]
            update_rows(ConnectorSpaceObject, rows, UPDATE_COLUMNS)
        history.write(self._history(writes))
        insert_rows(
            RunProfileExecutionItem,
            [
                {
                    "activity_id": self.activity.pk,
                    "change_type": change_type,
                    "external_id": (cso.external_id or "")[:2000],
                    "cs_object_id": cso.id,
                    "message": _message(change_type, details),
                    "details": details,
                }
                for change_type, cso, details in writes.items
            ],
            returning=False,
        )

    def _history(self, writes: _PageWrites) -> list[dict[str, Any]]:
        """The value history of the page's CSOs: a new CSO's values, a changed CSO's
        changes (those of its RPEI), a CSO deleted in the source."""
        now, source = timezone.now(), self.history_source
        rows = []
        for change_type, cso, details in writes.items:
            assert cso.id is not None  # written above
            if change_type == ObjectChangeType.ADDED:
                event, changes = Event.CREATED, self._initial_values(cso)
            elif change_type == ObjectChangeType.UPDATED and "changes" in details:
                event, changes = Event.UPDATED, details["changes"]
            elif change_type == ObjectChangeType.DELETED:
                event, changes = Event.DELETED, {}
            else:
                continue
            rows.append(history.row(ObjectKind.CSO, cso.id, event, now, source, changes))
        return rows

    def _initial_values(self, cso: _Cso) -> dict[str, dict[str, Any]]:
        """A new CSO's values, as a change from none."""
        import_type = self.types_by_id[cso.object_type_id]
        values = with_unresolved(cso.attributes, cso.unresolved_references)
        return value_changes(
            sorted(values),
            {},
            values,
            multivalued=import_type.multivalued,
            references=self.resolver.references.get(import_type.id, {}),
            reference_kind="cso",
        )

    # -- after the last page ------------------------------------------------------------

    def _store_new_attributes(self, connector: Connector) -> None:
        """Add the attributes seen for the first time to the schema, typed as the
        connector's schema says when it can tell (else as their values suggest)."""
        new = {t.spec.name: t for t in self.types.values() if t.new_attributes}
        if not new:
            return
        discovered = discovered_attributes(connector, list(new))
        for name, import_type in new.items():
            known = discovered.get(name, {})
            data_types = {
                attribute: known[attribute].data_type if attribute in known else data_type
                for attribute, data_type in import_type.new_attributes.items()
            }
            multivalued = import_type.multivalued_seen | {
                attribute
                for attribute in data_types
                if attribute in known and known[attribute].multivalued
            }
            add_attributes(import_type.id, data_types, multivalued=multivalued)

    def _detect_deletions(self) -> None:
        scopes = [
            DeletionScope(
                import_type.id,
                self.connector.secondary_id_key(import_type.spec.container)
                if import_type.spec.container
                else "",
            )
            for import_type in self.types.values()
        ]
        outcome = detect_deletions(
            self.system,
            scopes,
            self.seen,
            imported_count=self.imported,
            unidentified_count=self.unidentified,
            allow_deletions=self.activity.allow_deletions,
            recorder=self.recorder,
            run_started=self.started,
            history_source=self.history_source,
        )
        if outcome.skipped_reason:
            self.recorder.note(f"Deletion detection: {outcome.skipped_reason}.")

    def _save_watermark(self, watermark: dict[str, Any]) -> None:
        if watermark != self.system.persisted_connector_data:
            ConnectedSystem.objects.filter(pk=self.system.pk).update(
                persisted_connector_data=watermark
            )
            self.system.persisted_connector_data = watermark


def _message(change_type: str, details: dict[str, Any]) -> str:
    """An updated CSO's RPEI message: what changed, in a few words."""
    if change_type != ObjectChangeType.UPDATED:
        return ""
    parts = [changes_message(details.get("attributes", []))]
    if "dn" in details:
        parts.append("renamed or moved")
    if "status" in details:
        parts.append("returned after being deleted")
    return "; ".join(part for part in parts if part)


def _reference_kinds(object_types: list[ConnectedSystemObjectType]) -> dict[int, dict[str, bool]]:
    """For each object type, its reference attributes → whether their values are DNs.

    Values are DNs when the referenced type (the attribute's ``references``, else the
    type itself) has a secondary external id; otherwise they are external ids.
    """
    by_name = {t.name: t for t in object_types}
    kinds: dict[int, dict[str, bool]] = {}
    for object_type in object_types:
        references = {}
        for attribute in object_type.attributes.all():
            if attribute.data_type != AttributeDataType.REFERENCE:
                continue
            target = by_name.get(attribute.references, object_type)
            references[attribute.name] = bool(target.secondary_external_id_attribute)
        kinds[object_type.pk] = references
    return kinds
