"""``GET …/{id}/history/`` of an MVO or a CSO: its value history, newest first, paged
by cursor. The history outlives the object: a deleted object's id still answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.response import Response

from api.pagination import NewestFirstCursorPagination
from api.serializers.history import ValueChangeSerializer
from api.views.base import MAX_ID
from history.models import ValueChange


class ValueHistoryMixin:
    """The ``history`` action of a viewset whose objects are of :attr:`history_kind`."""

    history_kind = ""

    @extend_schema(
        summary="Value history",
        description="Every change of this object's attribute values, newest first: when, "
        "the event (created, updated, deleted), the run that made it (``activity_id``, "
        "``run``) and who started it (``person``), and each attribute's values before and "
        "after (``changes``: ``old``/``new``, or ``added``/``removed`` for a multi-valued "
        "attribute; secrets masked). Kept for JIM_HISTORY_RETENTION_DAYS; answers for a "
        "deleted object too.",
        responses={200: ValueChangeSerializer(many=True)},
        filters=False,
    )
    @action(detail=True, methods=["get"], pagination_class=NewestFirstCursorPagination)
    def history(self, request: Any, pk: str | None = None) -> Response:
        if int(pk or 0) > MAX_ID:
            raise exceptions.NotFound(f"No object has id {pk}.")
        changes = ValueChange.objects.filter(object_kind=self.history_kind, object_id=pk)
        page = self.paginate_queryset(changes)  # type: ignore[attr-defined]
        data = ValueChangeSerializer(page, many=True).data
        return self.get_paginated_response(data)  # type: ignore[attr-defined]
