"""Run profiles (and running one), schedules (and running one now), activities and
their execution items (RPEIs).

A run is queued as the admin's Run button queues it (:func:`runs.tasks.queue_run`):
the django-q2 workers run it, and the answer is its activity, to follow at
``/api/v1/activities/{id}/`` until its status is no longer ``queued`` or
``in_progress``. With ``"preview": true`` it is a preview (:mod:`runs.preview`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, F, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from access.roles import OVERRIDE_PERMISSION, RUN_PERMISSION
from api.errors import Conflict
from api.filters import ActivityFilter, ExecutionItemFilter, RunProfileFilter, ScheduleFilter
from api.pagination import NewestFirstCursorPagination
from api.permissions import refusal, requires
from api.serializers.runs import (
    ActivitySerializer,
    ExecutionItemSerializer,
    RunProfileSerializer,
    RunRequestSerializer,
    ScheduleRunSerializer,
    ScheduleSerializer,
)
from api.views.base import ReadOnlyViewSet
from connectors.models import Activity, RunProfile, RunProfileExecutionItem, Schedule
from runs.models import PreviewedExport, PreviewEffect
from runs.preview import NotPreviewable
from runs.tasks import queue_run, run_schedule_now


def activities() -> QuerySet:
    """Activities with their system's name and, for a preview, how many pending exports
    it would create, change and remove (``previewed_created``, …): a subquery each,
    run for the rows of the page only."""
    return Activity.objects.annotate(
        connected_system_name=F("connected_system__name"),
        **{f"previewed_{effect}": _previewed(effect) for effect in PreviewEffect},
    )


def _previewed(effect: str) -> Coalesce:
    counted = (
        PreviewedExport.objects.filter(activity=OuterRef("pk"), effect=effect)
        .order_by()
        .values("activity")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class RunProfileViewSet(ReadOnlyViewSet):
    """Run profiles: the steps that move data (full or delta import, full or delta
    sync, export) of a connected system."""

    queryset = RunProfile.objects.annotate(connected_system_name=F("connected_system__name"))
    serializer_class = RunProfileSerializer
    filterset_class = RunProfileFilter

    @extend_schema(
        summary="Queue a run",
        description="Queues a run of this run profile for the workers and answers its "
        "activity (status 'queued'); follow it at /api/v1/activities/{id}/. A run waits "
        'while its system (or, for a sync, another sync) is busy. With "preview": true '
        "in the body it is a preview: the import or sync runs and is rolled back, "
        "changing nothing, and its activity ('preview': true) records what it would have "
        "done — counts, execution items, and the pending exports it would create, change "
        "or remove (pending_exports, listed at /api/v1/activities/{id}/previewed-exports/). "
        "An export run cannot be previewed: 409, naming why. Needs "
        "connectors.run_runprofile (a preview too); allow_deletions and allow_changes "
        "need connectors.override_threshold too.",
        request=RunRequestSerializer,
        responses={202: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires(RUN_PERMISSION, "Running a run profile")],
    )
    def run(self, request: Any, pk: str | None = None) -> Response:
        profile = self.get_object()
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        lifting = body.validated_data["allow_deletions"] or body.validated_data["allow_changes"]
        if lifting and not request.user.has_perm(OVERRIDE_PERMISSION):
            raise exceptions.PermissionDenied(
                refusal("Letting a run exceed its system's thresholds", OVERRIDE_PERMISSION)
            )
        try:
            queued = queue_run(profile, user=request.user, **body.validated_data)
        except NotPreviewable as exc:
            raise Conflict(str(exc)) from None
        url = reverse("api:activity-detail", args=[queued.pk])
        return Response(
            ActivitySerializer(activities().get(pk=queued.pk)).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )


class ScheduleViewSet(ReadOnlyViewSet):
    """Schedules: run profiles run in order on a cron."""

    queryset = Schedule.objects.prefetch_related("steps")
    serializer_class = ScheduleSerializer
    filterset_class = ScheduleFilter

    @extend_schema(
        summary="Run a schedule now",
        description="Hands the schedule to the workers now (enabled or not): its first step "
        "is queued at once (first_activity), then the workers run the steps in order, each "
        "as an activity listed at /api/v1/activities/?schedule={id}, started by you. A "
        "schedule without steps is a 409. Needs connectors.run_runprofile.",
        request=None,
        responses={202: ScheduleRunSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires(RUN_PERMISSION, "Running a schedule")],
    )
    def run(self, request: Any, pk: str | None = None) -> Response:
        schedule = self.get_object()
        first = run_schedule_now(schedule, request.user)
        answer = {
            "schedule": schedule.pk,
            "task_id": first.task_id,
            "first_activity": first.pk,
            "activities": f"{reverse('api:activity-list')}?schedule={schedule.pk}",
        }
        return Response(ScheduleRunSerializer(answer).data, status=status.HTTP_202_ACCEPTED)


class ActivityViewSet(ReadOnlyViewSet):
    """Activities: the runs of run profiles, queued, running or finished, newest first,
    previews among them (``?preview=true``). Their execution items are at
    /api/v1/execution-items/?activity={id}; a preview's pending exports at
    /api/v1/activities/{id}/previewed-exports/."""

    queryset = activities()
    serializer_class = ActivitySerializer
    filterset_class = ActivityFilter
    pagination_class = NewestFirstCursorPagination


class ExecutionItemViewSet(ReadOnlyViewSet):
    """Execution items (RPEIs): what a run did to each object it touched, or the error
    it met on it."""

    queryset = RunProfileExecutionItem.objects.all()
    serializer_class = ExecutionItemSerializer
    filterset_class = ExecutionItemFilter
    pagination_class = NewestFirstCursorPagination
