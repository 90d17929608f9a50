"""`jim housekeeping`: remove what is past its retention now (runs/housekeeping.py)."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from jim_project.cli.run import EXIT_FAILED, EXIT_OK
from runs.housekeeping import run_housekeeping


class HousekeepingCommand:
    name = "housekeeping"
    help = "Remove previews, value history and export records past their retention."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print rows removed as JSON.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        removed = run_housekeeping()
        if options.get("json"):
            stdout.write(json.dumps(removed) + "\n")
        else:
            for name, count in removed.items():
                stdout.write(f"{name}: {'failed (see the log)' if count < 0 else count}\n")
        failed = [name for name, count in removed.items() if count < 0]
        if failed:
            stderr.write(f"Pruning failed for: {', '.join(failed)}\n")
            return EXIT_FAILED
        return EXIT_OK
