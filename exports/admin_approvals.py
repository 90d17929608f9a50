"""Approving and rejecting pending exports in the admin.

Bulk actions on the pending-export changelist and Approve/Reject buttons on a pending
export's page both lead to one confirmation page that shows every change as
before → after and asks for a reason (required to reject). Decisions go through
:func:`exports.approval.decide`, which records the approver, the time and the reason,
and writes the audit trail. Only users with ``exports.approve_pendingexport`` (the
"Approvers" group) see the actions and buttons.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from exports.approval import APPROVE_PERMISSION, decide
from exports.choices import ApprovalState
from exports.models import PendingExport

TEMPLATE = "admin/exports/pendingexport/decide.html"


def _awaiting(queryset: QuerySet) -> QuerySet:
    return (
        queryset.filter(approval=ApprovalState.AWAITING_APPROVAL)
        .select_related("connected_system", "cs_object")
        .prefetch_related("attribute_changes")
        .order_by("connected_system__name", "pk")
    )


class ApprovalAdminMixin:
    """For :class:`~exports.admin.PendingExportAdmin`."""

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
        awaiting = PendingExport.objects.filter(
            pk=object_id if str(object_id).isdigit() else None,
            approval=ApprovalState.AWAITING_APPROVAL,
        ).exists()
        extra_context = {
            **(extra_context or {}),
            "can_decide": awaiting and self.has_approve_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def _decide(
        self, request: HttpRequest, queryset: QuerySet, *, approve: bool, via_action: str
    ) -> HttpResponse | None:
        if not self.has_approve_permission(request):
            raise PermissionDenied
        exports = list(_awaiting(queryset))
        reason = request.POST.get("reason", "").strip()
        error = ""
        if request.method == "POST" and request.POST.get("confirm"):
            if not approve and not reason:
                error = "Give a reason for the rejection."
            else:
                decided = decide(exports, request.user, approve=approve, reason=reason)
                verb = "Approved" if approve else "Rejected"
                skipped = len(queryset) - len(decided)
                note = f" ({skipped} not awaiting approval, left alone)" if skipped > 0 else ""
                messages.success(request, f"{verb} {len(decided)} pending export(s){note}.")
                return None
        if not exports:
            messages.warning(request, "None of the selected pending exports awaits approval.")
            return None
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": ("Approve" if approve else "Reject") + " pending exports",
            "opts": PendingExport._meta,
            "exports": exports,
            "approve": approve,
            "reason": reason,
            "error": error,
            "via_action": via_action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, TEMPLATE, context)
