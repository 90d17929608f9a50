"""django-q2 entry points: queued runs, schedules, and recovery after a worker died.

A queued run executes the same code as ``jim run`` (:func:`runs.runner.execute`),
run lock included: an activity left in progress by a dead process is recorded as
failed by the first run it is in the way of. Where ``jim run`` refuses when the
connected system is busy ("already running"), a queued run waits its turn.
"""

from __future__ import annotations

import logging
import time
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
) -> Activity:
    """Create a queued activity and hand it to the django-q2 cluster (the ``allow_*``
    and ``overrides`` arguments as :func:`runs.runner.start_activity`)."""
    activity = start_activity(
        run_profile.connected_system,
        run_profile,
        initiated_by=user,
        initiated_by_name=initiated_by_name or (user.get_username() if user else ""),
        allow_deletions=allow_deletions,
        allow_changes=allow_changes,
        overrides=overrides,
    )
    if schedule is not None:
        Activity.objects.filter(pk=activity.pk).update(schedule=schedule)
    task_id = async_task(
        "runs.tasks.execute_activity",
        activity.pk,
        task_name=f"JIM activity {activity.pk}: {run_profile}",
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


def run_schedule(schedule_id: int) -> str:
    """Run a schedule's steps in order; stop at a failed step when the schedule says so."""
    recover_stale_activities(f"schedule #{schedule_id} started")
    schedule = Schedule.objects.get(pk=schedule_id)
    outcomes = []
    for step in schedule.steps.select_related("run_profile__connected_system"):
        activity = start_activity(
            step.run_profile.connected_system,
            step.run_profile,
            initiated_by_name=f"schedule {schedule.name}",
        )
        Activity.objects.filter(pk=activity.pk).update(schedule=schedule)
        activity = _execute_when_free(activity)
        outcomes.append(f"{step.run_profile.name}: {activity.status}")
        failed = activity.status in (ActivityStatus.FAILED, ActivityStatus.CANCELLED)
        if failed and schedule.stop_on_failure:
            outcomes.append("stopped")
            break
    return "; ".join(outcomes)


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
