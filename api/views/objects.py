"""The connector space (CSOs) and the metaverse (MVOs): read, searched by attribute
value (:mod:`api.search`), paged by cursor."""

from __future__ import annotations

from django.db.models import F, Prefetch

from api.filters import ConnectorSpaceObjectFilter, MetaverseObjectFilter
from api.pagination import NewestFirstCursorPagination
from api.serializers.objects import ConnectorSpaceObjectSerializer, MetaverseObjectSerializer
from api.views.base import ReadOnlyViewSet
from connectors.models import ConnectorSpaceObject
from metaverse.models import MetaverseObject
from metaverse.sync.disabling import with_delete_after_days


class ConnectorSpaceObjectViewSet(ReadOnlyViewSet):
    """Connector space objects (CSOs): JIM's copy of each object of each connected
    system. Search by any attribute's value with ``?attribute=mail&value=…``."""

    queryset = with_delete_after_days(
        ConnectorSpaceObject.objects.annotate(object_type_name=F("object_type__name"))
    )
    serializer_class = ConnectorSpaceObjectSerializer
    filterset_class = ConnectorSpaceObjectFilter
    pagination_class = NewestFirstCursorPagination


class MetaverseObjectViewSet(ReadOnlyViewSet):
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
