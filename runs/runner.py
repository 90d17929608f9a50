"""Running a run profile as an activity: create, claim, dispatch, finish.

``jim run`` and the django-q2 worker run profiles through the same two calls:
:func:`start_activity` creates the queued activity, :func:`execute` runs it to its
end in the calling process. The right to run is claimed in the database — the
constraints ``one_running_activity_per_system`` and ``one_running_sync`` make a
second claim fail — so two processes can never run the same system at once, and a
refused run raises :class:`AlreadyRunning` naming the activity in the way.

A claim is a row, and a row outlives its process; so a run also holds its activity's
run lock (:mod:`connectors.run_lock`) from before its claim until its outcome is
written. An activity in the way whose lock is free was left by a process that died
(``kill -9``, an OOM kill, a reboot, a lost database session): the claim records it
as failed, returns its ``executing`` exports to retryable
(:func:`connectors.dead_runs.fail_dead`) and goes on, at once.

A run always ends with a status, whatever happens inside it:

``complete``              no object-level errors;
``complete_with_errors``  some RPEIs carry an error;
``failed``                the run stopped (:class:`~connectors.activity.RunFailed`,
                          a :class:`~connectors.base.ConnectorError`, a lost database
                          connection, or any unexpected exception — logged with its
                          traceback, never raised to the caller); ``message`` says why;
``cancelled``             the activity was asked to stop (or the process was
                          interrupted).

When the database connection is lost, the outcome is written on a new connection
(retried for :data:`RECONNECT_SECONDS`); when even that fails the caller gets
:class:`OutcomeNotRecorded`, and the next run of the system records the activity as
failed (its lock went with the connection).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import import_module
from typing import Any, TypedDict

import psycopg
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.backends.signals import connection_created
from django.db.models import Q
from django.utils import timezone

from audit.models import Action
from audit.recording import record
from connectors import run_lock
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
from connectors.dead_runs import fail_dead
from connectors.models import Activity, ConnectedSystem, RunProfile
from core.collector import collector_paused
from runs.preview import check_previewable, previewed_export_counts, run_in_preview

logger = logging.getLogger(__name__)

#: Run profile type → the processor, ``"module:function"``; each function is
#: ``(activity, recorder) -> None`` and reports through the recorder.
PROCESSORS: dict[str, str] = {
    RunProfileType.FULL_IMPORT: "runs.processors:full_import",
    RunProfileType.DELTA_IMPORT: "runs.processors:delta_import",
    RunProfileType.FULL_SYNC: "metaverse.sync:run_full_sync",
    RunProfileType.DELTA_SYNC: "metaverse.sync:run_delta_sync",
    RunProfileType.EXPORT: "exports.export_processor:run_export",
}

#: At most this many errors are listed in an activity's summary.
SUMMARY_ERROR_LIMIT = 1000
#: A run checks that it still holds its run lock at most this often (seconds), at its
#: progress points.
LOCK_CHECK_INTERVAL = 1.0
#: After losing the database connection, a run tries this long (seconds) to write its
#: outcome on a new one — long enough for a PostgreSQL restart.
RECONNECT_SECONDS = 15.0
RECONNECT_PAUSE = 0.5
#: SQLSTATEs of a session the server ended: admin shutdown (``pg_terminate_backend``,
#: a fast shutdown), crash shutdown, the server not accepting connections yet.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})

ProgressCallback = Callable[[ActivityRecorder], None]
Processor = Callable[[Activity, ActivityRecorder], None]


class AlreadyRunning(Exception):
    """The activity cannot start: its system (or, for a sync, another sync) is busy.

    ``running`` is the activity in the way, when it could be found.
    """

    def __init__(self, message: str, running: Activity | None = None) -> None:
        super().__init__(message)
        self.running = running


class NotQueued(Exception):
    """The activity is not waiting to run (it ran, or is running, already)."""


class OutcomeNotRecorded(Exception):
    """The run lost its database connection and no new one could record its outcome.

    ``activity`` carries the outcome in memory (status, message, counters); the
    database still says ``in_progress`` until the next run of the system finds it.
    """

    def __init__(self, message: str, activity: Activity) -> None:
        super().__init__(message)
        self.activity = activity


def start_activity(
    system: ConnectedSystem,
    run_profile: RunProfile,
    *,
    initiated_by: Any = None,
    initiated_by_name: str = "",
    allow_deletions: bool = False,
    allow_changes: bool = False,
    overrides: Activity | None = None,
    preview: bool = False,
) -> Activity:
    """Create a queued activity for ``run_profile`` of ``system``, and its
    ``run_started`` entry on the audit trail (who: ``initiated_by``, else
    ``initiated_by_name``; the door: the :mod:`audit.context`).

    ``allow_deletions`` and ``allow_changes`` let it exceed the system's deletion and
    change thresholds; ``overrides`` is the failed activity it re-runs so (the audit
    link of a console or admin override). ``preview`` makes it a preview
    (:mod:`runs.preview`); :class:`~runs.preview.NotPreviewable` for an export run.
    """
    if run_profile.connected_system_id != system.pk:
        raise ValueError(f"run profile {run_profile.name!r} does not belong to {system.name}")
    if preview:
        check_previewable(run_profile.profile_type, run_profile.name)
    with transaction.atomic():
        activity = Activity.objects.create(
            connected_system=system,
            run_profile=run_profile,
            profile_type=run_profile.profile_type,
            profile_name=run_profile.name,
            status=ActivityStatus.QUEUED,
            initiated_by=initiated_by,
            initiated_by_name=initiated_by_name[:200],
            allow_deletions=allow_deletions,
            allow_changes=allow_changes,
            overrides=overrides,
            preview=preview,
        )
        record(
            initiated_by or initiated_by_name,
            Action.RUN_STARTED,
            activity,
            reason=_run_started(activity),
        )
    return activity


def _run_started(activity: Activity) -> str:
    """What the audit trail says of a run started: the profile, and what it may do."""
    text = f"{activity.profile_name} of {activity.connected_system.name} (activity {activity.pk})"
    if activity.preview:
        text = f"preview of {text}"
    lifted = [
        what
        for what, allowed in (
            ("deletions", activity.allow_deletions),
            ("changes", activity.allow_changes),
        )
        if allowed
    ]
    if lifted:
        text += f", allowing {' and '.join(lifted)} beyond the threshold"
    if activity.overrides_id:
        text += f", re-running activity {activity.overrides_id}"
    return text


def execute(
    activity: Activity,
    *,
    on_progress: ProgressCallback | None = None,
    processor: Processor | None = None,
) -> Activity:
    """Claim a queued activity, run its processor to the end, record the outcome.

    ``on_progress`` is called with the recorder whenever the processor reports
    progress (for a progress bar). Raises :class:`AlreadyRunning` (the activity
    stays queued) or :class:`NotQueued`; never raises what the run itself meets,
    except ``KeyboardInterrupt``, after recording the activity as cancelled, and
    :class:`OutcomeNotRecorded`. Returns the activity, refreshed. ``processor``
    replaces the profile type's (a manual action on one metaverse object,
    :mod:`runs.mvo_actions`).
    """
    lock = _claim(activity)
    try:
        with _connections_named(activity.pk):
            _run(activity, lock, on_progress, processor)
    finally:
        lock.release()
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


def lost_connection(exc: BaseException) -> str | None:
    """When ``exc`` is (or was caused by) the loss of a database connection: the
    server's word for it, on one line."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _ends_the_session(current):
            return run_lock.first_line(current)
        current = current.__cause__ or current.__context__
    return None


def _ends_the_session(exc: BaseException) -> bool:
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    if state in _SESSION_ENDED or state.startswith("08"):  # class 08: connection exception
        return True
    # No SQLSTATE: the client found the connection closed or broken.
    return not state and isinstance(exc, psycopg.OperationalError)


# --------------------------------------------------------------------------- claiming


def _claim(activity: Activity) -> run_lock.RunLock:
    """Take the activity's run lock, then its system; returns the lock, held."""
    try:
        lock = run_lock.hold(activity.pk)
    except run_lock.AlreadyHeld as exc:
        raise NotQueued(str(exc)) from None
    except (psycopg.Error, OSError) as exc:  # no connection slot left, an unwritable folder
        cause = run_lock.first_line(exc)
        reason = f"could not take the run lock of activity #{activity.pk}: {cause}"
        refuse(activity, reason)
        raise NotQueued(reason) from None
    try:
        _claim_system(activity)
    except BaseException:
        lock.release()
        raise
    return lock


def _claim_system(activity: Activity) -> None:
    while True:
        now = timezone.now()
        try:
            with transaction.atomic():
                claimed = Activity.objects.filter(
                    pk=activity.pk, status=ActivityStatus.QUEUED
                ).update(
                    status=ActivityStatus.IN_PROGRESS,
                    phase=ActivityPhase.WAITING,
                    started_at=now,
                    heartbeat_at=now,
                )
            break
        except IntegrityError:
            in_the_way = _in_the_way(activity).select_related("connected_system")
            if not fail_dead(in_the_way, found_by=f"activity #{activity.pk} was started"):
                raise _already_running(activity) from None
    if not claimed:
        status = Activity.objects.filter(pk=activity.pk).values_list("status", flat=True).first()
        raise NotQueued(f"activity #{activity.pk} is {status or 'gone'}, not queued")
    activity.status, activity.started_at, activity.heartbeat_at = (
        ActivityStatus.IN_PROGRESS,
        now,
        now,
    )


def _in_the_way(activity: Activity):
    """The running activities that keep ``activity`` from claiming its system."""
    blocking = Q(connected_system_id=activity.connected_system_id)
    if activity.profile_type in SYNC_PROFILE_TYPES:
        blocking |= Q(profile_type__in=SYNC_PROFILE_TYPES)
    return Activity.objects.filter(blocking, status=ActivityStatus.IN_PROGRESS).exclude(
        pk=activity.pk
    )


def _already_running(activity: Activity) -> AlreadyRunning:
    running = Activity.objects.filter(status=ActivityStatus.IN_PROGRESS)
    same_system = running.filter(connected_system_id=activity.connected_system_id).first()
    if same_system is not None:
        return AlreadyRunning(
            f"{activity.connected_system.name} is already running activity "
            f"#{same_system.pk} ({_what(same_system)}, {_since(same_system)}); "
            "a connected system runs one activity at a time.",
            same_system,
        )
    sync = running.filter(profile_type__in=SYNC_PROFILE_TYPES).first()
    if sync is not None:
        return AlreadyRunning(
            f"a sync is already running: activity #{sync.pk} "
            f"({sync.connected_system.name} — {_what(sync)}, {_since(sync)}); "
            "syncs write the metaverse and run one at a time.",
            sync,
        )
    return AlreadyRunning(
        f"{activity.connected_system.name} is busy with another activity (it just finished "
        "or started); try again."
    )


def _what(activity: Activity) -> str:
    """The run profile an activity runs, and whether it is a preview (which holds its
    system as the real run would)."""
    return f"preview of {activity.profile_name}" if activity.preview else activity.profile_name


def _since(activity: Activity) -> str:
    if activity.started_at is None:
        return "just started"
    return f"started {activity.started_at:%Y-%m-%d %H:%M:%S} UTC"


def _title(activity: Activity) -> str:
    return f"{activity.connected_system.name} — {activity.profile_name}"


# --------------------------------------------------------------------------- running


@contextmanager
def _connections_named(activity_id: int) -> Iterator[None]:
    """Name the run's PostgreSQL connections (``application_name``) while it runs —
    Django's, and any opened meanwhile, the write-behind thread's included — so they
    can be told apart in ``pg_stat_activity``."""
    if connection.vendor != "postgresql":
        yield
        return
    name = run_lock.application_name(activity_id)

    def name_new(sender: Any, connection: Any, **kwargs: Any) -> None:
        _set_application_name(connection, name)

    connection_created.connect(name_new, weak=False)
    try:
        if connection.connection is not None:
            _set_application_name(connection, name)
        yield
    finally:
        connection_created.disconnect(name_new)
        if connection.connection is not None and not connection.needs_rollback:
            with suppress(DatabaseError):  # the connection may be the lost one
                _set_application_name(connection, None)


def _set_application_name(db: Any, name: str | None) -> None:
    with db.cursor() as cursor:
        if name is None:
            cursor.execute("RESET application_name")
        else:
            cursor.execute("SELECT set_config('application_name', %s, false)", [name])


class _RunRecorder(ActivityRecorder):
    """The activity recorder of a run: tells a callback when progress is reported, and
    checks at its progress points that the run still holds its lock."""

    def __init__(
        self, activity: Activity, lock: run_lock.RunLock, on_progress: ProgressCallback | None
    ) -> None:
        super().__init__(activity)
        self._lock = lock
        self._on_progress = on_progress
        self._lock_checked = time.monotonic()

    def progress(self, **kwargs: Any) -> None:
        try:
            super().progress(**kwargs)
        finally:
            if self._on_progress is not None:
                self._on_progress(self)
        now = time.monotonic()
        if now - self._lock_checked >= LOCK_CHECK_INTERVAL:
            self._lock_checked = now
            self._lock.check()


def _run(
    activity: Activity,
    lock: run_lock.RunLock,
    on_progress: ProgressCallback | None,
    processor: Processor | None = None,
) -> None:
    recorder = _RunRecorder(activity, lock, on_progress)
    status, message = ActivityStatus.COMPLETE, ""
    try:
        with collector_paused():
            run = processor or _processor(activity.profile_type)
            if activity.preview:
                run_in_preview(activity, recorder, run)
            else:
                run(activity, recorder)
    except KeyboardInterrupt:
        _finish(activity, recorder, ActivityStatus.CANCELLED, "Interrupted.")
        raise
    except Exception as exc:
        status, message = _failure(activity, recorder, exc)
    _finish(activity, recorder, status, message)


def _failure(
    activity: Activity, recorder: ActivityRecorder, exc: Exception
) -> tuple[ActivityStatus, str]:
    """The status and message of a run stopped by ``exc``."""
    if isinstance(exc, run_lock.LockLost):
        return ActivityStatus.FAILED, (
            f"The run lost the database connection that holds its lock ({exc}); it "
            "stopped, as another run may take its system now."
        )
    lost = lost_connection(exc)
    if lost is not None:
        return ActivityStatus.FAILED, f"The run lost the database connection: {lost}"
    if isinstance(exc, RunCancelled):
        return ActivityStatus.CANCELLED, "Cancelled on request."
    if isinstance(exc, RunFailed):
        if exc.error_type:
            recorder.error(exc.error_type, str(exc))
        return ActivityStatus.FAILED, str(exc)
    if isinstance(exc, ConnectorError):
        recorder.error(RpeiErrorType.CONNECTOR_ERROR, str(exc))
        return ActivityStatus.FAILED, str(exc)
    logger.exception("Activity %s (%s) failed", activity.pk, activity.profile_name)
    message = _one_line(exc)
    recorder.error(RpeiErrorType.UNHANDLED_ERROR, message)
    return ActivityStatus.FAILED, message


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
    """Write the last RPEIs and counters, then the outcome, whatever state we are in —
    on a new connection when the run's was lost (:data:`RECONNECT_SECONDS`)."""
    if status == ActivityStatus.COMPLETE and recorder.error_count:
        status = ActivityStatus.COMPLETE_WITH_ERRORS
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        if _connection_broken():
            _reconnect()
        try:
            _write_outcome(activity, recorder, status, message)
            return
        except (DatabaseError, psycopg.Error) as exc:  # psycopg's own from COPY
            lost = lost_connection(exc)
            if lost is None:
                raise
            if time.monotonic() >= deadline or connection.in_atomic_block:
                _keep_in_memory(activity, recorder, status, message)
                raise OutcomeNotRecorded(
                    f"{message}; the outcome could not be recorded either ({lost}): the "
                    f"next run of {activity.connected_system.name} records it as failed",
                    activity,
                ) from None
        time.sleep(RECONNECT_PAUSE)


def _write_outcome(
    activity: Activity, recorder: ActivityRecorder, status: str, message: str
) -> None:
    try:
        recorder.flush()
    except (DatabaseError, psycopg.Error) as exc:
        if lost_connection(exc) is not None:
            raise
        # RPEIs may point at rows a failed transaction rolled back; keep the outcome.
        logger.warning(
            "Activity %s: could not write its last RPEIs: %s", activity.pk, run_lock.first_line(exc)
        )
        recorder.discard_buffered()
        recorder.flush()
    fields: dict[str, Any] = {
        "status": status,
        "phase": ActivityPhase.DONE,
        "finished_at": timezone.now(),
        "heartbeat_at": timezone.now(),
    }
    if message or recorder.message:
        fields["message"] = message or recorder.message
    # Only while it is ours: a run that lost its lock may have been recorded as dead.
    Activity.objects.filter(pk=activity.pk, status=ActivityStatus.IN_PROGRESS).update(**fields)


def _connection_broken() -> bool:
    raw = connection.connection
    return raw is not None and bool(getattr(raw, "closed", False) or getattr(raw, "broken", False))


def _reconnect() -> None:
    """Drop Django's connection (outside a transaction): the next query opens a new one."""
    if not connection.in_atomic_block:
        connection.close()


def _keep_in_memory(
    activity: Activity, recorder: ActivityRecorder, status: str, message: str
) -> None:
    activity.status, activity.phase = status, ActivityPhase.DONE
    activity.message = message or recorder.message
    activity.finished_at = timezone.now()
    activity.objects_processed, activity.objects_total = recorder.processed, recorder.total
    activity.counts, activity.error_count = recorder.count_summary(), recorder.error_count


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    line = f"Unexpected error: {type(exc).__name__}" + (f": {detail}" if detail else "")
    return line[:500]


# --------------------------------------------------------------------------- summary


class ErrorSummary(TypedDict):
    """One error RPEI, as an activity's summary lists it."""

    external_id: str
    error_type: str
    message: str


def activity_summary(
    activity: Activity, *, errors: list[ErrorSummary] | None = None
) -> dict[str, Any]:
    """The activity as the JSON of ``jim run --json`` / ``jim activity --json``.

    ``counts`` has every key of the spec (0 where nothing happened); a preview's has
    ``pending_exports``: how many it would create, change and remove. ``errors`` lists
    the first :data:`SUMMARY_ERROR_LIMIT` error RPEIs (``errors_truncated`` says
    when there were more; ``counts.errors`` is the total) — read from the database
    unless given (``[]`` for an outcome the database could not record).
    """
    counts = {key: int(activity.counts.get(key, 0)) for key in COUNTED_CHANGE_TYPES}
    counts["errors"] = activity.error_count
    if errors is None:
        errors = list(
            activity.items.exclude(error_type="")
            .order_by("pk")
            .values("external_id", "error_type", "message")[: SUMMARY_ERROR_LIMIT + 1]
        )
    summary = {
        "activity": activity.pk,
        "preview": activity.preview,
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
    if activity.preview:
        summary["pending_exports"] = previewed_export_counts(activity)
    return summary
