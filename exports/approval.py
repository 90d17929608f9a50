"""Approvals: which pending exports need a person (the system's policy), and the
decisions of the people allowed to make them (the "Approvers" group), each recorded on
an audit trail that the admin cannot edit.

Each decision is written twice, in its transaction: on the export's own
:class:`~exports.models.ApprovalAuditEntry` (what the export was: its changes, its
target — kept when the export is gone, shown on the export's page) and on the general
audit trail (:mod:`audit`: one entry per export, ``approved`` or ``rejected``, with the
reason, the door and the address), which is the one trail an Administrator browses
and filters beside configuration changes and runs started. A system with separation
of duties refuses approvals by the people whose run or configuration produced the
export (:mod:`exports.separation`).

The approval's changes are the lifecycle's (:func:`exports.lifecycle.approve`,
:func:`exports.lifecycle.reject`). A rejected export is never sent. It stays, rejected
and visible, while sync keeps computing the same change; when the change JIM wants
differs, sync replaces it and it awaits approval again. Rejecting a delete keeps the
account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from access.roles import APPROVE_PERMISSION
from audit.models import AuditEntry
from audit.recording import entry
from connectors.choices import ApprovalMode
from exports import lifecycle
from exports.choices import ApprovalAction, ApprovalState, PendingExportChangeType
from exports.models import ApprovalAuditEntry, PendingExport
from exports.separation import Conflict, conflicts, refusal_message

_NEEDS_APPROVAL: dict[str, frozenset[str]] = {
    ApprovalMode.NONE: frozenset(),
    ApprovalMode.DELETES: frozenset({PendingExportChangeType.DELETE}),
    ApprovalMode.CREATES_AND_DELETES: frozenset(
        {PendingExportChangeType.CREATE, PendingExportChangeType.DELETE}
    ),
    ApprovalMode.ALL: frozenset(
        {
            PendingExportChangeType.CREATE,
            PendingExportChangeType.UPDATE,
            PendingExportChangeType.DELETE,
        }
    ),
}


def initial_approval(approval_mode: str, change_type: str) -> str:
    """The approval state a new (or newly changed) pending export starts in."""
    if change_type in _NEEDS_APPROVAL.get(approval_mode, frozenset()):
        return ApprovalState.AWAITING_APPROVAL
    return ApprovalState.NOT_REQUIRED


class ApprovalDenied(PermissionError):
    """The user may not approve or reject pending exports."""


class SeparationOfDuties(ApprovalDenied):
    """The user may not approve these exports: their own run or configuration
    produced them (``conflicts`` says which, and why)."""

    def __init__(self, message: str, conflicts: list[Conflict]) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def can_approve(user: Any) -> bool:
    return bool(user and user.is_active and user.has_perm(APPROVE_PERMISSION))


def decide(
    pending_exports: Iterable[PendingExport],
    user: Any,
    *,
    approve: bool,
    reason: str = "",
) -> list[PendingExport]:
    """Approve or reject pending exports that await approval; returns those decided.

    Each decision records the approver, the time and the reason on the pending export
    and on both audit trails (see the module docstring). Exports not awaiting approval
    are left alone (so a bulk action over a mixed selection is safe). Raises
    :class:`ApprovalDenied` when the user lacks the approve permission, and
    :class:`SeparationOfDuties` — nothing approved — when some of the exports are ones
    the user may not approve (:mod:`exports.separation`).
    """
    if not can_approve(user):
        raise ApprovalDenied(f"{user} may not approve or reject pending exports")
    action = ApprovalAction.APPROVED if approve else ApprovalAction.REJECTED
    with transaction.atomic():
        decided = lifecycle.lock_awaiting_approval(pending_exports)
        if approve and (found := conflicts(decided, user)):
            raise SeparationOfDuties(refusal_message(found, user, total=len(decided)), found)
        (lifecycle.approve if approve else lifecycle.reject)(decided, user, reason)
        ApprovalAuditEntry.objects.bulk_create(
            [ApprovalAuditEntry.of(pe, user, action, reason) for pe in decided]
        )
        AuditEntry.objects.bulk_create(
            [
                export_entry(
                    pe,
                    user,
                    action,
                    reason,
                    approval=[ApprovalState.AWAITING_APPROVAL, pe.approval],
                )
                for pe in decided
            ]
        )
    return decided


def export_entry(pe: PendingExport, user: Any, action: str, reason: str, **changes: Any) -> Any:
    """The general audit trail's (unsaved) entry for what ``user`` did to ``pe``
    (``action``: an :class:`~exports.choices.ApprovalAction`, the same word there)."""
    return entry(
        user,
        action,
        pe,
        changes=changes,
        reason=reason,
        object_repr=f"{pe.connected_system.name} {pe.change_type} {pe.target}",
    )
