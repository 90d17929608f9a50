"""`jim run` and `jim activity` (spec: the `jim` command).

``jim run SYSTEM PROFILE`` runs one run profile to its end in this process, with a
progress bar on stderr when stderr is a terminal. Exit status: 0 complete, 1 complete
with object-level errors, 2 failed (a lost database connection included: one line on
stderr, no traceback), cancelled or refused (unknown system or profile, already
running; an activity in the way whose process died is recorded as failed and does not
refuse the run). ``--json`` prints exactly one JSON object on stdout
(:func:`runs.runner.activity_summary`); messages go to stderr.

``jim activity ID`` shows an activity: its progress while it runs, the same summary
as ``jim run`` once it is done.
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from typing import Any, TextIO

from connectors.activity import ActivityRecorder
from connectors.choices import ActivityStatus
from connectors.models import Activity, ConnectedSystem, RunProfile
from runs.preview import NotPreviewable
from runs.runner import (
    AlreadyRunning,
    NotQueued,
    OutcomeNotRecorded,
    activity_summary,
    execute,
    refuse,
    start_activity,
)

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_FAILED = 2

EXIT_BY_STATUS = {
    ActivityStatus.COMPLETE: EXIT_OK,
    ActivityStatus.COMPLETE_WITH_ERRORS: EXIT_ERRORS,
}
#: Errors listed by the human-readable summary (``--json`` lists more).
SHOWN_ERRORS = 20


class ProgressBar:
    """A one-line progress bar redrawn on a terminal: at each new phase, and otherwise
    at most every ``interval`` seconds."""

    WIDTH = 30

    def __init__(self, stream: TextIO, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self._last = 0.0
        self._phase = ""
        self._drawn = False

    def __call__(self, recorder: ActivityRecorder) -> None:
        now = time.monotonic()
        if now - self._last < self.interval and recorder.phase == self._phase:
            return
        self._last, self._phase = now, recorder.phase
        self.stream.write("\r" + progress_line(recorder.phase, recorder.processed, recorder.total))
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * (self.WIDTH + 60) + "\r")
            self.stream.flush()


def progress_line(phase: str, processed: int, total: int | None) -> str:
    """``[#####.....]  45% 45,000/100,000 importing`` (no bar when the total is unknown)."""
    label = phase.replace("_", " ")
    if not total:
        return f"{processed:,} objects, {label}".ljust(ProgressBar.WIDTH + 40)
    fraction = min(processed / total, 1.0)
    filled = int(fraction * ProgressBar.WIDTH)
    bar = "#" * filled + "." * (ProgressBar.WIDTH - filled)
    return f"[{bar}] {fraction:4.0%} {processed:,}/{total:,} {label}".ljust(ProgressBar.WIDTH + 40)


def write_summary(summary: dict[str, Any], stdout: TextIO) -> None:
    """The human-readable form of an activity summary."""
    what = "Preview" if summary["preview"] else "Activity"
    stdout.write(
        f"{what} {summary['activity']}: {summary['system']} — {summary['profile']}: "
        f"{summary['status']}\n"
    )
    if summary["status"] in (ActivityStatus.QUEUED, ActivityStatus.IN_PROGRESS):
        total = summary["objects_total"]
        stdout.write(f"  {progress_line(summary['phase'], summary['objects_processed'], total)}\n")
    else:
        stdout.write(f"  objects processed: {summary['objects_processed']:,}\n")
    happened = ", ".join(f"{k} {v:,}" for k, v in summary["counts"].items() if v)
    stdout.write(f"  {happened or 'no changes'}\n")
    if summary["preview"]:
        exports = summary["pending_exports"]
        stdout.write(
            f"  pending exports: {exports['created']:,} would be created, "
            f"{exports['changed']:,} would change, {exports['removed']:,} would be removed\n"
            "  Nothing was changed: this was a preview.\n"
        )
    if summary["message"]:
        stdout.write(f"  {summary['message']}\n")
    errors = summary["errors"]
    for error in errors[:SHOWN_ERRORS]:
        who = f"{error['external_id']}: " if error["external_id"] else ""
        stdout.write(f"  {error['error_type']}: {who}{error['message']}\n")
    if summary["counts"]["errors"] > SHOWN_ERRORS:
        stdout.write(
            f"  … {summary['counts']['errors'] - SHOWN_ERRORS:,} more errors "
            f"(jim activity {summary['activity']} --json)\n"
        )


def _write_json(summary: dict[str, Any], stdout: TextIO) -> None:
    stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``jim run`` and ``jim queue`` take: the system and the run profile,
    ``--preview``, ``--allow-deletions`` and ``--allow-changes``."""
    parser.add_argument("system", help="The connected system's name.")
    parser.add_argument("profile", help="The run profile's name.")
    parser.add_argument(
        "--preview",
        action="store_true",
        help="Change nothing anywhere; record what the run would do.",
    )
    parser.add_argument(
        "--allow-deletions",
        action="store_true",
        help="Let a full import mark more objects obsolete than the deletion threshold.",
    )
    parser.add_argument(
        "--allow-changes",
        action="store_true",
        help="Let an import change one attribute on, or an export run update or "
        "deprovision, more objects than the change threshold.",
    )


def run_flags(options: dict[str, Any]) -> dict[str, bool]:
    """The arguments of :func:`add_run_arguments` a run is started with."""
    return {
        "allow_deletions": bool(options.get("allow_deletions")),
        "allow_changes": bool(options.get("allow_changes")),
        "preview": bool(options.get("preview")),
    }


class RunCommand:
    name = "run"
    help = "Run one run profile of a connected system to its end, in this process."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser)
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        profile = self._profile(options["system"], options["profile"], stderr)
        if profile is None:
            return EXIT_FAILED
        try:
            activity = start_activity(
                profile.connected_system,
                profile,
                initiated_by_name=f"{os_user()} (jim run)",
                **run_flags(options),
            )
        except NotPreviewable as exc:
            stderr.write(f"jim: {exc}\n")
            return EXIT_FAILED
        bar = ProgressBar(stderr) if _isatty(stderr) else None
        problem = ""
        unrecorded = False
        try:
            activity = execute(activity, on_progress=bar)
        except (AlreadyRunning, NotQueued) as exc:
            activity = refuse(activity, str(exc))
            problem = str(exc)
        except OutcomeNotRecorded as exc:
            activity, unrecorded = exc.activity, True
            problem = f"{activity.profile_name} of {profile.connected_system.name} failed: {exc}"
        except KeyboardInterrupt:
            activity.refresh_from_db()
            problem = "interrupted; the activity is recorded as cancelled"
        finally:
            if bar is not None:
                bar.clear()
        if not problem and activity.status == ActivityStatus.FAILED:
            problem = f"{activity.profile_name} of {profile.connected_system.name} failed: "
            problem += activity.message or "see the activity's errors"
        summary = activity_summary(activity, errors=[] if unrecorded else None)
        if options.get("json"):
            _write_json(summary, stdout)
        else:
            write_summary(summary, stdout)
        if problem:
            stderr.write(f"jim: {problem}\n")
        return EXIT_BY_STATUS.get(activity.status, EXIT_FAILED)

    @staticmethod
    def _profile(system_name: str, profile_name: str, stderr: TextIO) -> RunProfile | None:
        system = ConnectedSystem.objects.filter(name=system_name).first()
        if system is None:
            known = ", ".join(ConnectedSystem.objects.values_list("name", flat=True)) or "none"
            stderr.write(f"jim: no connected system named {system_name!r} (known: {known})\n")
            return None
        profile = (
            RunProfile.objects.select_related("connected_system")
            .filter(connected_system=system, name=profile_name)
            .first()
        )
        if profile is None:
            known = ", ".join(system.run_profiles.values_list("name", flat=True)) or "none"
            stderr.write(
                f"jim: {system_name} has no run profile named {profile_name!r} (known: {known})\n"
            )
        return profile


class ActivityCommand:
    name = "activity"
    help = "Show an activity: its progress while it runs, its outcome when done."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("id", type=int, help="The activity's id.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        activity = (
            Activity.objects.select_related("connected_system").filter(pk=options["id"]).first()
        )
        if activity is None:
            stderr.write(f"jim: no activity {options['id']}\n")
            return EXIT_FAILED
        summary = activity_summary(activity)
        if options.get("json"):
            _write_json(summary, stdout)
        else:
            write_summary(summary, stdout)
        return EXIT_OK


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def os_user() -> str:
    """Who runs this process, as the OS knows them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown user"
