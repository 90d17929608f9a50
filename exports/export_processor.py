"""The export run profile: send executable pending exports through the connector.

Seed 003's "Export" box. Per batch of executable exports (:func:`exports.lifecycle.
executable`): claim them (``executing``), translate references (CSO ids → the target
system's DNs or external ids), call the connector, record one result per export, apply
successes optimistically to the CSO so the next sync sees no drift. The status changes
are the lifecycle's transitions (:mod:`exports.lifecycle`), written per batch in bulk.

References go second: an attribute change whose referenced object does not exist in
the target yet waits — within the run until that object's create has been sent, across
runs when the create failed — while the rest of its export is sent.

What counts as an attempt (docs/pending-exports.md): here, only the target's answer
about the object itself — a refused add or modify — counts toward the export's
``max_retries``, with exponential backoff (so does a confirming import that does not
show what was sent, :mod:`exports.confirmation`). When the target cannot take the
changes at all — it cannot be reached, refuses the bind, loses the connection (an
outcome the connector reports as ``transient``: unknown, or the server busy or
unavailable) — the run fails and every export it did not settle goes back to what it
was before the run claimed it: no attempt counted, no backoff, never ``failed``.

A run that would change one attribute on, or deprovision, more objects than the
system's change threshold fails before it claims anything (:mod:`exports.thresholds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.activity import ActivityRecorder, RunFailed
from connectors.base import (
    AttributeChangeKind,
    Connector,
    ConnectorError,
    ExportAttributeChange,
    ExportChange,
    ExportResult,
    ObjectTypeSpec,
)
from connectors.choices import ActivityPhase, AttributeDataType, CsoStatus, ObjectChangeType
from connectors.choices import RpeiErrorType as Err
from connectors.models import (
    Activity,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
)
from connectors.schema import connector_for, object_type_spec
from connectors.value_changes import value_changes
from core.bulk import update_instances
from exports import lifecycle
from exports.changes import apply_changes, changes_by_export
from exports.choices import (
    AttributeChangeStatus,
    AttributeChangeType,
    PendingExportChangeType,
    PendingExportStatus,
)
from exports.lifecycle import Transitions, executable, release_stale_executing
from exports.models import ExportedChange, PendingExport, PendingExportAttributeChange
from exports.passwords import PasswordPolicy, policies_of, scrub, with_initial_password
from exports.thresholds import check_change_threshold
from exports.undo import exported_change
from history import recording as history
from history.models import Event, ObjectKind

BATCH_SIZE = 500
NOT_COUNTED = "no attempt was counted against the exports not sent; the next run sends them"

#: the connector's name of each kind of attribute change a pending export stores
CHANGE_KIND: dict[str, AttributeChangeKind] = {
    AttributeChangeType.ADD: "add",
    AttributeChangeType.UPDATE: "update",
    AttributeChangeType.REMOVE: "remove",
    AttributeChangeType.REMOVE_ALL: "remove_all",
}


def run_export(activity: Activity, recorder: ActivityRecorder) -> None:
    """Run profile entry point."""
    ExportRun(activity, recorder).run()


@dataclass
class _Item:
    """One pending export in flight, with the rows it sends now and those that wait."""

    pe: PendingExport
    cso: ConnectorSpaceObject
    sent: list[PendingExportAttributeChange]
    waiting: list[PendingExportAttributeChange]
    #: the export's status before the run claimed it, restored when it is not sent
    claimed_from: str = PendingExportStatus.PENDING
    #: it has changes sent by an earlier run, awaiting a confirming import
    awaiting: bool = False
    #: a create's initial password policy: a password is made when it is sent
    password: PasswordPolicy | None = None


class ExportRun:
    def __init__(self, activity: Activity, recorder: ActivityRecorder) -> None:
        self.activity = activity
        self.recorder = recorder
        self.system = activity.connected_system
        self.connector: Connector = connector_for(self.system)  # opened when first sending
        self.types = {
            t.pk: object_type_spec(t)
            for t in ConnectedSystemObjectType.objects.filter(
                connected_system=self.system
            ).prefetch_related("attributes")
        }
        self.history_source = history.Source.of(activity)
        self.created_in_run: set[int] = set()
        self.waiting: list[int] = []
        self.opened = False
        self._targets: dict[int, str | None] = {}

    def run(self) -> None:
        release_stale_executing(self.system)
        # Before anything is claimed or sent: a mass change stops the run here.
        check_change_threshold(
            self.system, executable(self.system), allowed=self.activity.allow_changes
        )
        total = executable(self.system).count()
        self.recorder.progress(total=total, processed=0, phase=ActivityPhase.EXPORTING)
        try:
            self._export_all()
        finally:
            self.connector.close()

    def _export_all(self) -> None:
        last_pk = 0
        while True:
            ids = list(
                executable(self.system)
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .values_list("pk", flat=True)[:BATCH_SIZE]
            )
            if not ids:
                break
            last_pk = ids[-1]
            self._export_batch(ids)
        # References second: what waited for a create sent in this run goes now.
        waiting = [pk for pk in self.waiting if pk]
        self.waiting = []
        for start in range(0, len(waiting), BATCH_SIZE):
            self._export_batch(waiting[start : start + BATCH_SIZE])

    # -- one batch --------------------------------------------------------------------

    def _export_batch(self, pe_ids: list[int]) -> None:
        items = self._claim(pe_ids)
        while items:
            now, later = _rounds(items)
            try:
                self._send(now)
            except RunFailed:
                self._release(later)
                raise
            items = self._resplit(later)

    def _send(self, items: list[_Item]) -> None:
        """Send one round of a batch and record its outcomes.

        Raises :class:`RunFailed` when the target could not take the changes (see the
        module's docstring): after the outcomes it did give are recorded.
        """
        changes = [self._change(item) for item in items]
        sendable = [c for c in changes if c is not None]
        try:
            self._open()
            results = self.connector.export(sendable) if sendable else []
            scrub(results, sendable)
        except ConnectorError as exc:
            # The target took none of them: not an attempt of any.
            unsent = [
                ExportResult(c.id, ok=False, error=str(exc), transient=True) for c in sendable
            ]
            self._record_outcomes(items, changes, unsent)
            self.recorder.flush()
            raise RunFailed(
                f"export to {self.system.name} stopped: {exc}; {NOT_COUNTED}",
                error_type=Err.CONNECTOR_ERROR,
            ) from None
        self._record_outcomes(items, changes, results)
        self.recorder.flush()
        self.recorder.progress(advance=len(items))
        unsettled = [r for r in results if not r.ok and r.transient]
        if unsettled:
            raise RunFailed(
                f"export to {self.system.name} stopped: {len(unsettled)} of {len(sendable)} "
                f"changes got no usable answer ({unsettled[0].error}); {NOT_COUNTED}",
                error_type=Err.CONNECTOR_ERROR,
            )

    def _resplit(self, items: list[_Item]) -> list[_Item]:
        """Items held for a later round, their references looked up again (the objects
        they refer to may have been created by the round just sent)."""
        if not items:
            return []
        targets = self._reference_targets(
            [(item.cso, [*item.sent, *item.waiting]) for item in items]
        )
        self._targets.update(targets)
        for item in items:
            item.sent, item.waiting = self._split_references(
                item.cso, [*item.sent, *item.waiting], targets
            )
        return items

    def _open(self) -> None:
        if not self.opened:
            self.connector.open()
            self.opened = True

    def _claim(self, pe_ids: list[int]) -> list[_Item]:
        """Claim the exports (``executing``) and load them with their CSOs and changes."""
        with transaction.atomic():
            claimed_from = lifecycle.claim(pe_ids)
        # Not select_related / prefetch_related: they cache a pending export on its CSO
        # and on its changes and those on it, reference cycles that stay in memory until
        # the collector's rare full passes (see core.collector).
        pes = list(
            PendingExport.objects.filter(pk__in=pe_ids, status=PendingExportStatus.EXECUTING)
        )
        csos = ConnectorSpaceObject.objects.in_bulk([pe.cs_object_id for pe in pes])
        changes = changes_by_export(pes)
        loaded = [(pe, csos[pe.cs_object_id], changes.get(pe.pk, [])) for pe in pes]
        passwords = policies_of(pes)
        targets = self._reference_targets([(cso, rows) for _, cso, rows in loaded])
        items = []
        for pe, cso, all_rows in loaded:
            rows = [
                r
                for r in all_rows
                if r.status != AttributeChangeStatus.EXPORTED_PENDING_CONFIRMATION
            ]
            sent, waiting = self._split_references(cso, rows, targets)
            items.append(
                _Item(
                    pe,
                    cso,
                    sent,
                    waiting,
                    claimed_from=claimed_from.get(pe.pk, PendingExportStatus.PENDING),
                    awaiting=len(rows) < len(all_rows),
                    password=passwords.get(pe.pk),
                )
            )
        self._targets = targets
        return items

    def _reference_targets(
        self, loaded: list[tuple[ConnectorSpaceObject, list[PendingExportAttributeChange]]]
    ) -> dict[int, str | None]:
        """Target identifiers (DN or external id) of the CSOs references point at."""
        wanted: set[int] = set()
        for cso, rows in loaded:
            refs = self.types[cso.object_type_id].attributes
            for row in rows:
                spec = refs.get(row.attribute)
                if spec is not None and spec.data_type == AttributeDataType.REFERENCE:
                    wanted.update(v for v in row.values if isinstance(v, int))
        found: dict[int, str | None] = {}
        csos = ConnectorSpaceObject.objects.filter(pk__in=wanted).values_list(
            "pk", "object_type_id", "external_id", "secondary_external_id", "status"
        )
        for pk, type_id, external_id, dn, status in csos:
            exists = status == CsoStatus.NORMAL or pk in self.created_in_run or external_id
            uses_dn = bool(
                self.types.get(type_id) and self.types[type_id].secondary_external_id_attribute
            )
            found[pk] = (dn if uses_dn else external_id) if exists else None
        return found

    def _split_references(
        self,
        cso: ConnectorSpaceObject,
        rows: list[PendingExportAttributeChange],
        targets: dict[int, str | None],
    ) -> tuple[list[PendingExportAttributeChange], list[PendingExportAttributeChange]]:
        spec = self.types[cso.object_type_id]
        sent, waiting = [], []
        for row in rows:
            attribute = spec.attributes.get(row.attribute)
            is_reference = (
                attribute is not None and attribute.data_type == AttributeDataType.REFERENCE
            )
            if is_reference and any(
                targets.get(v) is None for v in row.values if isinstance(v, int)
            ):
                waiting.append(row)
            else:
                sent.append(row)
        return sent, waiting

    def _change(self, item: _Item) -> ExportChange | None:
        """The connector's view of the export; None when nothing can be sent yet."""
        pe, cso = item.pe, item.cso
        spec = self.types[cso.object_type_id]
        if pe.change_type == PendingExportChangeType.DELETE:
            return ExportChange(
                pe.pk, "delete", spec, external_id=cso.external_id, dn=cso.secondary_external_id
            )
        if not item.sent and not (pe.change_type == "update" and pe.dn):
            return None
        changes = [
            ExportAttributeChange(
                row.attribute, CHANGE_KIND[row.change_type], self._translate(spec, row)
            )
            for row in item.sent
        ]
        if pe.change_type == PendingExportChangeType.CREATE:
            return ExportChange(
                pe.pk,
                "create",
                spec,
                external_id=cso.external_id,
                dn=pe.dn or cso.secondary_external_id,
                attribute_changes=(
                    with_initial_password(item.password, changes) if item.password else changes
                ),
            )
        return ExportChange(
            pe.pk,
            "update",
            spec,
            external_id=cso.external_id,
            dn=cso.secondary_external_id,
            new_dn=pe.dn or None,
            attribute_changes=changes,
        )

    def _translate(self, spec: ObjectTypeSpec, row: PendingExportAttributeChange) -> list[Any]:
        attribute = spec.attributes.get(row.attribute)
        if attribute is None or attribute.data_type != AttributeDataType.REFERENCE:
            return list(row.values)
        return [self._targets[v] for v in row.values if isinstance(v, int)]

    # -- outcomes ---------------------------------------------------------------------

    def _record_outcomes(
        self, items: list[_Item], changes: list[ExportChange | None], results: list[ExportResult]
    ) -> None:
        """Apply every result of a batch with a fixed number of bulk writes."""
        writes = _Outcomes()
        by_id = {r.id: r for r in results}
        for item, change in zip(items, changes, strict=True):
            if change is None:
                self._nothing_to_send(item, writes)
                continue
            result = by_id.get(change.id) or ExportResult(
                change.id, ok=False, error="the connector returned no result for it"
            )
            if result.ok:
                self._succeeded(item, result, writes)
            elif result.transient:
                self._not_sent(item, writes)
            else:
                self._failed(item, result.error, writes)
        writes.save()

    def _release(self, items: list[_Item]) -> None:
        """Claimed exports the run will not send after all: as they were before."""
        writes = _Outcomes()
        for item in items:
            self._not_sent(item, writes)
        writes.save()

    @staticmethod
    def _not_sent(item: _Item, writes: _Outcomes) -> None:
        """Not the object's doing (the target could not take it): no attempt counted,
        executable again as it was before the run claimed it."""
        lifecycle.release(writes.transitions, item.pe, item.claimed_from)

    def _nothing_to_send(self, item: _Item, writes: _Outcomes) -> None:
        """Nothing of the export can go now: what is left waits for references — it
        joins the run's last pass, like a create whose references wait, for the
        objects it refers to may be created by this run — or was sent already and
        awaits its confirming import (``exported``)."""
        lifecycle.nothing_sent(
            writes.transitions, item.pe, awaiting=item.awaiting, waiting=bool(item.waiting)
        )
        if item.waiting:
            self.waiting.append(item.pe.pk)

    def _history(
        self, cso: ConnectorSpaceObject, event: str, before: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The CSO's value history of what the run sent (its values as the target holds
        them now), or of its deletion."""
        changes: dict[str, Any] = {}
        if before is not None:
            spec = self.types[cso.object_type_id]
            multivalued = {n for n, a in spec.attributes.items() if a.multivalued}
            changes = value_changes(
                history.changed_names(before, cso.attributes, multivalued),
                before,
                cso.attributes,
                multivalued=multivalued,
                references={
                    n
                    for n, a in spec.attributes.items()
                    if a.data_type == AttributeDataType.REFERENCE
                },
                reference_kind="cso",
            )
        return history.row(
            ObjectKind.CSO, cso.pk, event, timezone.now(), self.history_source, changes
        )

    def _succeeded(self, item: _Item, result: ExportResult, writes: _Outcomes) -> None:
        pe, cso = item.pe, item.cso
        target = cso.secondary_external_id or cso.external_id
        writes.exported.append(
            exported_change(
                self.activity,
                pe,
                cso,
                item.sent,
                dn=result.dn or "",
                external_id=result.external_id or "",
            )
        )
        if pe.change_type == PendingExportChangeType.DELETE:
            lifecycle.deprovisioned(writes.transitions, pe)
            writes.deleted_csos.append(cso.pk)
            writes.history.append(self._history(cso, Event.DELETED))
            self.recorder.item(
                ObjectChangeType.DEPROVISIONED,
                external_id=target,
                details={"system": self.system.name},
            )
            return
        change = (
            ObjectChangeType.PROVISIONED
            if pe.change_type == PendingExportChangeType.CREATE
            else ObjectChangeType.EXPORTED
        )
        before = cso.attributes
        cso.attributes = apply_changes(cso.attributes, item.sent)
        writes.history.append(self._history(cso, Event.UPDATED, before))
        if pe.disables:  # deprovision: disable — the delete's grace period starts now
            cso.disabled_at = timezone.now()
        if result.external_id:
            cso.external_id = result.external_id
        if pe.change_type == PendingExportChangeType.CREATE:
            self.created_in_run.add(cso.pk)
            if item.waiting:  # the object exists now; what waited is an update
                pe.change_type = PendingExportChangeType.UPDATE
                pe.dn = ""
        new_dn = result.dn or (pe.dn if pe.change_type == PendingExportChangeType.UPDATE else "")
        if new_dn:
            cso.secondary_external_id = new_dn
            cso.secondary_external_id_key = self.connector.secondary_id_key(new_dn)
        writes.csos.append(cso)
        if item.waiting:
            self.waiting.append(pe.pk)
        lifecycle.succeed(
            writes.transitions, pe, [r.pk for r in item.sent], waiting=bool(item.waiting)
        )
        self.recorder.item(
            change,
            external_id=cso.secondary_external_id or cso.external_id,
            cs_object_id=cso.pk,
            pending_export_id=pe.pk,
            details={"attributes": sorted({r.attribute for r in item.sent})},
        )

    def _failed(self, item: _Item, message: str, writes: _Outcomes) -> None:
        """A failed attempt: retry later with exponential backoff, or give up at max."""
        pe, cso = item.pe, item.cso
        target = cso.secondary_external_id or cso.external_id or ""
        backoff = self.system.export_retry_backoff_seconds
        if lifecycle.fail(writes.transitions, pe, message, backoff):
            text = (
                f"{pe.change_type} of {target} failed {pe.error_count} times; giving up: {message}"
            )
        else:
            text = (
                f"{pe.change_type} of {target} failed (attempt {pe.error_count} of "
                f"{pe.max_retries}, retry after {pe.next_retry_at:%Y-%m-%d %H:%M:%S} UTC): "
                f"{message}"
            )
        self.recorder.error(
            Err.EXPORT_FAILED,
            text,
            external_id=target,
            cs_object_id=cso.pk,
            pending_export_id=pe.pk,
        )


@dataclass
class _Outcomes:
    """The writes of one export batch: its transitions, and what they did to the CSOs
    (the values sent applied; a deprovisioned object's CSO deleted), and the record of
    what was sent. One transaction."""

    transitions: Transitions = field(default_factory=Transitions)
    csos: list[ConnectorSpaceObject] = field(default_factory=list)
    deleted_csos: list[int] = field(default_factory=list)
    #: what was sent, kept so that the run can be undone (:mod:`exports.undo`)
    exported: list[ExportedChange] = field(default_factory=list)
    #: the value history of the CSOs the run changed
    history: list[dict[str, Any]] = field(default_factory=list)

    def save(self) -> None:
        with transaction.atomic():
            self.transitions.save()
            ExportedChange.objects.bulk_create(self.exported)
            history.write(self.history)
            update_instances(
                self.csos,
                [
                    "attributes",
                    "external_id",
                    "secondary_external_id",
                    "secondary_external_id_key",
                    "disabled_at",
                    "updated_at",
                ],
            )
            if self.deleted_csos:
                ConnectorSpaceObject.objects.filter(pk__in=self.deleted_csos).delete()


def _rounds(items: list[_Item]) -> tuple[list[_Item], list[_Item]]:
    """The items to send now, and the creates to hold for the next round.

    A create whose reference waits for another create of the same batch (a report
    and their manager) is held until that create has been sent: it then goes out
    whole, instead of as a create now and a modify for the reference later. A
    reference cycle is sent as it is (its references follow in the run's last pass).
    """
    creates = {
        item.cso.pk: item for item in items if item.pe.change_type == PendingExportChangeType.CREATE
    }
    held = [
        item
        for item in items
        if item.cso.pk in creates
        and any(
            v in creates and v != item.cso.pk
            for row in item.waiting
            for v in row.values
            if isinstance(v, int)
        )
    ]
    if not held or len(held) == len(items):
        return items, []
    waiting = {item.cso.pk for item in held}  # one pending export per CSO
    return [item for item in items if item.cso.pk not in waiting], held
