"""`jim queue SYSTEM PROFILE`: hand a run to the django-q2 cluster (spec: the `jim` command).

Prints the new activity's id alone on its line; follow it with ``jim activity ID``.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from jim_project.cli.run import (
    EXIT_FAILED,
    EXIT_OK,
    RunCommand,
    add_threshold_arguments,
    os_user,
)
from runs.tasks import queue_run


class QueueCommand:
    name = "queue"
    help = "Queue a run profile for the django-q2 cluster; prints the activity id."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("system", help="The connected system's name.")
        parser.add_argument("profile", help="The run profile's name.")
        add_threshold_arguments(parser)

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        profile = RunCommand._profile(options["system"], options["profile"], stderr)
        if profile is None:
            return EXIT_FAILED
        activity = queue_run(
            profile,
            initiated_by_name=f"{os_user()} (jim queue)",
            allow_deletions=bool(options.get("allow_deletions")),
            allow_changes=bool(options.get("allow_changes")),
        )
        stdout.write(f"{activity.pk}\n")
        return EXIT_OK
