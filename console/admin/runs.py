"""Running profiles from the admin: a "Run" action and buttons that queue runs.

Runs are handed to the django-q2 cluster (:func:`runs.tasks.queue_run`), the
same code ``jim queue`` and schedules use; the administrator lands on the activity's
live page. Only users with the ``connectors.run_runprofile`` permission may run.
Beside each Run button of an import or a sync, a Preview button queues a preview of
it (:mod:`runs.preview`: the run, taken back; its page shows what it would do).

A failed activity's admin page offers "Run again, allowing these deletions / changes"
when the run stopped at a threshold, to users who may override one
(:mod:`runs.threshold_override`); the button posts to the console's view.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from access.roles import RUN_PERMISSION
from audit.context import from_request
from audit.models import Via
from connectors.models import Activity, RunProfile
from runs.preview import PREVIEWABLE, NotPreviewable
from runs.tasks import queue_run
from runs.threshold_override import can_override, offered_override


def can_run(request: HttpRequest) -> bool:
    return request.user.has_perm(RUN_PERMISSION)


def queue_from_admin(request: HttpRequest, profile: RunProfile, preview: bool = False) -> Activity:
    """Queue a run (or a preview: :class:`NotPreviewable` for an export run) and say so."""
    with from_request(request, Via.ADMIN):  # the audit trail's "run started"
        activity = queue_run(profile, user=request.user, preview=preview)
    messages.success(
        request,
        format_html(
            'Queued {}{} of {} as <a href="{}">activity {}</a>; a worker (qcluster) runs it.',
            "a preview (nothing will be changed) of " if preview else "",
            profile.name,
            profile.connected_system.name,
            reverse("console:activity", args=[activity.pk]),
            activity.pk,
        ),
    )
    return activity


class RunProfileRunMixin:
    """For :class:`~console.admin.connectors.RunProfileAdmin`: the Run action and button."""

    actions = ["run_selected"]

    @admin.action(description="Run the selected run profiles", permissions=["run"])
    def run_selected(self, request: HttpRequest, queryset: Any) -> None:
        for profile in queryset.select_related("connected_system"):
            queue_from_admin(request, profile)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return can_run(request)

    def get_urls(self) -> list:
        urls = super().get_urls()  # type: ignore[misc]
        own = [
            path(
                "<int:profile_id>/run/",
                self.admin_site.admin_view(require_POST(self.run_view)),  # type: ignore[attr-defined]
                name="connectors_runprofile_run",
            ),
            path(
                "<int:profile_id>/preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),  # type: ignore[attr-defined]
                name="connectors_runprofile_preview",
            ),
        ]
        return own + urls

    def run_view(self, request: HttpRequest, profile_id: int) -> HttpResponse:
        """POST: queue one run and go to its live page."""
        if not can_run(request):
            raise PermissionDenied
        profile = get_object_or_404(
            RunProfile.objects.select_related("connected_system"), pk=profile_id
        )
        activity = queue_from_admin(request, profile)
        return HttpResponseRedirect(reverse("console:activity", args=[activity.pk]))

    def preview_view(self, request: HttpRequest, profile_id: int) -> HttpResponse:
        """POST: queue one preview and go to its live page; an export run is refused
        (back to the profile's page, with why)."""
        if not can_run(request):
            raise PermissionDenied
        profile = get_object_or_404(
            RunProfile.objects.select_related("connected_system"), pk=profile_id
        )
        try:
            activity = queue_from_admin(request, profile, preview=True)
        except NotPreviewable as refusal:
            messages.error(request, str(refusal))
            return HttpResponseRedirect(
                reverse("admin:connectors_runprofile_change", args=[profile.pk])
            )
        return HttpResponseRedirect(reverse("console:activity", args=[activity.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_run": can_run(request),
            "previewable_types": PREVIEWABLE,
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class ConnectedSystemRunMixin:
    """For :class:`~console.admin.connectors.ConnectedSystemAdmin`: a Run button per profile."""

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # A path that is not an id (the admin answers "doesn't exist") has no profiles.
        profiles = (
            RunProfile.objects.filter(connected_system_id=object_id).order_by("name")
            if str(object_id).isdigit()
            else RunProfile.objects.none()
        )
        extra_context = {
            **(extra_context or {}),
            "can_run": can_run(request),
            "run_profiles": [
                (
                    p,
                    reverse("admin:connectors_runprofile_run", args=[p.pk]),
                    reverse("admin:connectors_runprofile_preview", args=[p.pk])
                    if p.profile_type in PREVIEWABLE
                    else "",
                )
                for p in profiles
            ],
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class ActivityOverrideMixin:
    """For :class:`~console.admin.connectors.ActivityAdmin`: the threshold override button."""

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        activity = (
            Activity.objects.filter(pk=object_id).first()
            if str(object_id).isdigit() and can_override(request.user)
            else None
        )
        extra_context = {
            **(extra_context or {}),
            # A preview changed nothing: "run again" would run it for real.
            "override": offered_override(activity)
            if activity is not None and not activity.preview
            else None,
        }
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
