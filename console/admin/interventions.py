"""Retrying and discarding failed pending exports in the admin.

Bulk actions on the pending-export changelist (filter it by status "failed") and
Retry/Discard buttons on a failed export's page lead to the confirmation page of
:mod:`console.admin.confirmation`, which shows each export's last error and asks for
a reason (required to discard). The work is :mod:`exports.intervention`'s, which also
writes the audit trail. Only users with ``exports.intervene_pendingexport`` (and
superusers) see the actions and buttons; exports of the selection that are not
failed are left alone, each named with its status.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from audit.context import from_request
from audit.models import Via
from console.admin.confirmation import ExportAction, confirm
from exports.choices import PendingExportStatus
from exports.intervention import (
    INTERVENE_PERMISSION,
    InterventionRefused,
    discard,
    refusal,
    retry,
)
from exports.models import PendingExport


def _failed(queryset: QuerySet) -> QuerySet:
    return queryset.filter(status=PendingExportStatus.FAILED)


RETRY = ExportAction(
    label="Retry",
    done="Retried",
    intro="Retrying makes these exports executable again now: their attempts and backoff "
    "are reset and the next export run sends them.",
    eligible=_failed,
    perform=lambda exports, user, reason: retry(exports, user, reason=reason),
    not_eligible="failed",
    show_errors=True,
    refusal=refusal,
)
DISCARD = ExportAction(
    label="Discard",
    done="Discarded",
    intro="Discarding removes these exports (and the objects a failed create was to "
    "make): the next sync evaluates their metaverse objects afresh, and provisions them "
    "again while they are in scope.",
    eligible=_failed,
    perform=lambda exports, user, reason: discard(exports, user, reason=reason),
    not_eligible="failed",
    reason_required="Give a reason for discarding.",
    show_errors=True,
    refusal=refusal,
)


class InterventionAdminMixin:
    """For :class:`~console.admin.exports.PendingExportAdmin`."""

    actions = ["retry_selected", "discard_selected"]

    def has_intervene_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(INTERVENE_PERMISSION)

    @admin.action(description="Retry selected failed exports now…", permissions=["intervene"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._intervene(request, queryset, RETRY, via_action="retry_selected")

    @admin.action(description="Discard selected failed exports…", permissions=["intervene"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._intervene(request, queryset, DISCARD, via_action="discard_selected")

    def get_urls(self) -> list:
        urls = super().get_urls()  # type: ignore[misc]
        view = self.admin_site.admin_view(self.intervene_view)  # type: ignore[attr-defined]
        return [
            path(
                "<int:pk>/retry/", view, {"discarding": False}, name="exports_pendingexport_retry"
            ),
            path(
                "<int:pk>/discard/",
                view,
                {"discarding": True},
                name="exports_pendingexport_discard",
            ),
            *urls,
        ]

    def intervene_view(self, request: HttpRequest, pk: int, discarding: bool) -> HttpResponse:
        """One pending export, from the Retry / Discard buttons of its page."""
        if not self.has_intervene_permission(request):
            raise PermissionDenied
        get_object_or_404(PendingExport, pk=pk)
        action = DISCARD if discarding else RETRY
        response = self._intervene(request, PendingExport.objects.filter(pk=pk), action, "")
        if response is not None:
            return response
        if PendingExport.objects.filter(pk=pk).exists():
            return HttpResponseRedirect(reverse("admin:exports_pendingexport_change", args=[pk]))
        return HttpResponseRedirect(reverse("admin:exports_pendingexport_changelist"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        failed = PendingExport.objects.filter(
            pk=object_id if str(object_id).isdigit() else None, status=PendingExportStatus.FAILED
        ).exists()
        extra_context = {
            **(extra_context or {}),
            "can_intervene": failed and self.has_intervene_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def _intervene(
        self, request: HttpRequest, queryset: QuerySet, action: ExportAction, via_action: str
    ) -> HttpResponse | None:
        if not self.has_intervene_permission(request):
            raise PermissionDenied
        try:
            with from_request(request, Via.ADMIN):
                return confirm(self, request, queryset, action, via_action)
        except InterventionRefused as exc:
            messages.error(request, f"Nothing was done: {exc}.")
            return None
