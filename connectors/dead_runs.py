"""Recording runs whose process died.

An ``in_progress`` activity whose run lock is free (:mod:`connectors.run_lock`) has no
live process: whoever meets it — a run starting, a worker starting, a cancellation, a
discard — records it as failed here and goes on. :data:`run_died` tells the apps
that keep state for a running activity to release it (the exports app returns the
system's ``executing`` pending exports to retryable); it is sent inside the
transaction that records the failure, and each receiver answers how many things it
released.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from connectors import run_lock
from connectors.choices import ActivityPhase, ActivityStatus
from connectors.models import Activity

logger = logging.getLogger(__name__)

#: Sent with ``activity=`` when an activity is recorded as failed because its process
#: died; receivers return how many things of its system they released.
run_died = Signal()


def fail_dead(candidates: Iterable[Activity], *, found_by: str) -> list[Activity]:
    """Record as failed the in-progress activities of ``candidates`` whose process is
    gone (nothing holds their run lock), and return their ``executing`` exports to
    retryable. ``found_by`` completes "recorded when …". Returns those recorded."""
    dead = []
    for activity in candidates:
        if activity.status != ActivityStatus.IN_PROGRESS or run_lock.is_held(activity.pk):
            continue
        with transaction.atomic():
            recorded = Activity.objects.filter(
                pk=activity.pk, status=ActivityStatus.IN_PROGRESS
            ).update(
                status=ActivityStatus.FAILED,
                phase=ActivityPhase.DONE,
                finished_at=timezone.now(),
                message=(
                    "The process running it stopped (killed or crashed) before it "
                    f"finished; recorded when {found_by}."
                ),
            )
            if not recorded:
                continue  # it finished meanwhile, or someone else recorded it
            # Nothing else of its system could run while it was in progress: whatever of
            # the system is still marked as being done was being done by it.
            answers = run_died.send(sender=Activity, activity=activity)
            released = sum(answer for _, answer in answers if isinstance(answer, int))
        logger.warning(
            "Activity #%s (%s) was in progress, but the process running it stopped (killed "
            "or crashed): recorded as failed%s.",
            activity.pk,
            f"{activity.connected_system.name} — {activity.profile_name}",
            f"; {released} of its exports made retryable" if released else "",
        )
        dead.append(activity)
    return dead
