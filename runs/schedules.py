"""Keeping django-q2's scheduler in step with JIM's schedules.

Each enabled :class:`~connectors.models.Schedule` has one django-q2 ``Schedule`` (cron
type) named ``jim:<id>`` that calls :func:`runs.tasks.run_schedule`. The admin
and ``jim apply`` edit JIM's schedules; these receivers mirror every change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_q.models import Schedule as QSchedule

from connectors.models import Schedule

TASK = "runs.tasks.run_schedule"


def q_schedule_name(schedule: Schedule) -> str:
    return f"jim:{schedule.pk}"


def sync_q_schedule(schedule: Schedule) -> None:
    """Create, update or remove the django-q2 schedule of a JIM schedule."""
    name = q_schedule_name(schedule)
    if not schedule.enabled:
        QSchedule.objects.filter(name=name).delete()
        return
    QSchedule.objects.update_or_create(
        name=name,
        defaults={
            "func": TASK,
            "args": repr(schedule.pk),
            "schedule_type": QSchedule.CRON,
            "cron": schedule.cron,
            "repeats": -1,
        },
    )


def next_runs(schedules: Iterable[Schedule]) -> dict[int, datetime | None]:
    """When django-q2 next runs each of ``schedules`` (by JIM schedule id): one query.

    A disabled schedule has no django-q2 schedule, so no next run."""
    by_name = {q_schedule_name(schedule): schedule.pk for schedule in schedules}
    found = QSchedule.objects.filter(name__in=list(by_name)).values_list("name", "next_run")
    return {by_name[name]: next_run for name, next_run in found}


@receiver(post_save, sender=Schedule)
def _schedule_saved(sender: Any, instance: Schedule, **kwargs: Any) -> None:
    sync_q_schedule(instance)


@receiver(post_delete, sender=Schedule)
def _schedule_deleted(sender: Any, instance: Schedule, **kwargs: Any) -> None:
    QSchedule.objects.filter(name=q_schedule_name(instance)).delete()
