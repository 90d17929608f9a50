"""The connector space (CSOs) and the metaverse (MVOs): read, searched by attribute
value (:mod:`api.search`), paged by cursor."""

from __future__ import annotations

from typing import Any

from django.db.models import F, Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from access.roles import MANAGE_MVO_PERMISSION, RUN_PERMISSION
from api.errors import Conflict
from api.filters import ConnectorSpaceObjectFilter, MetaverseObjectFilter
from api.pagination import NewestFirstCursorPagination
from api.permissions import requires
from api.serializers.objects import (
    ConnectorSpaceObjectSerializer,
    MetaverseObjectSerializer,
    MvoActionSerializer,
    MvoDisconnectSerializer,
    MvoRejoinSerializer,
)
from api.serializers.previews import WhatIfSerializer
from api.serializers.runs import ActivitySerializer
from api.views.base import ReadOnlyViewSet
from api.views.history import ValueHistoryMixin
from api.views.previews import what_if_answer
from api.views.runs import activities
from connectors.models import ConnectorSpaceObject
from history.models import ObjectKind
from metaverse.models import MetaverseObject
from metaverse.sync.disabling import with_delete_after_days
from runs import mvo_actions
from runs.runner import AlreadyRunning
from runs.what_if import what_if_cso, what_if_mvo

#: What a what-if answers, after its summary.
WHAT_IF = (
    "Changes nothing: the sync runs as a preview, rolled back, and is recorded as a "
    "preview activity (kept JIM_PREVIEW_RETENTION_DAYS). The answer holds the finished "
    "activity (status 'complete', 'complete_with_errors' or 'failed', as the sync would "
    "end, with its message), 'items': what the sync would do to each object it touches, "
    "attribute by attribute ('changes': {attribute: {'old': [...], 'new': [...]}}), and "
    "'pending_exports': those it would create, change or remove. It takes the sync's lock "
    f"like a run: 409 while a sync runs. Needs {RUN_PERMISSION}."
)


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

    @extend_schema(
        summary="Release to sync",
        description="Hands a connector space object disconnected by hand back to sync: "
        "the mark goes, and the next sync of its system joins or projects it by the join "
        "rules. Runs at once as a sync activity (answered, with its outcome); 409 when it "
        f"was not disconnected by hand or while a sync runs. Needs {MANAGE_MVO_PERMISSION}.",
        request=MvoActionSerializer,
        responses={200: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[
            requires(MANAGE_MVO_PERMISSION, "Releasing a connector space object to sync")
        ],
    )
    def release(self, request: Any, pk: str | None = None) -> Response:
        cso = self.get_object()
        body = MvoActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _acted(lambda: mvo_actions.release(cso, request.user, body.validated_data["reason"]))

    @extend_schema(
        summary="What would a sync do?",
        description="Previews the sync of this connector space object under the current "
        "rules — with the other connector space objects of its metaverse object when it is "
        "joined; alone (join rules, projection, provisioning) when it is not. " + WHAT_IF,
        request=None,
        responses={200: WhatIfSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="what-if",
        permission_classes=[
            requires(RUN_PERMISSION, "Previewing the sync of a connector space object")
        ],
    )
    def what_if(self, request: Any, pk: str | None = None) -> Response:
        cso = self.get_object()
        return what_if_answer(lambda: what_if_cso(cso, request.user))


def _acted(act: Any) -> Response:
    """The activity ``act()`` ran, or 409 with why it did not run."""
    try:
        activity = act()
    except AlreadyRunning as exc:
        raise Conflict(str(exc)) from None
    except (ValueError, ConnectorSpaceObject.DoesNotExist) as exc:
        raise Conflict(str(exc)) from None
    return Response(
        ActivitySerializer(activities().get(pk=activity.pk)).data, status=status.HTTP_200_OK
    )


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

    @extend_schema(
        summary="What would a sync do?",
        description="Previews the sync of this metaverse object and its connector space "
        "objects, of every system, as a re-evaluate would do it, under the current rules. "
        + WHAT_IF,
        request=None,
        responses={200: WhatIfSerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="what-if",
        permission_classes=[requires(RUN_PERMISSION, "Previewing the sync of a metaverse object")],
    )
    def what_if(self, request: Any, pk: str | None = None) -> Response:
        mvo = self.get_object()
        return what_if_answer(lambda: what_if_mvo(mvo, request.user))

    def _act(self, request: Any, serializer: type[MvoActionSerializer], act: Any) -> Response:
        mvo = self.get_object()
        body = serializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _acted(lambda: act(mvo, body.validated_data, request.user))

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

    @extend_schema(
        summary="Re-join a connector space object",
        description="Joins a connector space object that was disconnected by hand to this "
        "object (the one it was disconnected from, or another a sync rule maps its object "
        "type to, holding no object of that system yet), then re-evaluates this object as "
        "a full sync would. The join rules are not asked. 409 naming the cause when it "
        "cannot be joined, or while a sync runs. Needs "
        f"{MANAGE_MVO_PERMISSION}.",
        request=MvoRejoinSerializer,
        responses={200: ActivitySerializer},
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[requires(MANAGE_MVO_PERMISSION, "Re-joining a connector space object")],
    )
    def rejoin(self, request: Any, pk: str | None = None) -> Response:
        return self._act(
            request,
            MvoRejoinSerializer,
            lambda mvo, data, user: mvo_actions.rejoin(
                _cso(data["cso"]), mvo, user, data["reason"]
            ),
        )


def _cso(pk: int) -> ConnectorSpaceObject:
    cso = (
        ConnectorSpaceObject.objects.select_related("connected_system", "object_type")
        .filter(pk=pk)
        .first()
    )
    if cso is None:
        raise ValueError(f"there is no connector space object {pk}")
    return cso
