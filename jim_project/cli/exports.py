"""`jim pending-exports`, `jim approve` and `jim reject` (spec: the `jim` command)."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from django.contrib.auth import get_user_model

from connectors.models import ConnectedSystem
from exports.approval import ApprovalDenied, decide
from exports.choices import ApprovalState
from exports.models import PendingExport

EXIT_OK = 0
EXIT_FAILED = 2


def _exports(system_name: str | None):
    exports = PendingExport.objects.select_related("connected_system", "cs_object").order_by("pk")
    if system_name:
        exports = exports.filter(connected_system__name=system_name)
    return exports


def pending_export_json(pe: PendingExport) -> dict[str, Any]:
    """One pending export in the spec's JSON form."""
    cso = pe.cs_object
    return {
        "id": pe.pk,
        "system": pe.connected_system.name,
        "change_type": pe.change_type,
        "status": pe.status,
        "approval": pe.approval,
        "external_id": cso.external_id,
        "dn": pe.dn or cso.secondary_external_id,
        "error_count": pe.error_count,
        "attributes": [
            {
                "name": c.attribute,
                "change_type": c.change_type,
                "values": c.values,
                "status": c.status,
            }
            for c in pe.attribute_changes.all()
        ],
    }


def _check_system(name: str | None, stderr: TextIO) -> bool:
    if name and not ConnectedSystem.objects.filter(name=name).exists():
        stderr.write(f"jim: no connected system named {name!r}\n")
        return False
    return True


class PendingExportsCommand:
    name = "pending-exports"
    help = "List pending exports."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--system", help="Only this connected system's exports.")
        parser.add_argument("--json", action="store_true", help="Print a JSON list.")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        if not _check_system(options.get("system"), stderr):
            return EXIT_FAILED
        exports = _exports(options.get("system")).prefetch_related("attribute_changes")
        if options.get("json"):
            stdout.write(json.dumps([pending_export_json(pe) for pe in exports.iterator(2000)]))
            stdout.write("\n")
            return EXIT_OK
        count = 0
        for pe in exports.iterator(2000):
            count += 1
            target = pe.dn or pe.cs_object.secondary_external_id or pe.cs_object.external_id
            names = ", ".join(c.attribute for c in pe.attribute_changes.all())
            stdout.write(
                f"{pe.pk:>6}  {pe.connected_system.name:<16} {pe.change_type:<7} "
                f"{pe.status:<21} {pe.approval:<18} {target}  {names}\n"
            )
        if not count:
            stdout.write("No pending exports.\n")
        return EXIT_OK


class _DecisionCommand:
    approve: bool

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="Pending export ids.")
        parser.add_argument(
            "--all", action="store_true", help="Every pending export awaiting approval."
        )
        parser.add_argument("--system", help="Only this connected system's exports.")
        parser.add_argument(
            "--user", required=True, help="Who decides (a user with approve rights)."
        )
        parser.add_argument("--reason", default="", help="Why (kept on the audit trail).")

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        ids, everything = options.get("ids") or [], options.get("all")
        if bool(ids) == bool(everything):
            stderr.write("jim: give pending export ids or --all (not both)\n")
            return EXIT_FAILED
        if not _check_system(options.get("system"), stderr):
            return EXIT_FAILED
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            stderr.write(f"jim: no user named {options['user']!r}\n")
            return EXIT_FAILED
        exports = _exports(options.get("system")).filter(approval=ApprovalState.AWAITING_APPROVAL)
        if ids:
            missing = set(ids) - set(
                _exports(options.get("system")).filter(pk__in=ids).values_list("pk", flat=True)
            )
            if missing:
                stderr.write(f"jim: no pending export {', '.join(map(str, sorted(missing)))}\n")
                return EXIT_FAILED
            exports = exports.filter(pk__in=ids)
        try:
            decided = decide(exports, user, approve=self.approve, reason=options.get("reason", ""))
        except ApprovalDenied as exc:
            stderr.write(f"jim: {exc}\n")
            return EXIT_FAILED
        verb = "Approved" if self.approve else "Rejected"
        stdout.write(f"{verb} {len(decided)} pending export(s).\n")
        return EXIT_OK


class ApproveCommand(_DecisionCommand):
    name = "approve"
    help = "Approve pending exports awaiting approval."
    approve = True


class RejectCommand(_DecisionCommand):
    name = "reject"
    help = "Reject pending exports awaiting approval."
    approve = False
