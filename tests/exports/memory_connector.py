"""A connector that keeps its objects in a dictionary: a real implementation of the
connector interface, for testing the export processor's bookkeeping (results, retries,
reference ordering) without a directory. Scenario tests use real slapd and CSV files.
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from connectors.base import (
    ConnectionFailed,
    Connector,
    ExportChange,
    ExportResult,
    ImportPage,
    ImportStream,
    ObjectTypeSpec,
)
from exports.changes import apply_changes


class MemoryConnector(Connector):
    name = "memory"
    supports_export = True
    #: The "directory": dn → {"id": external id, "attributes": {...}}; shared by instances.
    directory: ClassVar[dict[str, dict[str, Any]]] = {}
    down: ClassVar[bool] = False
    #: the connection breaks after this many changes of a call: the rest have no answer
    lost_after: ClassVar[int | None] = None
    fail_dns: ClassVar[dict[str, str]] = {}
    #: dn → a transient answer (busy, unavailable) the "server" gives for it
    busy_dns: ClassVar[dict[str, str]] = {}
    dropped_attributes: ClassVar[set[str]] = set()
    calls: ClassVar[list[list[ExportChange]]] = []
    _ids = itertools.count(1)

    @classmethod
    def reset(cls) -> None:
        cls.directory, cls.down, cls.fail_dns, cls.dropped_attributes, cls.calls = (
            {},
            False,
            {},
            set(),
            [],
        )
        cls.lost_after, cls.busy_dns = None, {}

    def open(self) -> None:
        if self.down:
            raise ConnectionFailed("cannot reach memory://: connection refused")

    def import_objects(self, object_types: list[ObjectTypeSpec], **kwargs: Any) -> ImportStream:
        return ImportStream({}, iter([ImportPage()]))

    def export(self, changes: list[ExportChange]) -> list[ExportResult]:
        if self.down:
            raise ConnectionFailed("cannot reach memory://: connection refused")
        self.calls.append(changes)
        answered = changes if self.lost_after is None else changes[: self.lost_after]
        lost = [
            ExportResult(c.id, ok=False, error="connection lost: outcome unknown", transient=True)
            for c in changes[len(answered) :]
        ]
        return [*(self._apply(change) for change in answered), *lost]

    def _apply(self, change: ExportChange) -> ExportResult:
        dn = change.dn or ""
        if dn in self.busy_dns:
            return ExportResult(change.id, ok=False, error=self.busy_dns[dn], transient=True)
        if dn in self.fail_dns:
            return ExportResult(change.id, ok=False, error=self.fail_dns[dn])
        if change.change_type == "delete":
            self.directory.pop(dn, None)
            return ExportResult(change.id, ok=True)
        if change.change_type == "create":
            if dn in self.directory:
                return ExportResult(change.id, ok=False, error=f"{dn} already exists")
            entry = {"id": f"id-{next(self._ids)}", "attributes": {}}
            self.directory[dn] = entry
        else:
            entry = self.directory.get(dn)
            if entry is None:
                return ExportResult(change.id, ok=False, error=f"{dn}: no such object")
        kept = [c for c in change.attribute_changes if c.attribute not in self.dropped_attributes]
        entry["attributes"] = apply_changes(entry["attributes"], kept)
        if change.new_dn:
            self.directory[change.new_dn] = self.directory.pop(dn)
            dn = change.new_dn
        return ExportResult(change.id, ok=True, external_id=entry["id"], dn=dn)
