"""``/api/v1/activities/{id}/undo/``: the plan of an export run's undo (GET), and
staging it (POST) — :mod:`exports.undo`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from access.roles import UNDO_EXPORT_PERMISSION
from api.errors import Conflict
from api.permissions import requires
from api.schema import ACTION_ERRORS
from api.serializers.undo import UndoPlanSerializer, UndoRequestSerializer
from api.views.base import MAX_ID, ApiViewMixin
from connectors.models import Activity
from exports.undo import UndoRefused, plan_undo, stage_undo

VIEW_PERMISSION = "exports.view_exportedchange"
#: The GET answers 409 as the actions do: the run cannot be undone (the message says why).
CONFLICT = ACTION_ERRORS["409"]


class ActivityUndoView(ApiViewMixin, APIView):
    """The undo of an export run: the inverse of what it sent, object by object."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [requires(UNDO_EXPORT_PERMISSION, "Undoing an export run")()]
        return [requires(VIEW_PERMISSION, "Reading what an export run sent")()]

    @extend_schema(
        summary="Plan the undo of an export run",
        description="The inverse pending exports that undoing this export run would stage "
        "(a create becomes a delete, an update restores the previous values, a delete "
        "re-creates the object with its last known values) and the objects left out "
        "because they changed since, with the reason. Changes nothing. 409 when the "
        f"activity cannot be undone (not an export run, undone already, past retention). "
        f"Needs {VIEW_PERMISSION}.",
        responses={200: UndoPlanSerializer, 409: CONFLICT},
    )
    def get(self, request: Any, pk: int) -> Response:
        try:
            plan = plan_undo(_activity(pk))
        except UndoRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(plan.as_json())

    @extend_schema(
        summary="Undo an export run",
        description="Stages the plan's inverse pending exports through the system's "
        "approval policy (a delete may await approval); the next export run sends them. "
        "Recorded on the audit trail. 409 when the activity cannot be undone or the "
        f"system is running. Needs {UNDO_EXPORT_PERMISSION} (Administrators).",
        request=UndoRequestSerializer,
        responses={200: UndoPlanSerializer},
    )
    def post(self, request: Any, pk: int) -> Response:
        body = UndoRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            plan = stage_undo(_activity(pk), request.user, body.validated_data["reason"])
        except UndoRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(plan.as_json())


def _activity(pk: int) -> Activity:
    activity = (
        Activity.objects.select_related("connected_system").filter(pk=pk).first()
        if pk <= MAX_ID
        else None
    )
    if activity is None:
        raise exceptions.NotFound(
            f"No activity has id {pk}: the list of activities says which exist."
        )
    return activity
