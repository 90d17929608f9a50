"""django-q2 entry points: queued runs, schedules, and recovery after a worker died.

A queued run executes the same code as ``jim run`` (:func:`runs.runner.execute`),
run lock included: an activity left in progress by a dead process is recorded as
failed by the first run it is in the way of. Where ``jim run`` refuses when the
connected system is busy ("already running"), a queued run waits its turn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from django.dispatch import receiver
from django.utils import timezone
from django_q.signals import post_spawn
from django_q.tasks import async_task

from connectors.choices import ActivityStatus
from connectors.dead_runs import fail_dead
from connectors.models import Activity, RunProfile, Schedule
from runs.runner import (
    AlreadyRunning,
    NotQueued,
    OutcomeNotRecorded,
    execute,
    start_activity,
)

logger = logging.getLogger(__name__)

#: How often a queued run looks whether its turn has come.
WAIT_POLL_SECONDS = 2.0


def queue_run(
    run_profile: RunProfile,
    *,
    user: Any = None,
    initiated_by_name: str = "",
    schedule=None,
    allow_deletions: bool = False,
    allow_changes: bool = False,
    overrides: Activity | None = None,
    preview: bool = False,
) -> Activity:
    """Create a queued activity and hand it to the django-q2 cluster (the ``allow_*``,
    ``overrides`` and ``preview`` arguments as :func:`runs.runner.start_activity`)."""
    activity = start_activity(
        run_profile.connected_system,
        run_profile,
        initiated_by=user,
        initiated_by_name=initiated_by_name or (user.get_username() if user else ""),
        allow_deletions=allow_deletions,
        allow_changes=allow_changes,
        overrides=overrides,
        preview=preview,
    )
    if schedule is not None:
        Activity.objects.filter(pk=activity.pk).update(schedule=schedule)
    task_id = async_task(
        "runs.tasks.execute_activity",
        activity.pk,
        task_name=f"JIM activity {activity.pk}: {'preview of ' if preview else ''}{run_profile}",
    )
    Activity.objects.filter(pk=activity.pk).update(task_id=task_id or "")
    activity.refresh_from_db()
    return activity


def execute_activity(activity_id: int) -> str:
    """Run a queued activity, waiting while its system (or another sync) is busy."""
    recover_stale_activities("a queued run started")
    activity = Activity.objects.select_related("connected_system", "run_profile").get(
        pk=activity_id
    )
    activity = _execute_when_free(activity)
    return activity.status


def _execute_when_free(activity: Activity) -> Activity:
    while True:
        activity.refresh_from_db()
        if activity.status != ActivityStatus.QUEUED:
            return activity  # cancelled (or run) meanwhile
        if activity.cancel_requested:
            Activity.objects.filter(pk=activity.pk).update(
                status=ActivityStatus.CANCELLED, finished_at=timezone.now()
            )
            activity.refresh_from_db()
            return activity
        try:
            return execute(activity)
        except AlreadyRunning:
            time.sleep(WAIT_POLL_SECONDS)
        except NotQueued as exc:
            logger.error("Activity %s: %s", activity.pk, exc)
            activity.refresh_from_db()
            return activity
        except OutcomeNotRecorded as exc:
            logger.error("Activity %s: %s", activity.pk, exc)
            return exc.activity


class ScheduleHasNoSteps(ValueError):
    """A schedule asked to run has no run profiles to run."""


def run_schedule_now(schedule: Schedule, user: Any) -> Activity:
    """Hand ``schedule`` to the django-q2 cluster now, enabled or not, for ``user``.

    Its first step is queued at once (so it shows queued, with its live page, before a
    worker takes the schedule); :func:`run_schedule` runs it and then the other steps,
    each initiated by ``user``. Returns the first step's activity.
    """
    first_step = schedule.steps.select_related("run_profile__connected_system").first()
    if first_step is None:
        raise ScheduleHasNoSteps(
            f"Schedule {schedule.name!r} has no steps: add run profiles to it in the admin, "
            "then run it."
        )
    first = start_activity(
        first_step.run_profile.connected_system,
        first_step.run_profile,
        initiated_by=user,
        initiated_by_name=f"{user.get_username()} (schedule {schedule.name}, run now)",
    )
    Activity.objects.filter(pk=first.pk).update(schedule=schedule)
    task_id = async_task(
        "runs.tasks.run_schedule",
        schedule.pk,
        first.pk,
        task_name=f"JIM schedule {schedule.pk}: {schedule.name}, run now by {user.get_username()}",
    )
    Activity.objects.filter(pk=first.pk).update(task_id=task_id or "")
    first.refresh_from_db()
    return first


def run_schedule(schedule_id: int, first_activity_id: int | None = None) -> str:
    """Run a schedule's steps in order; stop at a failed step when the schedule says so.

    ``first_activity_id`` is the first step's activity when the schedule was run now
    (:func:`run_schedule_now`): it runs as the first step, and whoever initiated it
    initiates the others.
    """
    recover_stale_activities(f"schedule #{schedule_id} started")
    schedule = Schedule.objects.get(pk=schedule_id)
    first = (
        Activity.objects.select_related("initiated_by").get(pk=first_activity_id)
        if first_activity_id is not None
        else None
    )
    outcomes = []
    for activity in _step_activities(schedule, first):
        activity = _execute_when_free(activity)
        outcomes.append(f"{activity.profile_name}: {activity.status}")
        failed = activity.status in (ActivityStatus.FAILED, ActivityStatus.CANCELLED)
        if failed and schedule.stop_on_failure:
            outcomes.append("stopped")
            break
    return "; ".join(outcomes)


def _step_activities(schedule: Schedule, first: Activity | None) -> Iterator[Activity]:
    """The activities of ``schedule``'s steps, each started only when the one before has
    run: ``first`` (already queued) for the first step, when given."""
    steps = list(schedule.steps.select_related("run_profile__connected_system"))
    if first is not None:
        yield first
        steps = steps[1:]
    for step in steps:
        activity = start_activity(
            step.run_profile.connected_system,
            step.run_profile,
            initiated_by=first.initiated_by if first else None,
            initiated_by_name=first.initiated_by_name if first else f"schedule {schedule.name}",
        )
        Activity.objects.filter(pk=activity.pk).update(schedule=schedule)
        yield activity


def recover_stale_activities(found_by: str = "a worker started") -> list[int]:
    """Record as failed the in-progress activities whose process is gone (nothing holds
    their run lock) and make their executing exports retryable; their ids.

    A run does this itself for the activities in its way when it starts
    (:func:`connectors.dead_runs.fail_dead`); this clears the rest of the installation,
    when a worker, a queued run or a schedule starts. An activity whose process is
    alive is left alone however long it has been quiet.
    """
    running = Activity.objects.filter(status=ActivityStatus.IN_PROGRESS)
    return [
        activity.pk
        for activity in fail_dead(running.select_related("connected_system"), found_by=found_by)
    ]


@receiver(post_spawn)
def _worker_started(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    """When a django-q2 worker starts, clean up after any worker that died."""
    try:
        recover_stale_activities()
    except Exception:
        logger.exception("Recovering stale activities failed")
