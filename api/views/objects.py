"""The connector space (CSOs) and the metaverse (MVOs): read, searched by attribute
value (:mod:`api.search`), paged by cursor."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from access.roles import MANAGE_MVO_PERMISSION
from api.errors import Conflict
from api.filters import ConnectorSpaceObjectFilter, MetaverseObjectFilter
from api.pagination import NewestFirstCursorPagination
from api.permissions import requires
from api.serializers.objects import (
    ConnectorSpaceObjectSerializer,
    MetaverseObjectSerializer,
    MvoActionSerializer,
    MvoDisconnectSerializer,
)
from api.serializers.runs import ActivitySerializer
from api.views.base import ReadOnlyViewSet
from api.views.history import ValueHistoryMixin
from api.views.runs import activities
from connectors.models import ConnectorSpaceObject
from history.models import ObjectKind
from metaverse.models import MetaverseObject
from metaverse.sync.disabling import with_delete_after_days
from runs import mvo_actions
from runs.runner import AlreadyRunning


class ConnectorSpaceObjectViewSet(ValueHistoryMixin, ReadOnlyViewSet):
    """Connector space objects (CSOs): JIM's copy of each object of each connected
    system. Search by any attribute's value with ``?attribute=mail&value=…``."""

    queryset = with_delete_after_days(
        ConnectorSpaceObject.objects.annotate(object_type_name=F("object_type__name"))
    )
    serializer_class = ConnectorSpaceObjectSerializer
    filterset_class = ConnectorSpaceObjectFilter
    pagination_class = NewestFirstCursorPagination
    history_kind = ObjectKind.CSO


class MetaverseObjectViewSet(ValueHistoryMixin, ReadOnlyViewSet):
    """Metaverse objects (MVOs): the joined-up identities, each with the CSOs joined
    to it. Search by any attribute's value with ``?attribute=mail&value=…``."""

    queryset = MetaverseObject.objects.annotate(
        object_type_name=F("object_type__name")
    ).prefetch_related(
        Prefetch(
            "cs_objects",
            ConnectorSpaceObject.objects.only(
                "id",
                "connected_system_id",
                "metaverse_object_id",
                "external_id",
                "secondary_external_id",
                "join_type",
            ).order_by("pk"),
        )
    )
    serializer_class = MetaverseObjectSerializer
    filterset_class = MetaverseObjectFilter
    pagination_class = NewestFirstCursorPagination
    history_kind = ObjectKind.MVO

    def _act(self, request: Any, serializer: type[MvoActionSerializer], act: Any) -> Response:
        mvo = self.get_object()
        body = serializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            activity = act(mvo, body.validated_data, request.user)
        except AlreadyRunning as exc:
            raise Conflict(str(exc)) from None
        except (ValueError, ConnectorSpaceObject.DoesNotExist) as exc:
            raise Conflict(str(exc)) from None
        return Response(
            ActivitySerializer(activities().get(pk=activity.pk)).data, status=status.HTTP_200_OK
        )

    @extend_schema(
        summary="Delete now",
        description="Deletes this metaverse object now, as its deletion rule would: each "
        "connector space object joined to it is deprovisioned or disconnected by its "
        "export rule through a pending export, then the object goes. Runs at once as a "
        "sync activity (answered, with its outcome); 409 while a sync runs. Needs "
        f"{MANAGE_MVO_PERMISSION}.",
        request=MvoActionSerializer,
        responses={200: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="delete",
        permission_classes=[requires(MANAGE_MVO_PERMISSION, "Deleting a metaverse object")],
    )
    def delete_now(self, request: Any, pk: str | None = None) -> Response:
        return self._act(
            request,
            MvoActionSerializer,
            lambda mvo, data, user: mvo_actions.delete_now(mvo, user, data["reason"]),
        )

    @extend_schema(
        summary="Disconnect a connector space object",
        description="Breaks the join of one of this object's connector space objects: "
        "its system's values are recalled (or the deletion rule fires, as on any "
        "disconnect); the connector space object stays, unjoined, and sync does not join "
        "it again. 409 when it is not joined to this object or while a sync runs. Needs "
        f"{MANAGE_MVO_PERMISSION}.",
        request=MvoDisconnectSerializer,
        responses={200: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[
            requires(MANAGE_MVO_PERMISSION, "Disconnecting a connector space object")
        ],
    )
    def disconnect(self, request: Any, pk: str | None = None) -> Response:
        return self._act(
            request,
            MvoDisconnectSerializer,
            lambda mvo, data, user: mvo_actions.disconnect(
                mvo, ConnectorSpaceObject.objects.get(pk=data["cso"]), user, data["reason"]
            ),
        )

    @extend_schema(
        summary="Re-evaluate",
        description="Syncs just this object and its connector space objects, of every "
        "system, as a full sync would, recorded as an activity with its RPEIs. 409 while "
        f"a sync runs. Needs {MANAGE_MVO_PERMISSION}.",
        request=MvoActionSerializer,
        responses={200: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="re-evaluate",
        permission_classes=[requires(MANAGE_MVO_PERMISSION, "Re-evaluating a metaverse object")],
    )
    def re_evaluate(self, request: Any, pk: str | None = None) -> Response:
        return self._act(
            request,
            MvoActionSerializer,
            lambda mvo, data, user: mvo_actions.re_evaluate(mvo, user, data["reason"]),
        )
