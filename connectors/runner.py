"""Running a run profile as an activity: create, claim, dispatch, finish.

``jim run`` and the django-q2 worker run profiles through the same two calls:
:func:`start_activity` creates the queued activity, :func:`execute` runs it to its
end in the calling process. The right to run is claimed in the database — the
constraints ``one_running_activity_per_system`` and ``one_running_sync`` make a
second claim fail — so two processes can never run the same system at once, and a
refused run raises :class:`AlreadyRunning` naming the activity in the way.

A run always ends with a status, whatever happens inside it:

``complete``              no object-level errors;
``complete_with_errors``  some RPEIs carry an error;
``failed``                the run stopped (:class:`~connectors.activity.RunFailed`,
                          a :class:`~connectors.base.ConnectorError`, or any
                          unexpected exception — logged with its traceback, never
                          raised to the caller); ``message`` says why;
``cancelled``             the activity was asked to stop (or the process was
                          interrupted).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from connectors.activity import ActivityRecorder, RunCancelled, RunFailed
from connectors.base import ConnectorError
from connectors.choices import (
    COUNTED_CHANGE_TYPES,
    SYNC_PROFILE_TYPES,
    ActivityPhase,
    ActivityStatus,
    RpeiErrorType,
    RunProfileType,
)
from connectors.models import Activity, ConnectedSystem, RunProfile

logger = logging.getLogger(__name__)

#: Run profile type → the processor, ``"module:function"``; each function is
#: ``(activity, recorder) -> None`` and reports through the recorder.
PROCESSORS: dict[str, str] = {
    RunProfileType.FULL_IMPORT: "connectors.importer:run_full_import",
    RunProfileType.DELTA_IMPORT: "connectors.importer:run_delta_import",
    RunProfileType.FULL_SYNC: "metaverse.sync:run_full_sync",
    RunProfileType.DELTA_SYNC: "metaverse.sync:run_delta_sync",
    RunProfileType.EXPORT: "exports.export_processor:run_export",
}

#: At most this many errors are listed in an activity's summary.
SUMMARY_ERROR_LIMIT = 1000

ProgressCallback = Callable[[ActivityRecorder], None]


class AlreadyRunning(Exception):
    """The activity cannot start: its system (or, for a sync, another sync) is busy.

    ``running`` is the activity in the way, when it could be found.
    """

    def __init__(self, message: str, running: Activity | None = None) -> None:
        super().__init__(message)
        self.running = running


class NotQueued(Exception):
    """The activity is not waiting to run (it ran, or is running, already)."""


def start_activity(
    system: ConnectedSystem,
    run_profile: RunProfile,
    *,
    initiated_by: Any = None,
    initiated_by_name: str = "",
    allow_deletions: bool = False,
) -> Activity:
    """Create a queued activity for ``run_profile`` of ``system``."""
    if run_profile.connected_system_id != system.pk:
        raise ValueError(f"run profile {run_profile.name!r} does not belong to {system.name}")
    return Activity.objects.create(
        connected_system=system,
        run_profile=run_profile,
        profile_type=run_profile.profile_type,
        profile_name=run_profile.name,
        status=ActivityStatus.QUEUED,
        initiated_by=initiated_by,
        initiated_by_name=initiated_by_name[:200],
        allow_deletions=allow_deletions,
    )


def execute(activity: Activity, *, on_progress: ProgressCallback | None = None) -> Activity:
    """Claim a queued activity, run its processor to the end, record the outcome.

    ``on_progress`` is called with the recorder whenever the processor reports
    progress (for a progress bar). Raises :class:`AlreadyRunning` (the activity
    stays queued) or :class:`NotQueued`; never raises what the run itself meets,
    except ``KeyboardInterrupt``, after recording the activity as cancelled.
    Returns the activity, refreshed.
    """
    _claim(activity)
    recorder = _RunRecorder(activity, on_progress)
    status, message = ActivityStatus.COMPLETE, ""
    try:
        with fewer_garbage_collections():
            _processor(activity.profile_type)(activity, recorder)
    except RunFailed as exc:
        status, message = ActivityStatus.FAILED, str(exc)
        if exc.error_type:
            recorder.error(exc.error_type, message)
    except RunCancelled:
        status, message = ActivityStatus.CANCELLED, "Cancelled on request."
    except ConnectorError as exc:
        status, message = ActivityStatus.FAILED, str(exc)
        recorder.error(RpeiErrorType.CONNECTOR_ERROR, message)
    except KeyboardInterrupt:
        _finish(activity, recorder, ActivityStatus.CANCELLED, "Interrupted.")
        raise
    except Exception as exc:
        logger.exception("Activity %s (%s) failed", activity.pk, activity.profile_name)
        status, message = ActivityStatus.FAILED, _one_line(exc)
        recorder.error(RpeiErrorType.UNHANDLED_ERROR, message)
    _finish(activity, recorder, status, message)
    activity.refresh_from_db()
    return activity


def refuse(activity: Activity, reason: str) -> Activity:
    """Record a queued activity that will not run (``failed``, with the reason)."""
    Activity.objects.filter(pk=activity.pk, status=ActivityStatus.QUEUED).update(
        status=ActivityStatus.FAILED,
        phase=ActivityPhase.DONE,
        message=f"Not run: {reason}",
        finished_at=timezone.now(),
    )
    activity.refresh_from_db()
    return activity


# --------------------------------------------------------------------------- claiming


def _claim(activity: Activity) -> None:
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = Activity.objects.filter(pk=activity.pk, status=ActivityStatus.QUEUED).update(
                status=ActivityStatus.IN_PROGRESS,
                phase=ActivityPhase.WAITING,
                started_at=now,
                heartbeat_at=now,
            )
    except IntegrityError:
        raise _already_running(activity) from None
    if not claimed:
        status = Activity.objects.filter(pk=activity.pk).values_list("status", flat=True).first()
        raise NotQueued(f"activity #{activity.pk} is {status or 'gone'}, not queued")
    activity.status, activity.started_at, activity.heartbeat_at = (
        ActivityStatus.IN_PROGRESS,
        now,
        now,
    )


def _already_running(activity: Activity) -> AlreadyRunning:
    running = Activity.objects.filter(status=ActivityStatus.IN_PROGRESS)
    same_system = running.filter(connected_system_id=activity.connected_system_id).first()
    if same_system is not None:
        return AlreadyRunning(
            f"{activity.connected_system.name} is already running activity "
            f"#{same_system.pk} ({same_system.profile_name}, {_since(same_system)}); "
            "a connected system runs one activity at a time.",
            same_system,
        )
    sync = running.filter(profile_type__in=SYNC_PROFILE_TYPES).first()
    if sync is not None:
        return AlreadyRunning(
            f"a sync is already running: activity #{sync.pk} "
            f"({sync.connected_system.name} — {sync.profile_name}, {_since(sync)}); "
            "syncs write the metaverse and run one at a time.",
            sync,
        )
    return AlreadyRunning(
        f"{activity.connected_system.name} is busy with another activity (it just finished "
        "or started); try again."
    )


def _since(activity: Activity) -> str:
    if activity.started_at is None:
        return "just started"
    return f"started {activity.started_at:%Y-%m-%d %H:%M:%S} UTC"


# --------------------------------------------------------------------------- running


@contextmanager
def fewer_garbage_collections(threshold: int = 100_000) -> Iterator[None]:
    """Keep Python's cycle collector out of the way while a run works.

    A run allocates many short-lived dicts and lists, and each allocation burst made
    the collector scan every object alive — Django's included. Objects alive at the
    start are frozen out of the scans for the run and the youngest generation is
    collected less often (an import's collection time fell from 7 s to under 2 s per
    100,000 objects); both are restored after.
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold, previous[0]), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


class _RunRecorder(ActivityRecorder):
    """The activity recorder of a run: tells a callback when progress is reported."""

    def __init__(self, activity: Activity, on_progress: ProgressCallback | None) -> None:
        super().__init__(activity)
        self._on_progress = on_progress

    def progress(self, **kwargs: Any) -> None:
        try:
            super().progress(**kwargs)
        finally:
            if self._on_progress is not None:
                self._on_progress(self)


def _processor(profile_type: str) -> Callable[[Activity, ActivityRecorder], None]:
    dotted = PROCESSORS.get(profile_type)
    if dotted is None:
        raise RunFailed(f"unknown run profile type {profile_type!r}")
    module_name, function_name = dotted.split(":")
    not_available = RunFailed(
        f"The {profile_type.replace('_', ' ')} processor is not available in this "
        f"installation ({dotted} cannot be imported)."
    )
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise not_available from None
        raise
    function = getattr(module, function_name, None)
    if function is None:
        raise not_available
    return function


def _finish(activity: Activity, recorder: ActivityRecorder, status: str, message: str) -> None:
    """Write the last RPEIs and counters, then the outcome, whatever state we are in."""
    try:
        recorder.flush()
    except DatabaseError:
        # RPEIs may point at rows a failed transaction rolled back; keep the outcome.
        logger.exception("Activity %s: could not write its last RPEIs", activity.pk)
        recorder.discard_buffered()
        recorder.flush()
    if status == ActivityStatus.COMPLETE and recorder.error_count:
        status = ActivityStatus.COMPLETE_WITH_ERRORS
    fields: dict[str, Any] = {
        "status": status,
        "phase": ActivityPhase.DONE,
        "finished_at": timezone.now(),
        "heartbeat_at": timezone.now(),
    }
    if message:
        fields["message"] = message
    Activity.objects.filter(pk=activity.pk).update(**fields)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    line = f"Unexpected error: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return line[:500]


# --------------------------------------------------------------------------- summary


def activity_summary(activity: Activity) -> dict[str, Any]:
    """The activity as the JSON of ``jim run --json`` / ``jim activity --json``.

    ``counts`` has every key of the spec (0 where nothing happened); ``errors`` lists
    the first :data:`SUMMARY_ERROR_LIMIT` error RPEIs (``errors_truncated`` says
    when there were more; ``counts.errors`` is the total).
    """
    counts = {key: int(activity.counts.get(key, 0)) for key in COUNTED_CHANGE_TYPES}
    counts["errors"] = activity.error_count
    errors = list(
        activity.items.exclude(error_type="")
        .order_by("pk")
        .values("external_id", "error_type", "message")[: SUMMARY_ERROR_LIMIT + 1]
    )
    return {
        "activity": activity.pk,
        "system": activity.connected_system.name,
        "profile": activity.profile_name,
        "status": activity.status,
        "objects_processed": activity.objects_processed,
        "counts": counts,
        "errors": errors[:SUMMARY_ERROR_LIMIT],
        "errors_truncated": len(errors) > SUMMARY_ERROR_LIMIT,
        "message": activity.message,
        "phase": activity.phase,
        "objects_total": activity.objects_total,
        "started_at": activity.started_at.isoformat() if activity.started_at else None,
        "finished_at": activity.finished_at.isoformat() if activity.finished_at else None,
    }
