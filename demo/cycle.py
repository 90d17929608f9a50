"""The demo in the database: its configuration, its admin user, its first cycle.

Works on whatever database Django is set up with (``python -m demo``: SQLite in the
project folder; the tests: PostgreSQL). The first cycle runs each run profile to its
end in this process through :mod:`runs.runner`, as ``jim run`` does:

    HR Full Import → HR Full Sync → Directory Export → Directory Full Import
    (the confirming import) → Directory Full Sync
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model

from connectors.choices import ActivityStatus
from connectors.models import ConnectedSystem, ConnectorSpaceObject, RunProfile
from demo.directory import Target
from jim_project.configuration import Report, apply_file
from runs.runner import ProgressCallback, activity_summary, execute, start_activity
from runs.tasks import recover_stale_activities

DIRECTORY = "Directory"
FIRST_CYCLE = (
    ("HR", "Full Import"),
    ("HR", "Full Sync"),
    (DIRECTORY, "Export"),
    (DIRECTORY, "Full Import"),
    (DIRECTORY, "Full Sync"),
)
ADMIN_USERNAME = "admin"
INITIATED_BY = "make demo"


def known_directory() -> dict[str, bool]:
    """Which kind of target (``ldap``/``csv``) JIM's database holds objects of.

    The demo keeps its target's data only then: a directory JIM has no connector space
    for would be full of entries it did not provision (its first export would fail on
    every one of them).
    """
    system = ConnectedSystem.objects.filter(name=DIRECTORY).first()
    if system is None:
        return {}
    has_objects = ConnectorSpaceObject.objects.filter(connected_system=system).exists()
    return {system.connector: has_objects}


def forget_directory() -> None:
    """Delete the stored Directory system — its connector space, activities, pending
    exports and sync rules — when the target starts empty; the configuration makes it
    again, and the next sync provisions everyone to the new target."""
    for system in ConnectedSystem.objects.filter(name=DIRECTORY):
        system.delete()


def apply_configuration(target: Target, environ: dict[str, str]) -> Report:
    """``jim apply`` of the target's configuration file (idempotent: by name)."""
    return apply_file(str(target.config), environ={**environ, **target.variables})


def recover_interrupted_runs() -> list[int]:
    """Mark failed the activities a demo stopped in its tracks left "in progress" (their
    process is gone: :func:`runs.tasks.recover_stale_activities`, which also makes
    their exports retryable)."""
    return recover_stale_activities("the demo started")


def ensure_admin(password: str | None = None) -> tuple[str, str]:
    """Create the superuser ``admin``, or give the existing one a new password.

    Returns the user name and the password (a new random one unless given).
    """
    password = password or secrets.token_urlsafe(9)
    users = get_user_model()
    user = users.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        users.objects.create_superuser(ADMIN_USERNAME, "admin@example.org", password)
    else:
        user.is_active = user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
    return ADMIN_USERNAME, password


def run_profile(
    system: str, profile: str, *, on_progress: ProgressCallback | None = None
) -> dict[str, Any]:
    """Run one run profile to its end, as ``jim run SYSTEM PROFILE`` does; its summary
    (:func:`runs.runner.activity_summary`)."""
    run = RunProfile.objects.select_related("connected_system").get(
        connected_system__name=system, name=profile
    )
    activity = start_activity(run.connected_system, run, initiated_by_name=INITIATED_BY)
    return activity_summary(execute(activity, on_progress=on_progress))


def first_cycle(
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """Run :data:`FIRST_CYCLE`, calling ``on_step`` with each run's summary.

    A run that completes with errors (the HR file's duplicates and its malformed row)
    does not stop the cycle; one that fails does.
    """
    summaries = []
    for system, profile in FIRST_CYCLE:
        summary = run_profile(system, profile, on_progress=on_progress)
        summaries.append(summary)
        if on_step is not None:
            on_step(summary)
        if summary["status"] not in (ActivityStatus.COMPLETE, ActivityStatus.COMPLETE_WITH_ERRORS):
            break
    return summaries


def describe(summary: dict[str, Any]) -> list[str]:
    """A run's summary in a few lines: what it did, and its errors by type."""
    status = str(summary["status"]).replace("_", " ")
    counts = ", ".join(
        f"{name.replace('_', ' ')} {count:,}"
        for name, count in summary["counts"].items()
        if count and name != "errors"
    )
    lines = [
        f"#{summary['activity']} {summary['system']} — {summary['profile']}: {status}; "
        f"{summary['objects_processed']:,} objects" + (f": {counts}" if counts else "")
    ]
    if summary["counts"]["errors"]:
        kinds = Counter(error["error_type"] for error in summary["errors"])
        lines.append(
            f"  {summary['counts']['errors']:,} errors: "
            + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common())
        )
        lines.extend(f"    {error['message']}" for error in summary["errors"][:3])
    if summary["message"]:
        lines.append(f"  {summary['message']}")
    return lines
