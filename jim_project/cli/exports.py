"""`jim pending-exports`, `jim approve`, `jim reject`, `jim retry` and `jim discard`
(spec: the `jim` command).

Exit status: 0 done (or nothing to do); 2 refused — an unknown system, user or
pending export id, a named export the command does not apply to, a user without the
permission, a discard without a reason or while a sync runs — and then nothing was done.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from connectors.models import ConnectedSystem
from exports.approval import ApprovalDenied, decide
from exports.choices import ApprovalState, PendingExportStatus
from exports.intervention import (
    InterventionDenied,
    InterventionRefused,
    discard,
    not_failed,
    refusal,
    retry,
)
from exports.models import PendingExport

EXIT_OK = 0
EXIT_FAILED = 2


def _exports(system_name: str | None):
    exports = PendingExport.objects.select_related("connected_system", "cs_object").order_by("pk")
    if system_name:
        exports = exports.filter(connected_system__name=system_name)
    return exports


def pending_export_json(pe: PendingExport) -> dict[str, Any]:
    """One pending export in the spec's JSON form, and its ``last_error`` (JIM's own)."""
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
        "last_error": pe.last_error,
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
            if pe.status == PendingExportStatus.FAILED and pe.last_error:
                stdout.write(f"        last error: {pe.last_error}\n")
        if not count:
            stdout.write("No pending exports.\n")
        return EXIT_OK


class _ExportsActionCommand:
    """What ``jim approve``, ``reject``, ``retry`` and ``discard`` share: the exports
    named by id or ``--all`` (of ``--system``), done by ``--user``, with a reason.

    Named ids must all exist (and be :meth:`eligible`); otherwise nothing is done and
    the command exits 2 naming them.
    """

    #: What ``--all`` covers, for its help.
    all_help: str
    user_help: str
    reason_required = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, metavar="ID", help="Pending export ids.")
        parser.add_argument("--all", action="store_true", help=self.all_help)
        parser.add_argument("--system", help="Only this connected system's exports.")
        parser.add_argument("--user", required=True, help=self.user_help)
        parser.add_argument(
            "--reason",
            default="",
            required=self.reason_required,
            help="Why (kept on the audit trail)" + (", required." if self.reason_required else "."),
        )

    def handle(self, options: dict[str, Any], stdout: TextIO, stderr: TextIO) -> int:
        ids, everything = options.get("ids") or [], options.get("all")
        if bool(ids) == bool(everything):
            stderr.write("jim: give pending export ids or --all (not both)\n")
            return EXIT_FAILED
        system = options.get("system")
        if not _check_system(system, stderr):
            return EXIT_FAILED
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            stderr.write(f"jim: no user named {options['user']!r}\n")
            return EXIT_FAILED
        exports = self.eligible(_exports(system))
        if ids:
            named = _exports(system).filter(pk__in=ids)
            missing = set(ids) - set(named.values_list("pk", flat=True))
            if missing:
                where = f" in {system}" if system else ""
                stderr.write(
                    f"jim: no pending export {', '.join(map(str, sorted(missing)))}{where}; "
                    "nothing was done\n"
                )
                return EXIT_FAILED
            refused = self.refusals(named)
            if refused:
                for problem in refused:
                    stderr.write(f"jim: {problem}\n")
                stderr.write("jim: nothing was done\n")
                return EXIT_FAILED
            exports = exports.filter(pk__in=ids)
        return self.act(list(exports), user, options.get("reason") or "", stdout, stderr)

    def eligible(self, exports: QuerySet) -> QuerySet:
        raise NotImplementedError

    def refusals(self, named: QuerySet) -> list[str]:
        """Why some of the named exports cannot be acted on (none by default: the
        action leaves ineligible ones alone)."""
        return []

    def act(
        self, exports: list[PendingExport], user: Any, reason: str, stdout: TextIO, stderr: TextIO
    ) -> int:
        raise NotImplementedError


class _DecisionCommand(_ExportsActionCommand):
    approve: bool
    all_help = "Every pending export awaiting approval."
    user_help = "Who decides (a user with approve rights)."

    def eligible(self, exports: QuerySet) -> QuerySet:
        return exports.filter(approval=ApprovalState.AWAITING_APPROVAL)

    def act(
        self, exports: list[PendingExport], user: Any, reason: str, stdout: TextIO, stderr: TextIO
    ) -> int:
        try:
            decided = decide(exports, user, approve=self.approve, reason=reason)
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


class _InterventionCommand(_ExportsActionCommand):
    """``jim retry`` and ``jim discard``: failed exports only; a named export that is
    not failed is refused by name."""

    all_help = "Every failed pending export."
    user_help = "Who does it (a user with the exports.intervene_pendingexport permission)."

    def eligible(self, exports: QuerySet) -> QuerySet:
        return exports.filter(status=PendingExportStatus.FAILED)

    def refusals(self, named: QuerySet) -> list[str]:
        return [refusal(pe) for pe in not_failed(named)]

    def act(
        self, exports: list[PendingExport], user: Any, reason: str, stdout: TextIO, stderr: TextIO
    ) -> int:
        try:
            done = self.intervene(exports, user, reason)
        except (InterventionDenied, InterventionRefused) as exc:
            stderr.write(f"jim: {exc}; nothing was done\n")
            return EXIT_FAILED
        if not done:
            stdout.write("No failed pending exports.\n")
            return EXIT_OK
        for pe in done:
            stdout.write(
                f"{pe.pk:>6}  {pe.connected_system.name:<16} {pe.change_type:<7} {pe.target}\n"
            )
        stdout.write(f"{self.summary(len(done))}\n")
        return EXIT_OK

    def intervene(self, exports: list[PendingExport], user: Any, reason: str) -> list:
        raise NotImplementedError

    def summary(self, count: int) -> str:
        raise NotImplementedError


class RetryCommand(_InterventionCommand):
    name = "retry"
    help = "Make failed pending exports executable again now (attempts and backoff reset)."

    def intervene(self, exports: list[PendingExport], user: Any, reason: str) -> list:
        return retry(exports, user, reason=reason)

    def summary(self, count: int) -> str:
        return f"Retried {count} pending export(s): the next export run sends them."


class DiscardCommand(_InterventionCommand):
    name = "discard"
    help = "Remove failed pending exports; the next sync evaluates those objects afresh."
    reason_required = True

    def intervene(self, exports: list[PendingExport], user: Any, reason: str) -> list:
        return discard(exports, user, reason=reason)

    def summary(self, count: int) -> str:
        return f"Discarded {count} pending export(s): the next sync evaluates their objects afresh."
