"""The approval policy of a connected system: which pending exports need a person."""

from __future__ import annotations

from connectors.choices import ApprovalMode
from exports.choices import ApprovalState, PendingExportChangeType

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
