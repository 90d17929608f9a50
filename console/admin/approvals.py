"""Approving and rejecting pending exports in the admin.

Bulk actions on the pending-export changelist and Approve/Reject buttons on a pending
export's page both lead to one confirmation page (:mod:`console.admin.confirmation`)
that tells each export's whole story (:mod:`console.approval_story`: who, what, why,
what happens after) and asks for a reason (required to reject).
Decisions go through :func:`exports.approval.decide`, which records the approver, the
time and the reason, and writes the audit trail. Only users with
``exports.approve_pendingexport`` (the "Approvers" group) see the actions and buttons.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.text import capfirst

from audit.context import from_request
from audit.models import Via
from console.admin.confirmation import ExportAction, confirm
from console.approval_story import export_stories
from exports.approval import APPROVE_PERMISSION, ApprovalDenied, decide
from exports.choices import ApprovalState
from exports.models import PendingExport


def _awaiting(queryset: QuerySet) -> QuerySet:
    return queryset.filter(approval=ApprovalState.AWAITING_APPROVAL)


APPROVE = ExportAction(
    label="Approve",
    done="Approved",
    intro="Approving sends these changes at the next export run.",
    eligible=_awaiting,
    perform=lambda exports, user, reason: decide(exports, user, approve=True, reason=reason),
    not_eligible="awaiting approval",
)
REJECT = ExportAction(
    label="Reject",
    done="Rejected",
    intro="Rejected changes are never sent; they stay visible, rejected, while JIM keeps "
    "wanting the same change.",
    eligible=_awaiting,
    perform=lambda exports, user, reason: decide(exports, user, approve=False, reason=reason),
    not_eligible="awaiting approval",
    reason_required="Give a reason for the rejection.",
)


class ApprovalAdminMixin:
    """For :class:`~console.admin.exports.PendingExportAdmin`."""

    actions = ["approve_selected", "reject_selected"]

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.action(description="Approve selected pending exports…", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, approve=True, via_action="approve_selected")

    @admin.action(description="Reject selected pending exports…", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._decide(request, queryset, approve=False, via_action="reject_selected")

    def get_urls(self) -> list:
        urls = super().get_urls()  # type: ignore[misc]
        view = self.admin_site.admin_view(self.decide_view)  # type: ignore[attr-defined]
        return [
            path(
                "<int:pk>/approve/", view, {"approve": True}, name="exports_pendingexport_approve"
            ),
            path("<int:pk>/reject/", view, {"approve": False}, name="exports_pendingexport_reject"),
            *urls,
        ]

    def decide_view(self, request: HttpRequest, pk: int, approve: bool) -> HttpResponse:
        """One pending export, from the Approve / Reject buttons of its page."""
        if not self.has_approve_permission(request):
            raise PermissionDenied
        get_object_or_404(PendingExport, pk=pk)
        response = self._decide(
            request, PendingExport.objects.filter(pk=pk), approve=approve, via_action=""
        )
        return response or HttpResponseRedirect(
            reverse("admin:exports_pendingexport_change", args=[pk])
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        export = PendingExport.objects.filter(
            pk=object_id if str(object_id).isdigit() else None
        ).first()
        awaiting = export is not None and export.approval == ApprovalState.AWAITING_APPROVAL
        extra_context = {
            **(extra_context or {}),
            "can_decide": awaiting and self.has_approve_permission(request),
            "story": export_stories([export])[0] if export is not None else None,
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def _decide(
        self, request: HttpRequest, queryset: QuerySet, *, approve: bool, via_action: str
    ) -> HttpResponse | None:
        if not self.has_approve_permission(request):
            raise PermissionDenied
        try:
            with from_request(request, Via.ADMIN):
                return confirm(self, request, queryset, APPROVE if approve else REJECT, via_action)
        except ApprovalDenied as exc:  # separation of duties
            messages.error(request, capfirst(str(exc)))
            return None
