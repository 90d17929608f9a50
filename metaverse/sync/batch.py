"""A batch of a sync run: the objects it loaded and the writes it will make.

The sync processor works on a few hundred CSOs at a time. A :class:`SyncBatch` loads,
in a fixed number of queries, everything those CSOs' processing may read — their MVOs,
the other CSOs joined to those MVOs, open pending exports — and collects every change
as plain Python state. :meth:`SyncBatch.commit` then writes it all with bulk
operations inside the batch's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model
from django.utils import timezone

from connectors.models import ConnectorSpaceObject
from core.bulk import (
    assign_ids,
    insert_instances,
    insert_rows,
    one_of,
    update_instances,
)
from exports.choices import PendingExportStatus
from exports.lifecycle import write_staged
from exports.models import PendingExport, PendingExportAttributeChange
from history import recording as history
from metaverse.choices import MvoStatus
from metaverse.models import MetaverseObject, MetaverseObjectKey
from metaverse.sync import value_history
from metaverse.sync.keys import JoinIndex, key_rows, normalise_key
from metaverse.sync.rules import RuleSet

CSO_JOIN_FIELDS = (
    "metaverse_object",
    "join_type",
    "joined_at",
    "sync_pending",
    "status",
    "disabled_at",
    "disconnected_by_hand",
    "disconnected_from_mvo",
)
MVO_FIELDS = ("attributes", "attribute_sources", "display_name", "status", "deletion_due_at")
PE_FIELDS = (
    "change_type",
    "status",
    "dn",
    "error_count",
    "next_retry_at",
    "last_error",
    "approval",
    "approved_by",
    "approved_at",
    "approval_reason",
    "metaverse_object",
    "sync_rule",
    "identity",
    "disables",
)


@dataclass
class ChangeRow:
    """One attribute change of a pending export, as sync computes it."""

    attribute: str
    change_type: str
    values: list[Any]
    previous_values: list[Any] = field(default_factory=list)
    status: str = "pending"

    def content(self) -> tuple[str, str, tuple[str, ...]]:
        """What the change does, for comparing two changes (status aside)."""
        return (self.attribute, self.change_type, tuple(sorted(map(str, self.values))))


@dataclass
class ExportState:
    """A CSO's pending export (or none yet) and its attribute changes, being edited."""

    pe: PendingExport | None
    rows: list[ChangeRow]
    dirty: bool = False
    deleted: bool = False
    #: the stored export's status and last update when the batch loaded it
    loaded: tuple[str, dt.datetime] | None = None

    def loaded_status(self) -> str:
        """The status the stored export had when the batch loaded it."""
        assert self.loaded is not None, "a stored pending export is loaded with its state"
        return self.loaded[0]


class SyncBatch:
    """The loaded state and pending writes of one batch of a sync run."""

    def __init__(
        self,
        ruleset: RuleSet,
        join_index: JoinIndex,
        activity_id: int,
    ) -> None:
        self.ruleset = ruleset
        self.join_index = join_index
        self.activity_id = activity_id
        self.now = timezone.now()
        self.csos: dict[int, ConnectorSpaceObject] = {}
        self.mvos: dict[int, MetaverseObject] = {}
        self.new_mvos: list[MetaverseObject] = []
        self.unsaved_mvos: dict[int, MetaverseObject] = {}
        self.projections: list[tuple[ConnectorSpaceObject, MetaverseObject]] = []
        self.projected_keys: dict[tuple[int, str, str], list[MetaverseObject]] = {}
        self.mvo_csos: dict[int, dict[int, ConnectorSpaceObject]] = {}
        self.exports: dict[int, ExportState] = {}
        self.new_csos: list[ConnectorSpaceObject] = []
        self.dirty_csos: dict[int, ConnectorSpaceObject] = {}
        self.dirty_mvos: set[int] = set()
        self.deleted_mvos: set[int] = set()
        self.deleted_csos: set[int] = set()
        #: MVOs whose pending exports another run holds: their changes are left for
        #: the next sync (see :meth:`hold_exports`); None when such an export's CSO is
        #: joined to no MVO (then every unjoined CSO of the batch keeps its sync mark)
        self.busy_mvos: set[int | None] = set()
        self.mvo_join_values_before: dict[int, dict[str, list[Any]]] = {}
        #: each MVO's values as loaded, for its value history (None: projected here)
        self.mvo_values_before: dict[int, value_history.Before] = {}
        #: rows inserted by :meth:`commit`, by model (for the planner's statistics)
        self.inserted: Counter[type[Model]] = Counter()

    # -- loading ----------------------------------------------------------------

    def load(self, csos: list[ConnectorSpaceObject]) -> None:
        """Load the batch's CSOs, their MVOs and those MVOs' other CSOs."""
        self.csos = {cso.pk: cso for cso in csos}
        self.load_mvos({cso.metaverse_object_id for cso in csos if cso.metaverse_object_id})

    def load_mvos(self, mvo_ids: Iterable[int]) -> None:
        """Load MVOs (and every CSO joined to them) not yet in the batch."""
        wanted = sorted({i for i in mvo_ids if i not in self.mvos})  # a stable order
        if not wanted:
            return
        for mvo in MetaverseObject.objects.filter(one_of("id", wanted)):
            self.mvos[mvo.pk] = mvo
            self.mvo_csos.setdefault(mvo.pk, {})
            self._remember_join_values(mvo)
            self.mvo_values_before[mvo.pk] = value_history.snapshot(mvo)
        joined = ConnectorSpaceObject.objects.filter(one_of("metaverse_object_id", wanted))
        for cso in joined:
            cso = self.csos.get(cso.pk, cso)
            mvo_id = cso.metaverse_object_id
            assert mvo_id is not None  # joined to one of `wanted`, not yet in the batch
            self.mvo_csos[mvo_id][cso.connected_system_id] = cso
        self.load_exports(
            cso.pk for mvo_id in wanted for cso in self.mvo_csos.get(mvo_id, {}).values()
        )

    def load_exports(self, cso_ids: Iterable[int]) -> None:
        """Load the open pending exports of these CSOs (one query, two when there are)."""
        wanted = [i for i in cso_ids if i not in self.exports]
        if not wanted:
            return
        pes = {
            pe.cs_object_id: pe
            for pe in PendingExport.objects.filter(one_of("cs_object_id", wanted))
        }
        rows: dict[int, list[ChangeRow]] = {}
        changes = PendingExportAttributeChange.objects.filter(
            one_of("pending_export_id", [pe.pk for pe in pes.values()])
        ).values_list(
            "pending_export_id", "attribute", "change_type", "values", "previous_values", "status"
        )
        for pe_id, attribute, change_type, values, previous, status in changes if pes else ():
            rows.setdefault(pe_id, []).append(
                ChangeRow(attribute, change_type, values, previous, status)
            )
        for cso_id in wanted:
            pe = pes.get(cso_id)
            self.exports[cso_id] = (
                ExportState(pe, rows.get(pe.pk, []), loaded=(pe.status, pe.updated_at))
                if pe
                else ExportState(None, [])
            )

    def _remember_join_values(self, mvo: MetaverseObject) -> None:
        attributes = self.ruleset.join_attributes.get(mvo.object_type_id, frozenset())
        self.mvo_join_values_before[mvo.pk] = {
            a: list(mvo.attributes.get(a, [])) for a in attributes
        }

    # -- recording changes --------------------------------------------------------

    def cso_changed(self, cso: ConnectorSpaceObject) -> None:
        if cso.pk:
            self.dirty_csos[cso.pk] = cso

    def mvo_changed(self, mvo: MetaverseObject) -> None:
        if mvo.pk:
            self.dirty_mvos.add(mvo.pk)

    def export_state(self, cso: ConnectorSpaceObject) -> ExportState:
        """The pending-export state of a CSO (loading it when needed)."""
        if cso.pk and cso.pk not in self.exports:
            self.load_exports([cso.pk])
        key = cso.pk if cso.pk else id(cso)
        return self.exports.setdefault(key, ExportState(None, []))

    def join(self, cso: ConnectorSpaceObject, mvo: MetaverseObject, join_type: str) -> None:
        cso.metaverse_object = mvo
        cso.join_type = join_type
        cso.joined_at = self.now
        self.mvo_csos.setdefault(mvo.pk, {})[cso.connected_system_id] = cso
        self.cso_changed(cso)

    def project(self, cso: ConnectorSpaceObject, mvo: MetaverseObject) -> None:
        """Join a CSO to a new MVO (inserted by :meth:`create_new_mvos`)."""
        self.new_mvos.append(mvo)
        self.projections.append((cso, mvo))
        cso.metaverse_object = mvo
        cso.join_type = "projected"
        cso.joined_at = self.now
        self.cso_changed(cso)

    def register_projection(self, mvo: MetaverseObject) -> None:
        """Make a just-projected MVO findable by later joins of this batch."""
        for attribute in self.ruleset.join_attributes.get(mvo.object_type_id, frozenset()):
            for value in mvo.attributes.get(attribute, []):
                key = (mvo.object_type_id, attribute, normalise_key(value))
                self.projected_keys.setdefault(key, []).append(mvo)

    def disconnect(self, cso: ConnectorSpaceObject) -> None:
        mvo_id = cso.metaverse_object_id
        if mvo_id and self.mvo_csos.get(mvo_id, {}).get(cso.connected_system_id) is cso:
            del self.mvo_csos[mvo_id][cso.connected_system_id]
        cso.metaverse_object = None
        cso.join_type = "not_joined"
        cso.joined_at = None
        self.cso_changed(cso)

    # -- writing ------------------------------------------------------------------

    def hold_exports(self) -> None:
        """Lock the stored pending exports the batch is about to change, and give up
        its changes to those another run changed since the batch loaded them.

        An export run of the target may claim a pending export (``executing``), send
        it and record the outcome while a sync of another system works on it: the
        batch must neither overwrite that outcome with what it loaded before nor edit
        an export being sent (docs/pending-exports.md). Locked here until the batch
        commits, the exports it writes cannot be claimed meanwhile (the export run's
        claim waits, then sends what the batch wrote); one it may not write is left
        as it is, and the MVOs concerned are :attr:`busy_mvos`: their CSOs keep their
        sync mark, so the next sync — a delta sync included — stages the change.
        One query, and only when the batch changes stored exports.
        """
        edited = {
            state.pe.pk: cso_id
            for cso_id, state in self.exports.items()
            if state.loaded is not None
            and state.pe is not None
            and (state.dirty or cso_id in self.deleted_csos)
        }
        if not edited:
            return
        current = {
            pk: (status, updated_at)
            for pk, status, updated_at in PendingExport.objects.select_for_update()
            .filter(one_of("id", edited))
            .exclude(status=PendingExportStatus.EXECUTING)  # not locked: its run writes it
            .order_by("pk")  # the export run claims in this order too: no deadlock
            .values_list("pk", "status", "updated_at")
        }
        for pk, cso_id in edited.items():
            state = self.exports[cso_id]
            if current.get(pk) == state.loaded:
                continue
            pe = state.pe
            assert pe is not None  # `edited` holds stored exports only
            state.dirty = False
            self.deleted_csos.discard(cso_id)
            self.dirty_csos.pop(cso_id, None)
            self.busy_mvos.add(self._mvo_of(cso_id, pe))

    def _mvo_of(self, cso_id: int, pe: PendingExport) -> int | None:
        for mvo_id, by_system in self.mvo_csos.items():
            if any(cso.pk == cso_id for cso in by_system.values()):
                return mvo_id
        cso = self.csos.get(cso_id)
        return (cso.metaverse_object_id if cso else None) or pe.metaverse_object_id

    def create_new_mvos(self) -> None:
        """Give the MVOs projected so far their ids (they are inserted at commit, with
        the values flowed into them meanwhile)."""
        if not self.new_mvos:
            return
        if assign_ids(self.new_mvos):
            self.unsaved_mvos.update((mvo.pk, mvo) for mvo in self.new_mvos)
        for mvo in self.new_mvos:
            self.mvos[mvo.pk] = mvo
            self.mvo_csos.setdefault(mvo.pk, {})
            self.mvo_join_values_before[mvo.pk] = {}
            self.mvo_values_before[mvo.pk] = None
            self.dirty_mvos.add(mvo.pk)
        for cso, mvo in self.projections:
            cso.metaverse_object = mvo  # sets metaverse_object_id now that mvo has a pk
            self.mvo_csos[mvo.pk][cso.connected_system_id] = cso
        self.new_mvos, self.projections, self.projected_keys = [], [], {}

    def commit(self) -> None:
        """Write the batch's objects and pending exports (call inside the batch's
        transaction: a CSO's pending export is committed with the CSO, the MVO and the
        sync mark it was decided from, or not at all)."""
        self._postpone_busy_deletions()
        self.write_new_csos()
        self._write_mvos()
        self._write_csos()
        self._write_exports()
        self._write_history()
        if self.deleted_csos:
            ConnectorSpaceObject.objects.filter(pk__in=self.deleted_csos).delete()
        if self.deleted_mvos:
            ConnectorSpaceObject.objects.filter(metaverse_object_id__in=self.deleted_mvos).update(
                metaverse_object=None, join_type="not_joined", joined_at=None
            )
            MetaverseObject.objects.filter(pk__in=self.deleted_mvos).delete()

    def _write_history(self) -> None:
        """The value history of the MVOs the batch changed, created or deleted."""
        touched = (self.dirty_mvos | self.deleted_mvos) & self.mvo_values_before.keys()
        history.write(
            value_history.rows(
                self.ruleset,
                ((self.mvos[i], self.mvo_values_before[i]) for i in sorted(touched)),
                self.deleted_mvos,
                self.activity_id,
                self.now,
            )
        )

    def _postpone_busy_deletions(self) -> None:
        """An MVO to be deleted whose deprovisioning could not be staged — one of its
        pending exports is being sent (:attr:`busy_mvos`) — is kept, its deletion due
        now: the next sync's housekeeping deletes it and stages what is left to
        deprovision. Deleted now, its target objects would be orphaned."""
        for mvo_id in self.deleted_mvos & self.busy_mvos:
            self.deleted_mvos.discard(mvo_id)
            mvo = self.mvos[mvo_id]
            mvo.status = MvoStatus.DELETION_SCHEDULED
            mvo.deletion_due_at = self.now
            self.mvo_changed(mvo)

    def assign_new_cso_ids(self) -> list[ConnectorSpaceObject]:
        """Give the CSOs provisioned so far their ids, so that references to them can
        be staged now (they are inserted at commit); returns those CSOs."""
        fresh = [cso for cso in self.new_csos if cso.pk is None]
        if not fresh:
            return fresh
        assign_ids(fresh)  # inserts them already where there are no sequences
        for cso in fresh:
            state = self.exports.pop(id(cso), None)
            if state is not None:
                self.exports[cso.pk] = state
            self.csos.setdefault(cso.pk, cso)
        return fresh

    def write_new_csos(self) -> None:
        """Insert the CSOs provisioned by the batch."""
        self.assign_new_cso_ids()
        pending = [cso for cso in self.new_csos if cso._state.adding]
        insert_instances(pending)
        self.inserted[ConnectorSpaceObject] += len(pending)
        self.new_csos = []

    def _write_mvos(self) -> None:
        live = self.dirty_mvos - self.deleted_mvos
        new = [self.unsaved_mvos[i] for i in live if i in self.unsaved_mvos]
        changed = [self.mvos[i] for i in live if i not in self.unsaved_mvos]
        insert_instances(new)
        self.inserted[MetaverseObject] += len(new)
        update_instances(changed, [*MVO_FIELDS, "updated_at"])
        self.unsaved_mvos = {}
        self._write_join_keys(new, changed)

    def _write_join_keys(self, new: list[MetaverseObject], existing: list[MetaverseObject]) -> None:
        changed: list[MetaverseObject] = []
        for mvo in (*new, *existing):
            attributes = self.ruleset.join_attributes.get(mvo.object_type_id, frozenset())
            now = {a: list(mvo.attributes.get(a, [])) for a in attributes}
            before = self.mvo_join_values_before.get(mvo.pk, {})
            if now != before:
                changed.append(mvo)
                self.join_index.replace(mvo.object_type_id, mvo.pk, before, now)
                self.mvo_join_values_before[mvo.pk] = now
        if not changed:
            return
        new_ids = {mvo.pk for mvo in new}
        MetaverseObjectKey.objects.filter(
            metaverse_object_id__in=[m.pk for m in changed if m.pk not in new_ids]
        ).delete()
        rows = [
            {"metaverse_object_id": mvo_id, "attribute": attribute, "value": value}
            for mvo in changed
            for mvo_id, attribute, value in key_rows(mvo.pk, self.mvo_join_values_before[mvo.pk])
        ]
        insert_rows(MetaverseObjectKey, rows, returning=False)
        self.inserted[MetaverseObjectKey] += len(rows)

    def _write_csos(self) -> None:
        live = [c for i, c in self.dirty_csos.items() if i not in self.deleted_csos]
        for cso in live:
            if cso.metaverse_object_id in self.deleted_mvos:
                cso.metaverse_object = None
                cso.join_type = "not_joined"
        update_instances(live, CSO_JOIN_FIELDS)

    def _write_exports(self) -> None:
        """Insert, update or delete the pending exports the batch changed, and replace
        their attribute changes."""
        new_pes: list[tuple[PendingExport, ExportState]] = []
        changed: list[tuple[PendingExport, ExportState]] = []
        cancelled: list[tuple[int, str]] = []
        for cso_id, state in self.exports.items():
            if cso_id in self.deleted_csos or not state.dirty:
                continue
            state.dirty = False
            if state.deleted:
                if state.pe is not None and state.pe.pk:
                    cancelled.append((state.pe.pk, state.loaded_status()))
                continue
            pe = state.pe
            assert pe is not None
            pe.cs_object_id = cso_id
            if pe.metaverse_object_id in self.deleted_mvos:
                pe.metaverse_object = None
            (changed if pe.pk else new_pes).append((pe, state))
        # The PEs (and their changes' statuses) were moved in memory by the lifecycle's
        # transitions (stage, cancel, confirm by sync); this writes them.
        write_staged(
            [(pe, state.rows) for pe, state in new_pes],
            [(pe, state.loaded_status(), state.rows) for pe, state in changed],
            cancelled,
            PE_FIELDS,
        )
        rows = sum(len(state.rows) for _, state in (*new_pes, *changed))
        self.inserted[PendingExport] += len(new_pes)
        self.inserted[PendingExportAttributeChange] += rows
