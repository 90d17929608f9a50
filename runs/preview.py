"""Preview: a run that changes nothing and records what it would have done.

A preview runs the real processor — the same code as the run it predicts, so it
predicts exactly — inside one database transaction that is rolled back at its end.
Before the rollback it reads what the run wrote: the activity's RPEIs, and the pending
exports it created, changed or removed (told apart by comparing every pending
export's ``updated_at`` before and after: the export lifecycle stamps every change).
It keeps them in a spool file, not in memory. After the rollback it records them on
the preview activity: the RPEIs as a real run's, the pending exports as
:class:`~runs.models.PreviewedExport` rows. Links to objects the run would have made
(a projected MVO, a provisioned CSO) are left empty; the RPEI keeps the object's
external id and values.

Nothing reaches a connected system: an import only reads from it, a sync only reads
(``unique(..., check_target=true)`` lookups), and export runs are not previewed — the
pending exports are what an export run would send. A preview claims its system like a
real run (its writes hold row locks until the rollback), so it runs when a real run
could, and a ``kill -9`` leaves nothing behind but its activity, which the next run
records as failed.

Its writes are invisible to others until the rollback — its activity row included —
so on PostgreSQL its progress is written through a connection of its own. SQLite has
one writer at a time: there the activity shows its progress when it is done.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Field
from psycopg.types.json import Jsonb

from connectors.activity import ActivityRecorder
from connectors.choices import RunProfileType
from connectors.models import Activity, ConnectorSpaceObject, RunProfileExecutionItem
from core.bulk import insert_rows, one_of
from core.spool import Spool
from exports.changes import reference_attributes, reference_names
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseObject
from runs.models import PreviewedExport, PreviewEffect

logger = logging.getLogger(__name__)

#: The run profile types a preview can run.
PREVIEWABLE = frozenset(
    {
        RunProfileType.FULL_IMPORT,
        RunProfileType.DELTA_IMPORT,
        RunProfileType.FULL_SYNC,
        RunProfileType.DELTA_SYNC,
    }
)
#: Rows read, checked and written at a time.
CHUNK = 2000
#: How long a progress write waits for a row lock before it gives up (it is only
#: progress; the run's own transaction may hold the activity's row).
PROGRESS_LOCK_TIMEOUT = "200ms"

Processor = Callable[[Activity, ActivityRecorder], None]


class NotPreviewable(ValueError):
    """The run profile cannot be previewed (an export run)."""


def check_previewable(profile_type: str, profile_name: str) -> None:
    """Raise :class:`NotPreviewable` for a run profile a preview cannot run."""
    if profile_type not in PREVIEWABLE:
        raise NotPreviewable(
            f"{profile_name!r} is an export run, which cannot be previewed: what it would "
            "send is its system's pending exports (jim pending-exports --system …, or the "
            "Pending exports page)."
        )


def run_in_preview(activity: Activity, recorder: ActivityRecorder, processor: Processor) -> None:
    """Run ``processor`` for ``activity`` and roll back everything it wrote, then record
    what it did on the activity. Raises what the processor raised, after recording."""
    failure: Exception | None = None
    with Spool("jim-preview-") as spool, _progress_elsewhere(recorder):
        with transaction.atomic():
            before = _export_versions()
            try:
                processor(activity, recorder)
            except Exception as exc:  # recorded by the runner, after the rollback
                failure = exc
            captured = _capture(activity, recorder, before, spool, failure)
            transaction.set_rollback(True)
        if captured:
            _record(activity, spool)
    if failure is not None:
        raise failure


# --------------------------------------------------------------------------- capture


def _export_versions() -> dict[int, dt.datetime]:
    return dict(PendingExport.objects.values_list("pk", "updated_at"))


def _capture(
    activity: Activity,
    recorder: ActivityRecorder,
    before: dict[int, dt.datetime],
    spool: Spool,
    failure: Exception | None,
) -> bool:
    """Spool the run's RPEIs and the pending exports it touched, before the rollback;
    False when the run's failure left them unreadable (nothing to record)."""
    try:
        recorder.flush()
        _spool_rpeis(activity, spool)
        after = _export_versions()
        created = [pk for pk in after if pk not in before]
        changed = [pk for pk, at in after.items() if pk in before and before[pk] != at]
        removed = [pk for pk in before if pk not in after]
        _spool_exports(created, PreviewEffect.CREATED, spool)
        _spool_exports(changed, PreviewEffect.CHANGED, spool)
        spool.write(("removed", removed))
    except DatabaseError as exc:
        if failure is None:
            raise
        # The run's own failure broke the transaction: the runner records that failure.
        logger.warning("Preview %s: what it did could not be read: %s", activity.pk, exc)
        return False
    return True


def _spool_rpeis(activity: Activity, spool: Spool) -> None:
    columns = [
        f.attname
        for f in RunProfileExecutionItem._meta.concrete_fields
        if f.attname not in ("id", "created_at")
    ]
    rows = RunProfileExecutionItem.objects.filter(activity_id=activity.pk).order_by("pk")
    chunk: list[dict[str, Any]] = []
    for row in rows.values(*columns).iterator(chunk_size=CHUNK):
        chunk.append(row)
        if len(chunk) >= CHUNK:
            spool.write(("rpeis", chunk, _reference_names(chunk)))
            chunk = []
    if chunk:
        spool.write(("rpeis", chunk, _reference_names(chunk)))


def _reference_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``"mvo:12"`` → name, for every object the RPEIs' changes refer to, read while
    the objects the run made still exist (one query a kind)."""
    wanted: dict[str, set[int]] = {kind: set() for kind in _REFERENCED}
    for row in rows:
        for kind, ids in _references(row["details"]):
            wanted[kind].update(ids)
    names: dict[str, str] = {}
    for kind, wanted_ids in wanted.items():
        if wanted_ids:
            model, fields = _REFERENCED[kind]
            for pk, *labels in model.objects.filter(pk__in=wanted_ids).values_list("pk", *fields):
                names[f"{kind}:{pk}"] = next((label for label in labels if label), f"{kind} {pk}")
    return names


def _references(details: Any) -> Iterator[tuple[str, list[int]]]:
    changes = details.get("changes") if isinstance(details, dict) else None
    if not isinstance(changes, dict):
        return
    for entry in changes.values():
        kind = entry.get("ref") if isinstance(entry, dict) else None
        if kind in _REFERENCED:
            yield (
                kind,
                [
                    value
                    for side in ("old", "new", "added", "removed")
                    for value in entry.get(side) or []
                    if isinstance(value, int) and not isinstance(value, bool)
                ],
            )


def _spool_exports(ids: list[int], effect: str, spool: Spool) -> None:
    for start in range(0, len(ids), CHUNK):
        spool.write(("exports", effect, _export_states(ids[start : start + CHUNK])))


def _export_states(ids: list[int]) -> list[dict[str, Any]]:
    """The pending exports with these ids as rows of :class:`PreviewedExport`, their
    attribute changes included (three queries; rows, not model instances: a first sync
    of 100,000 people reads 100,000 pending exports and their 700,000 changes)."""
    pes = list(
        PendingExport.objects.filter(pk__in=ids)  # a chunk; one_of would be ambiguous here
        .order_by("pk")
        .values_list(
            "pk",
            "connected_system_id",
            "cs_object_id",
            "metaverse_object_id",
            "dn",
            "change_type",
            "status",
            "approval",
            "cs_object__object_type_id",
            "cs_object__secondary_external_id",
            "cs_object__external_id",
        )
    )
    changes: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for pe_id, *change in (
        PendingExportAttributeChange.objects.filter(pending_export_id__in=ids)
        .order_by("pending_export_id", "attribute", "change_type")
        .values_list("pending_export_id", *_CHANGE_FIELDS)
    ):
        changes[pe_id].append(dict(zip(_CHANGE_FIELDS, change, strict=True)))
    references = reference_attributes({pe[8] for pe in pes})
    referring = {
        pe[0]: [
            value
            for change in changes[pe[0]]
            if (pe[8], change["attribute"]) in references
            for value in (*change["values"], *change["previous_values"])
        ]
        for pe in pes
    }
    names = reference_names(value for values in referring.values() for value in values)
    return [
        {
            "pending_export_id": pk,
            "connected_system_id": system_id,
            "cs_object_id": cso_id,
            "metaverse_object_id": mvo_id,
            # PendingExport.target, from the row
            "target": (dn or secondary or external or f"CSO {cso_id}")[:2000],
            "change_type": change_type,
            "status": status,
            "approval": approval,
            "changes": changes[pk],
            "reference_names": {
                str(value): names[str(value)] for value in referring[pk] if str(value) in names
            },
        }
        for (
            pk,
            system_id,
            cso_id,
            mvo_id,
            dn,
            change_type,
            status,
            approval,
            _,
            secondary,
            external,
        ) in pes
    ]


#: The fields of an attribute change a previewed export keeps.
_CHANGE_FIELDS = ("attribute", "change_type", "values", "previous_values", "status")


# --------------------------------------------------------------------------- record


def _record(activity: Activity, spool: Spool) -> None:
    """Write what was spooled, after the rollback: links to rows that do not exist now
    (what the run would have made) are left empty."""
    for entry in spool.read():
        kind = entry[0]
        if kind == "rpeis":
            _record_rpeis(entry[1], entry[2])
        elif kind == "exports":
            _record_exports(activity, entry[1], entry[2])
        else:
            _record_removed(activity, entry[1])


def _record_rpeis(rows: list[dict[str, Any]], names: dict[str, str]) -> None:
    _unlink_missing(rows)
    _name_new_references(rows, names)
    insert_rows(RunProfileExecutionItem, rows, returning=False)


def _name_new_references(rows: list[dict[str, Any]], names: dict[str, str]) -> None:
    """An RPEI whose changes refer to objects the run would have made keeps their
    names in ``details["new_references"]`` (``"mvo:12"`` → name): the id never exists."""
    existing: set[str] = set()
    for kind, (model, _) in _REFERENCED.items():
        ids = [int(key.split(":")[1]) for key in names if key.startswith(f"{kind}:")]
        if ids:
            found = model.objects.filter(pk__in=ids).values_list("pk", flat=True)
            existing.update(f"{kind}:{pk}" for pk in found)
    for row in rows:
        new = {
            key: names.get(key, key)
            for kind, ids in _references(row["details"])
            for key in (f"{kind}:{pk}" for pk in ids)
            if key not in existing
        }
        if new:
            row["details"] = {**row["details"], "new_references": new}


def _record_exports(activity: Activity, effect: str, rows: list[dict[str, Any]]) -> None:
    befores = {}
    if effect == PreviewEffect.CHANGED:
        befores = {
            row["pending_export_id"]: row
            for row in _export_states([r["pending_export_id"] for r in rows])
        }
    else:  # created: the pending export would be new
        for row in rows:
            row["pending_export_id"] = None
    for row in rows:
        row["activity_id"], row["effect"] = activity.pk, effect
        was = befores.get(row["pending_export_id"])
        row["before"] = _before(was) if was else {}
    _unlink_missing(rows)
    insert_rows(PreviewedExport, rows, returning=False)


def _record_removed(activity: Activity, ids: list[int]) -> None:
    for start in range(0, len(ids), CHUNK):
        rows = _export_states(ids[start : start + CHUNK])
        for row in rows:
            row["activity_id"], row["effect"], row["before"] = (
                activity.pk,
                PreviewEffect.REMOVED,
                _before(row),
            )
        _unlink_missing(rows)
        insert_rows(PreviewedExport, rows, returning=False)


def _before(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("change_type", "status", "approval", "changes")}


#: What a change's ``"ref"`` names, and the fields that name it.
_REFERENCED: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "cso": (ConnectorSpaceObject, ("secondary_external_id", "external_id")),
    "mvo": (MetaverseObject, ("display_name",)),
}

_LINKS = {
    "cs_object_id": ConnectorSpaceObject,
    "metaverse_object_id": MetaverseObject,
    "pending_export_id": PendingExport,
}


def _unlink_missing(rows: list[dict[str, Any]]) -> None:
    """Empty the links of ``rows`` to objects that do not exist (one query a link)."""
    for column, model in _LINKS.items():
        if column not in rows[0]:
            continue
        ids = {row[column] for row in rows if row[column] is not None}
        if not ids:
            continue
        found = set(model._default_manager.filter(one_of("id", ids)).values_list("pk", flat=True))
        for row in rows:
            if row[column] not in found:
                row[column] = None


def previewed_export_counts(activity: Activity) -> dict[str, int]:
    """How many pending exports the preview would create, change and remove."""
    found = dict(
        PreviewedExport.objects.filter(activity=activity)
        .values_list("effect")
        .annotate(n=Count("id"))
        .values_list("effect", "n")
    )
    return {effect.value: found.get(effect.value, 0) for effect in PreviewEffect}


# --------------------------------------------------------------------------- plumbing


@contextmanager
def _progress_elsewhere(recorder: ActivityRecorder) -> Iterator[None]:
    """Write the recorder's progress through a connection of its own (PostgreSQL), or
    not at all until the end (SQLite), while the run's transaction is open."""
    own = recorder.store_progress
    if connection.vendor != "postgresql":
        recorder.store_progress = lambda fields: None  # type: ignore[method-assign]
        try:
            yield
        finally:
            recorder.store_progress = own  # type: ignore[method-assign]
        return
    session = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:
        session.execute(f"SET lock_timeout = '{PROGRESS_LOCK_TIMEOUT}'")
        recorder.store_progress = (  # type: ignore[method-assign]
            lambda fields: _store_progress(session, recorder.activity.pk, fields)
        )
        yield
    finally:
        recorder.store_progress = own  # type: ignore[method-assign]
        session.close()


def _column(name: str) -> str:
    field = Activity._meta.get_field(name)
    assert isinstance(field, Field) and field.column  # progress fields are the activity's columns
    return field.column


def _store_progress(session: psycopg.Connection, activity_id: int, fields: dict[str, Any]) -> None:
    columns = {_column(name): value for name, value in fields.items()}
    assignments = ", ".join(f'"{column}" = %s' for column in columns)
    values = [Jsonb(v) if isinstance(v, dict) else v for v in columns.values()]
    try:
        session.execute(
            f'UPDATE "{Activity._meta.db_table}" SET {assignments} WHERE id = %s',
            [*values, activity_id],
        )
    except psycopg.Error as exc:  # only progress: the outcome is written at the end
        logger.debug("Preview %s: progress not written: %s", activity_id, exc)


# --------------------------------------------------------------------------- housekeeping


def prune_previews(now: dt.datetime) -> int:
    """Delete preview activities finished more than JIM_PREVIEW_RETENTION_DAYS ago
    (their RPEIs and previewed exports with them), a chunk at a time."""
    cutoff = now - dt.timedelta(days=settings.JIM_PREVIEW_RETENTION_DAYS)
    removed = 0
    while True:
        ids = list(
            Activity.objects.filter(preview=True, finished_at__lt=cutoff).values_list(
                "pk", flat=True
            )[:100]
        )
        if not ids:
            return removed
        with transaction.atomic():
            RunProfileExecutionItem.objects.filter(activity_id__in=ids).delete()
            Activity.objects.filter(pk__in=ids).delete()
        removed += len(ids)
