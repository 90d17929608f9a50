"""Deletion detection of a full import (seed 002), with its safety rules.

Deletion by difference: a CSO of an imported object type (and, for types read from
a container, whose DN is in that container) that the import did not return is marked
``obsolete``; sync then processes it. What is never marked:

* pending-provisioning CSOs (JIM created them; the system may not show them yet —
  seed 000, phase 5) and CSOs already obsolete;
* CSOs of object types or containers the import did not read;
* CSOs processed in this run under any outcome, errors included (a duplicated or
  malformed row is still there);
* anything, when the import returned no objects (zero-import safety) or when some
  objects could not even be identified (their CSOs might look deleted);
* anything, when more would be marked than the system's deletion threshold — the
  run fails before marking, unless the activity allows deletions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connectors.activity import ActivityRecorder, RunFailed
from connectors.choices import CsoStatus, ObjectChangeType, RpeiErrorType
from connectors.importing.references import chunks
from connectors.models import ConnectedSystem, ConnectorSpaceObject, describe_limit
from history import recording as history
from history.models import Event, ObjectKind

#: CSOs marked obsolete per transaction.
MARK_BATCH = 2000
#: Rows read per round trip while comparing.
READ_CHUNK = 20000


@dataclass(frozen=True)
class DeletionScope:
    """An imported object type and the container it was read from ("" = anywhere)."""

    object_type_id: int
    container_key: str = ""

    def condition(self) -> Q:
        """CSOs in the container: their normalised DN is it or ends with it (a CSO
        without a DN cannot be placed, and counts as in)."""
        if not self.container_key:
            return Q()
        return (
            Q(secondary_external_id_key__isnull=True)
            | Q(secondary_external_id_key=self.container_key)
            | Q(secondary_external_id_key__endswith="," + self.container_key)
        )


@dataclass
class DeletionOutcome:
    marked: int = 0
    skipped_reason: str = ""


def detect_deletions(
    system: ConnectedSystem,
    scopes: list[DeletionScope],
    imported_keys: set[str],
    *,
    imported_count: int,
    unidentified_count: int,
    allow_deletions: bool,
    recorder: ActivityRecorder,
    run_started: dt.datetime,
    history_source: history.Source,
) -> DeletionOutcome:
    """Mark the CSOs the full import did not return as obsolete (see the module doc).

    Raises :class:`RunFailed` (``deletion_threshold_exceeded``) before marking anything
    when more would be marked than the threshold allows.
    """
    if imported_count == 0:
        return DeletionOutcome(
            skipped_reason="the import returned no objects, so nothing was marked obsolete "
            "(zero-import safety)"
        )
    if unidentified_count:
        return DeletionOutcome(
            skipped_reason=f"{unidentified_count} object(s) could not be read, so deletion "
            "detection was skipped: their objects would look deleted. Fix them and run a "
            "full import again"
        )
    missing, existing = _missing(system, scopes, imported_keys, run_started)
    limit = system.deletion_limit(existing)
    if len(missing) > limit and not allow_deletions:
        how = describe_limit(system.deletion_threshold, existing, kind="deletion")
        raise RunFailed(
            f"{system.name}: this full import would mark {len(missing)} of {existing} "
            f"objects obsolete, more than the threshold {limit} "
            f"({how}); nothing was marked. Check the "
            f"source; if the deletions are real, run with --allow-deletions.",
            error_type=RpeiErrorType.DELETION_THRESHOLD_EXCEEDED,
        )
    for batch in chunks(missing, MARK_BATCH):
        _mark_obsolete(batch, recorder, history_source)
        recorder.flush()
        recorder.progress()  # a batch boundary: honours a cancellation request
    return DeletionOutcome(marked=len(missing))


def _missing(
    system: ConnectedSystem,
    scopes: list[DeletionScope],
    imported_keys: set[str],
    run_started: dt.datetime,
) -> tuple[list[int], int]:
    """(ids of the in-scope normal CSOs not imported, number of in-scope normal CSOs).

    Only CSOs this run did not write are read: those it wrote were imported.
    """
    missing: list[int] = []
    existing = 0
    for scope in scopes:
        csos = ConnectorSpaceObject.objects.filter(
            scope.condition(),
            connected_system=system,
            object_type_id=scope.object_type_id,
            status=CsoStatus.NORMAL,
        )
        existing += csos.count()
        rows = (
            csos.filter(updated_at__lt=run_started, external_id__isnull=False)
            .order_by()
            .values_list("pk", "external_id")
        )
        missing.extend(
            pk
            for pk, external_id in rows.iterator(chunk_size=READ_CHUNK)
            if external_id not in imported_keys
        )
    missing.sort()
    return missing, existing


def _mark_obsolete(pks: list[int], recorder: ActivityRecorder, source: history.Source) -> None:
    with transaction.atomic():
        csos = ConnectorSpaceObject.objects.filter(pk__in=pks, status=CsoStatus.NORMAL)
        rows = list(csos.order_by("pk").values_list("pk", "external_id"))
        now = timezone.now()
        csos.update(status=CsoStatus.OBSOLETE, sync_pending=True, updated_at=now)
        history.write(
            [history.row(ObjectKind.CSO, pk, Event.DELETED, now, source, {}) for pk, _ in rows]
        )
    for pk, external_id in rows:
        recorder.item(
            ObjectChangeType.DELETED,
            external_id=external_id,
            cs_object_id=pk,
            details={"reason": "not returned by the full import"},
        )
