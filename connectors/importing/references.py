"""Reference resolution: reference values (external ids or DNs) become CSO ids.

A reference attribute of a CSO holds the ids of the CSOs it refers to; a value that
does not match a CSO yet (the manager is further down the file, the group's member is
in a later page) is kept in ``unresolved_references`` as the system gave it, and tried
again after the last page and on every later import. Lookups are made in bulk — one
query per page or per batch of CSOs, never one per value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from django.db import connection
from django.db.models import F, JSONField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from connectors.activity import ActivityRecorder
from connectors.choices import CsoStatus, ObjectChangeType
from connectors.importing.values import external_id_key
from connectors.models import ConnectorSpaceObject
from connectors.value_changes import changes_message, value_changes
from core.bulk import one_of, update_rows
from core.writer import PageWriter

#: Values per ``IN (…)`` list (PostgreSQL allows 65,535 parameters per query).
LOOKUP_CHUNK = 5000
#: CSOs with unresolved references handled per transaction after the last page.
RESOLVE_BATCH = 2000

#: (values are DNs, normalised value) → CSO id
Found = dict[tuple[bool, str], int]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class ReferenceResolver:
    """Resolves reference values of one connected system's CSOs.

    ``references[object_type_id]`` maps each reference attribute to whether its
    values are DNs (the referenced type has a secondary external id) rather than
    external ids. ``dn_key`` is the connector's DN normalisation.
    """

    system_id: int
    references: dict[int, dict[str, bool]]
    dn_key: Callable[[str], str]

    def key(self, uses_dn: bool, value: Any) -> str:
        return self.dn_key(str(value).strip()) if uses_dn else external_id_key(value)

    def lookup(self, wanted: Iterable[tuple[bool, str]]) -> Found:
        """CSO ids of the wanted (uses_dn, key) pairs that exist (two queries at most)."""
        ids = sorted({key for uses_dn, key in wanted if not uses_dn and key})
        dns = sorted({key for uses_dn, key in wanted if uses_dn and key})
        found: Found = {}
        csos = ConnectorSpaceObject.objects.filter(connected_system_id=self.system_id)
        for chunk in chunks(ids, LOOKUP_CHUNK):
            for external_id, pk in csos.filter(one_of("external_id", chunk)).values_list(
                "external_id", "pk"
            ):
                if external_id is not None:  # always: it was looked up by its value
                    found[(False, external_id)] = pk
        for chunk in chunks(dns, LOOKUP_CHUNK):
            rows = (
                csos.filter(one_of("secondary_external_id_key", chunk))
                .exclude(status=CsoStatus.OBSOLETE)
                .values_list("secondary_external_id_key", "pk")
            )
            for dn_key, pk in rows:
                if dn_key is not None:  # always: it was looked up by its value
                    found[(True, dn_key)] = pk
        return found

    def wanted(self, object_type_id: int, attributes: dict[str, list[Any]]) -> Iterator[tuple]:
        """The (uses_dn, key) pairs an attribute document refers to."""
        for name, uses_dn in self.references.get(object_type_id, {}).items():
            for value in attributes.get(name, ()):
                yield uses_dn, self.key(uses_dn, value)

    def external_id_references(
        self, object_type_id: int, attributes: dict[str, list[Any]]
    ) -> Iterator[tuple[str, str]]:
        """The (attribute, external id) pairs of the references by external id."""
        for name, uses_dn in self.references.get(object_type_id, {}).items():
            if not uses_dn:
                for value in attributes.get(name, ()):
                    yield name, external_id_key(value)

    def split(
        self,
        object_type_id: int,
        attributes: dict[str, list[Any]],
        found: Found,
    ) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        """Replace reference values by CSO ids; return (attributes, unresolved)."""
        unresolved: dict[str, list[str]] = {}
        references = self.references.get(object_type_id)
        if not references:
            return attributes, unresolved
        for name, uses_dn in references.items():
            values = attributes.get(name)
            if not values:
                continue
            ids, missing = [], []
            for value in values:
                pk = found.get((uses_dn, self.key(uses_dn, value)))
                if pk is None:
                    missing.append(str(value).strip())
                else:
                    ids.append(pk)
            if ids:
                attributes[name] = ids
            else:
                del attributes[name]
            if missing:
                unresolved[name] = missing
        return attributes, unresolved

    def resolve_remaining(self, recorder: ActivityRecorder, run_started: dt.datetime) -> int:
        """Retry every unresolved reference of the system; returns how many CSOs changed.

        Reads and writes only what resolution touches (the unresolved references and
        the current values of those attributes), in batches. A CSO that this run did
        not otherwise touch gets an ``updated`` RPEI naming the attributes resolved;
        those imported in this run already have theirs.
        """
        pending = (
            ConnectorSpaceObject.objects.filter(connected_system_id=self.system_id)
            .exclude(unresolved_references={})
            .annotate(current=_referenced_values())
            .order_by("pk")
        )
        changed, last_pk = 0, 0
        with PageWriter() as writer:  # batch N is written while batch N+1 is read
            while True:
                rows = pending.filter(pk__gt=last_pk).values_list(*_Pending.COLUMNS)
                batch = [_Pending(*row) for row in rows[:RESOLVE_BATCH]]
                if not batch:
                    return changed
                last_pk = batch[-1].id
                changed += self._resolve_batch(batch, recorder, run_started, writer)

    def _resolve_batch(
        self,
        batch: list[_Pending],
        recorder: ActivityRecorder,
        run_started: dt.datetime,
        writer: PageWriter,
    ) -> int:
        wanted: list[tuple[bool, str]] = []
        for cso in batch:
            references = self.references.get(cso.object_type_id, {})
            for name, values in cso.unresolved_references.items():
                uses_dn = references.get(name, False)
                wanted.extend((uses_dn, self.key(uses_dn, value)) for value in values)
        found = self.lookup(wanted)
        if not found:
            return 0
        now = timezone.now()
        rows, items = [], []
        for cso in batch:
            before = with_unresolved(cso.current or {}, cso.unresolved_references)
            patch = self._resolve_one(cso, found)
            if not patch:
                continue
            if cso.updated_at < run_started:
                items.append((cso, before, patch))
            rows.append(
                {
                    "id": cso.id,
                    "attributes": patch,
                    "unresolved_references": cso.unresolved_references,
                    "sync_pending": True,
                    "updated_at": now,
                }
            )

        def record() -> None:
            for cso, before, patch in items:
                resolved = sorted(patch)
                after = with_unresolved(patch, cso.unresolved_references)
                changes = value_changes(
                    resolved, before, after, references=resolved, reference_kind="cso"
                )
                recorder.item(
                    ObjectChangeType.UPDATED,
                    message=changes_message(resolved),
                    external_id=cso.external_id,
                    cs_object_id=cso.id,
                    details={
                        "attributes": resolved,
                        "changes": changes,
                        "references_resolved": True,
                    },
                )

        writer.submit(
            lambda: update_rows(
                ConnectorSpaceObject, rows, RESOLVED_COLUMNS, merge=("attributes",)
            ),
            record,
        )
        return len(rows)

    def _resolve_one(self, cso: _Pending, found: Found) -> dict[str, list[Any]]:
        """Move the references of ``cso`` that now resolve out of its unresolved ones;
        returns the new values of the attributes that changed."""
        patch: dict[str, list[Any]] = {}
        references = self.references.get(cso.object_type_id, {})
        current = cso.current or {}
        for name, values in list(cso.unresolved_references.items()):
            uses_dn = references.get(name, False)
            ids = [found.get((uses_dn, self.key(uses_dn, value))) for value in values]
            if all(pk is None for pk in ids):
                continue
            resolved = list(current.get(name, []))
            resolved.extend(pk for pk in ids if pk is not None and pk not in resolved)
            patch[name] = resolved
            left = [value for value, pk in zip(values, ids, strict=True) if pk is None]
            if left:
                cso.unresolved_references[name] = left
            else:
                del cso.unresolved_references[name]
        return patch


def with_unresolved(
    document: dict[str, list[Any]], unresolved: dict[str, list[str]]
) -> dict[str, list[Any]]:
    """Each reference's values: the ids it holds, then what is still unresolved."""
    return {**document, **{n: [*document.get(n, []), *v] for n, v in unresolved.items()}}


RESOLVED_COLUMNS = ("attributes", "unresolved_references", "sync_pending", "updated_at")


def _referenced_values() -> Any:
    """The current values of the attributes a CSO has unresolved references in.

    PostgreSQL reads just those keys of the document; elsewhere the whole document.
    """
    if connection.vendor != "postgresql":
        return F("attributes")
    return RawSQL(
        "(SELECT jsonb_object_agg(k, attributes -> k) "
        "FROM jsonb_object_keys(unresolved_references) AS k WHERE attributes ? k)",
        (),
        output_field=JSONField(),
    )


@dataclass(slots=True)
class _Pending:
    """A CSO with unresolved references, as read for resolution (a plain row)."""

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "id",
        "object_type_id",
        "external_id",
        "unresolved_references",
        "updated_at",
        "current",
    )

    id: int
    object_type_id: int
    external_id: str | None
    unresolved_references: dict[str, list[str]]
    updated_at: dt.datetime
    current: dict[str, list[Any]] | None
