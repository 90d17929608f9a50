"""Recording what a run does: RPEIs, counts, progress, heartbeat and cancellation.

Every processor (import, sync, export) reports through an :class:`ActivityRecorder`.
RPEIs are buffered as plain rows and written with ``COPY`` (:mod:`core.bulk`),
each batch in a savepoint so a failed write leaves the run usable; counts and progress are written
to the activity row with ``filter(pk=…).update(…)`` so the live page and
``jim activity`` read the truth while the run goes on, and a crashed worker never
leaves a lie behind.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.choices import ActivityPhase, ObjectChangeType
from connectors.models import Activity, RunProfileExecutionItem
from core.bulk import insert_rows

#: Write progress to the database at most this often (seconds).
PROGRESS_INTERVAL = 0.5
#: Flush buffered RPEIs when this many are waiting.
RPEI_BATCH = 2000


class RunFailed(Exception):
    """Stop the run: the activity ends ``failed`` with this message.

    Raised for run-level problems (connector unreachable, deletion threshold, broken
    configuration); ``error_type`` is recorded as an RPEI when given.
    """

    def __init__(self, message: str, *, error_type: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type


class RunCancelled(Exception):
    """The activity was asked to stop; raised at a batch boundary."""


class ActivityRecorder:
    """Buffers RPEIs and keeps the activity's counters, progress and heartbeat current."""

    def __init__(self, activity: Activity) -> None:
        self.activity = activity
        self.counts: Counter[str] = Counter()
        self.error_count = 0
        self.processed = activity.objects_processed
        self.total = activity.objects_total
        self.phase = activity.phase
        #: What the run says of itself (the activity's message), unless it fails.
        self.message = ""
        self._buffer: list[dict[str, Any]] = []
        self._last_write = 0.0

    # -- RPEIs ----------------------------------------------------------------

    def item(
        self,
        change_type: str = ObjectChangeType.NONE,
        *,
        error_type: str = "",
        message: str = "",
        external_id: str | None = "",
        cs_object_id: int | None = None,
        metaverse_object_id: int | None = None,
        pending_export_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record one RPEI: what the run did to one object, or the error it met."""
        if change_type != ObjectChangeType.NONE:
            self.counts[change_type] += 1
        if error_type:
            self.error_count += 1
        self._buffer.append(
            {
                "activity_id": self.activity.pk,
                "change_type": change_type,
                "error_type": error_type,
                "message": message,
                "external_id": (external_id or "")[:2000],
                "cs_object_id": cs_object_id,
                "metaverse_object_id": metaverse_object_id,
                "pending_export_id": pending_export_id,
                "details": details or {},
            }
        )
        if len(self._buffer) >= RPEI_BATCH:
            self.flush()

    def error(
        self,
        error_type: str,
        message: str,
        *,
        external_id: str | None = "",
        change_type: str = ObjectChangeType.NONE,
        **ids: Any,
    ) -> None:
        """Record an object-level error RPEI."""
        self.item(
            change_type, error_type=error_type, message=message, external_id=external_id, **ids
        )

    def count(self, change_type: str, number: int = 1) -> None:
        """Count RPEIs that were written without the recorder (the importer writes a
        page's RPEIs in the page's own transaction, then counts them here)."""
        self.counts[change_type] += number

    def discard_buffered(self) -> None:
        """Drop the RPEIs not yet written, and their counts (they may point at rows a
        failed transaction rolled back)."""
        self.take_buffered()

    def take_buffered(self) -> list[dict[str, Any]]:
        """Hand over the RPEIs not yet written, uncounted: the caller writes them (as
        :func:`write_rpeis` does) and then reports them with :meth:`written`."""
        rows, self._buffer = self._buffer, []
        self._tally(rows, -1)
        return rows

    def written(self, rows: list[dict[str, Any]]) -> None:
        """Count RPEIs taken with :meth:`take_buffered` once they are committed."""
        self._tally(rows, 1)

    def _tally(self, rows: list[dict[str, Any]], sign: int) -> None:
        for rpei in rows:
            if rpei["change_type"] != ObjectChangeType.NONE:
                self.counts[rpei["change_type"]] += sign
            if rpei["error_type"]:
                self.error_count += sign

    # -- progress --------------------------------------------------------------

    def progress(
        self,
        *,
        processed: int | None = None,
        advance: int = 0,
        total: int | None = None,
        phase: str | None = None,
        force: bool = False,
    ) -> None:
        """Update progress; written at most every PROGRESS_INTERVAL seconds.

        Raises :class:`RunCancelled` when the activity has been asked to stop, so call
        it at batch boundaries (after a batch is committed).
        """
        if processed is not None:
            self.processed = processed
        self.processed += advance
        if total is not None:
            self.total = total
        if phase is not None and phase != self.phase:
            self.phase = phase
            force = True
        now = time.monotonic()
        if force or now - self._last_write >= PROGRESS_INTERVAL:
            self._write(now)
            self._raise_if_cancelled()

    def note(self, message: str) -> None:
        """Set the activity's message now; the outcome keeps it unless the run fails
        (through :meth:`store_progress`, so that a preview's is not rolled back)."""
        self.message = message
        self.store_progress({"message": message})

    def set_phase(self, phase: ActivityPhase | str) -> None:
        self.progress(phase=phase)

    def flush(self) -> None:
        """Write buffered RPEIs and the current counters."""
        if self._buffer:
            with transaction.atomic():  # a savepoint inside a run's transaction
                write_rpeis(self._buffer)
            self._buffer = []
        self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._last_write = now
        self.store_progress(
            {
                "objects_processed": self.processed,
                "objects_total": self.total,
                "phase": self.phase,
                "counts": self.count_summary(),
                "error_count": self.error_count,
                "heartbeat_at": timezone.now(),
            }
        )

    def store_progress(self, fields: dict[str, Any]) -> None:
        """Write the activity's progress fields (a preview, whose own connection is in
        a transaction no one else sees, writes them through another)."""
        Activity.objects.filter(pk=self.activity.pk).update(**fields)

    def _raise_if_cancelled(self) -> None:
        cancelled = (
            Activity.objects.filter(pk=self.activity.pk, cancel_requested=True)
            .values_list("pk", flat=True)
            .first()
        )
        if cancelled:
            raise RunCancelled()

    def count_summary(self) -> dict[str, int]:
        """Counts by change type, only those that happened (the JSON fills in zeros)."""
        return {key: value for key, value in self.counts.items() if value}


def write_rpeis(rows: list[dict[str, Any]]) -> None:
    """Insert RPEI rows as :meth:`ActivityRecorder.item` buffers them."""
    insert_rows(RunProfileExecutionItem, rows, returning=False)
