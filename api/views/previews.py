"""Previews through the API: the pending exports a preview would create, change or
remove (``/api/v1/activities/{id}/previewed-exports/``), and the answer of a what-if
on one object (the ``what-if`` actions of :mod:`api.views.objects`).

A preview run is queued as a run is, with ``"preview": true``
(:mod:`api.views.runs`); its activity is read as any other, with ``preview`` and the
``pending_exports`` counts.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import F, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, generics, status
from rest_framework.response import Response

from api.errors import Conflict
from api.filters import PreviewedExportFilter
from api.pagination import NewestFirstCursorPagination
from api.permissions import requires
from api.serializers.previews import PreviewedExportSerializer, WhatIfSerializer
from api.views.base import MAX_ID, ApiViewMixin
from api.views.runs import activities
from connectors.models import Activity
from runs.models import PreviewedExport
from runs.runner import AlreadyRunning

#: Reading what a preview would export needs what reading pending exports needs.
VIEW_EXPORTS = "exports.view_pendingexport"
VIEW_ACTIVITIES = "connectors.view_activity"


def previewed_exports() -> QuerySet:
    return PreviewedExport.objects.annotate(connected_system_name=F("connected_system__name"))


@extend_schema_view(
    get=extend_schema(
        summary="List the pending exports a preview would create, change or remove",
        description="The pending exports this preview activity would leave: 'effect' "
        "says whether the run would create one, change one that is stored (then "
        "'before' is it as it is now) or remove one. Links to objects the run would "
        "make (a CSO it would provision, an MVO it would project) are null; 'target' "
        "and 'reference_names' name them. Filter by effect, change_type, "
        "connected_system, cs_object or metaverse_object. 404 for an activity that is "
        f"not a preview. Needs {VIEW_EXPORTS}.",
    )
)
class PreviewedExportListView(ApiViewMixin, generics.ListAPIView):
    """The pending exports a preview would create, change or remove."""

    permission_classes = [
        requires(VIEW_ACTIVITIES, "Reading activities"),
        requires(VIEW_EXPORTS, "Reading the pending exports of a preview"),
    ]
    serializer_class = PreviewedExportSerializer
    filterset_class = PreviewedExportFilter
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # the schema's generation
            return previewed_exports().none()
        return previewed_exports().filter(activity=preview_activity(self.kwargs["pk"]))


def preview_activity(pk: int) -> Activity:
    """The preview activity ``pk``, or a 404 naming why there is none."""
    found = Activity.objects.filter(pk=pk).only("pk", "preview")
    activity = found.first() if pk <= MAX_ID else None
    if activity is None:
        raise exceptions.NotFound(
            f"No activity has id {pk}: the list of activities says which exist."
        )
    if not activity.preview:
        raise exceptions.NotFound(
            f"Activity {pk} is not a preview, so it has no previewed exports: the pending "
            f"exports it created are at /api/v1/pending-exports/?created_by_activity={pk}."
        )
    return activity


def what_if_answer(preview: Callable[[], Activity]) -> Response:
    """The preview activity ``preview()`` ran, with its RPEIs and previewed exports, or
    409 with why it did not run."""
    try:
        activity = preview()
    except (AlreadyRunning, ValueError) as exc:
        raise Conflict(str(exc)) from None
    answer = {
        "activity": activities().get(pk=activity.pk),
        "items": activity.items.order_by("pk"),
        "pending_exports": previewed_exports().filter(activity=activity).order_by("pk"),
    }
    return Response(WhatIfSerializer(answer).data, status=status.HTTP_200_OK)
