"""`jim undo ACTIVITY`: roll back an export run (:mod:`exports.undo`).

Without ``--confirm`` it prints the plan — the inverse changes and the conflicts left
out — and changes nothing. With ``--confirm --user USERNAME`` it stages the inverse
pending exports through the system's approval policy; the next export run sends them.

Exit status: 0 planned or staged; 2 refused — an unknown activity or user, an activity
that is not an export run, one undone already, past retention or still running, a
system that is running, a user without the permission — and then nothing was done.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from django.contrib.auth import get_user_model

from connectors.models import Activity
from exports.undo import UndoDenied, UndoPlan, UndoRefused, plan_undo, stage_undo
from jim_project.cli.run import EXIT_FAILED, EXIT_OK


class UndoCommand:
    name = "undo"
    help = "Show how to roll back an export run; stage it with --confirm."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("activity", type=int, metavar="ACTIVITY", help="Export run id.")
        parser.add_argument(
            "--confirm", action="store_true", help="Stage the inverse pending exports."
        )
        parser.add_argument("--user", help="Who undoes it (with --confirm; an Administrator).")
        parser.add_argument("--reason", default="", help="Why (kept on the audit trail).")
        parser.add_argument("--json", action="store_true", help="Print the plan as JSON.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        activity = (
            Activity.objects.select_related("connected_system")
            .filter(pk=options["activity"])
            .first()
        )
        if activity is None:
            stderr.write(f"jim: no activity {options['activity']}\n")
            return EXIT_FAILED
        try:
            if options.get("confirm"):
                if not options.get("user"):
                    stderr.write("jim: --confirm needs --user (who undoes the run)\n")
                    return EXIT_FAILED
                user = get_user_model().objects.filter(username=options["user"]).first()
                if user is None:
                    stderr.write(f"jim: no user named {options['user']!r}; nothing was done\n")
                    return EXIT_FAILED
                plan = stage_undo(activity, user, options.get("reason") or "")
            else:
                plan = plan_undo(activity)
        except (UndoRefused, UndoDenied) as exc:
            stderr.write(f"jim: {exc}; nothing was done\n")
            return EXIT_FAILED
        if options.get("json"):
            stdout.write(json.dumps(plan.as_json(), default=str) + "\n")
        else:
            _print(plan, stdout, confirmed=bool(options.get("confirm")))
        return EXIT_OK


def _print(plan: UndoPlan, stdout: TextIO, *, confirmed: bool) -> None:
    activity = plan.activity
    stdout.write(
        f"Undo of export run #{activity.pk} ({activity.connected_system.name} — "
        f"{activity.profile_name}): {len(plan.inverse)} inverse change(s), "
        f"{len(plan.conflicts)} conflict(s)\n"
    )
    for item in plan.inverse:
        stdout.write(f"  {item.change_type:<7} {item.target}  (undoes the {item.undoes})\n")
        if item.dn and item.change_type == "update":
            stdout.write(f"          move back to {item.dn}\n")
        for c in item.changes:
            before = f"{c.previous_values!r} → " if c.previous_values else ""
            stdout.write(f"          {c.attribute}: {c.change_type} {before}{c.values!r}\n")
    if plan.conflicts:
        stdout.write("Left out (changed since the run; settle by hand):\n")
        for item in plan.conflicts:
            stdout.write(f"  {item.target}: {item.conflict}\n")
    if confirmed:
        for pe in plan.staged:
            stdout.write(f"Staged pending export #{pe.pk}: {pe.change_type} ({pe.approval})\n")
        stdout.write(f"Staged {len(plan.staged)} pending export(s); the next export sends them.\n")
    else:
        stdout.write(
            f"Nothing was changed. To stage them: jim undo {activity.pk} --confirm "
            "--user USERNAME [--reason TEXT]\n"
        )
