"""Approvals: which pending exports need a person (the system's policy), and the
decisions of the people allowed to make them (the "Approvers" group), each recorded on
an audit trail that the admin cannot edit.

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
from connectors.choices import ApprovalMode
from exports import lifecycle
from exports.choices import ApprovalAction, ApprovalState, PendingExportChangeType
from exports.models import ApprovalAuditEntry, PendingExport

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
    and on the audit trail. Exports not awaiting approval are left alone (so a bulk
    action over a mixed selection is safe). Raises :class:`ApprovalDenied` when the
    user lacks the approve permission.
    """
    if not can_approve(user):
        raise ApprovalDenied(f"{user} may not approve or reject pending exports")
    action = ApprovalAction.APPROVED if approve else ApprovalAction.REJECTED
    with transaction.atomic():
        decided = lifecycle.lock_awaiting_approval(pending_exports)
        (lifecycle.approve if approve else lifecycle.reject)(decided, user, reason)
        ApprovalAuditEntry.objects.bulk_create(
            [ApprovalAuditEntry.of(pe, user, action, reason) for pe in decided]
        )
    return decided
