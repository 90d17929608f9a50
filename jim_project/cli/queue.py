"""`jim queue SYSTEM PROFILE [--preview]`: hand a run to the django-q2 cluster (spec: the
`jim` command).

Prints the new activity's id alone on its line; follow it with ``jim activity ID``. An
export run cannot be previewed: exit 2, and nothing is queued.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from jim_project.cli.run import (
    EXIT_FAILED,
    EXIT_OK,
    RunCommand,
    add_run_arguments,
    os_user,
    run_flags,
)
from runs.preview import NotPreviewable
from runs.tasks import queue_run


class QueueCommand:
    name = "queue"
    help = "Queue a run profile for the django-q2 cluster; prints the activity id."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser)

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        profile = RunCommand._profile(options["system"], options["profile"], stderr)
        if profile is None:
            return EXIT_FAILED
        try:
            activity = queue_run(
                profile,
                initiated_by_name=f"{os_user()} (jim queue)",
                **run_flags(options),
            )
        except NotPreviewable as exc:
            stderr.write(f"jim: {exc}\n")
            return EXIT_FAILED
        stdout.write(f"{activity.pk}\n")
        return EXIT_OK
