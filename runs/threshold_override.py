"""Letting a run that stopped at a threshold through: the console's and the admin's
"Run again, allowing these deletions / changes".

A run that would delete or change more objects than its system's threshold fails with
a ``deletion_threshold_exceeded`` or ``change_threshold_exceeded`` RPEI (an import
whose source lost an attribute with ``attribute_lost``, lifted as a change) (the runner
records :class:`~connectors.activity.RunFailed`'s error type so). A user holding
:data:`OVERRIDE_PERMISSION` may queue the same run profile again with that threshold
lifted, as ``jim run --allow-deletions`` / ``--allow-changes`` would. The new
activity is the audit record: started by that user, ``overrides`` the failed one, its
``allow_*`` flags set.

The offer is made only on the most recent activity of its run profile: once anything
ran since (the re-run included), the failure no longer describes what a run would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from access.roles import OVERRIDE_PERMISSION
from connectors.choices import ActivityStatus, RpeiErrorType
from connectors.models import Activity
from runs.tasks import queue_run

#: The threshold error type → the flag that lifts it and what it allows.
_LIFTS = {
    RpeiErrorType.DELETION_THRESHOLD_EXCEEDED: ("allow_deletions", "deletions"),
    RpeiErrorType.CHANGE_THRESHOLD_EXCEEDED: ("allow_changes", "changes"),
    # an import refused because its source lost an attribute: lifted like a change
    RpeiErrorType.ATTRIBUTE_LOST: ("allow_changes", "changes"),
}


@dataclass(frozen=True)
class Override:
    """What re-running a failed activity would lift."""

    activity: Activity
    error_type: str

    @property
    def flag(self) -> str:
        return _LIFTS[self.error_type][0]

    @property
    def label(self) -> str:
        return f"Run again, allowing these {_LIFTS[self.error_type][1]}"


def can_override(user: Any) -> bool:
    return user.has_perm(OVERRIDE_PERMISSION)


def offered_override(activity: Activity) -> Override | None:
    """The override a failed activity offers: None unless it stopped at a threshold,
    and is the latest activity of a run profile that still exists (two queries, none
    for an activity that did not fail)."""
    if activity.status != ActivityStatus.FAILED or activity.run_profile_id is None:
        return None
    error_type = (
        activity.items.filter(error_type__in=list(_LIFTS))
        .values_list("error_type", flat=True)
        .first()
    )
    if error_type is None:
        return None
    later = Activity.objects.filter(
        run_profile_id=activity.run_profile_id, pk__gt=activity.pk, preview=False
    )
    if later.exists():
        return None
    return Override(activity, error_type)


def rerun_overriding(override: Override, user: Any) -> Activity:
    """Queue the failed activity's run profile again, that threshold lifted, by ``user``.

    Thresholds the failed run was already allowed to exceed stay lifted: a run let
    through its deletion threshold that then stopped at its change threshold needs both.
    """
    failed = override.activity
    allowed = {"allow_deletions": failed.allow_deletions, "allow_changes": failed.allow_changes}
    allowed[override.flag] = True
    return queue_run(failed.run_profile, user=user, overrides=failed, **allowed)


def audit_line(activity: Activity) -> str:
    """ "Allowed to exceed the change threshold by alice, re-running activity 12" — for
    any activity allowed past a threshold ('' for the others)."""
    lifted = [
        name
        for name, allowed in (
            ("deletion", activity.allow_deletions),
            ("change", activity.allow_changes),
        )
        if allowed
    ]
    if not lifted:
        return ""
    thresholds = " and ".join(lifted) + (" thresholds" if len(lifted) > 1 else " threshold")
    who = activity.initiated_by_name or str(activity.initiated_by or "") or "an unknown user"
    line = f"Allowed to exceed the {thresholds} by {who}"
    if activity.overrides_id is not None:
        line += f", re-running activity {activity.overrides_id}"
    return line
