"""Connected systems (without their secrets) and the schemas: their object types and
attributes, and the metaverse's."""

from __future__ import annotations

from api.filters import ConnectedSystemFilter, MetaverseObjectTypeFilter, ObjectTypeFilter
from api.serializers.systems import (
    ConnectedSystemSerializer,
    MetaverseObjectTypeSerializer,
    ObjectTypeSerializer,
)
from api.views.base import ReadOnlyViewSet
from connectors.models import ConnectedSystem, ConnectedSystemObjectType
from metaverse.models import MetaverseObjectType


class ConnectedSystemViewSet(ReadOnlyViewSet):
    """Connected systems and their settings. Secrets (bind passwords…) are never
    shown: they are not even read from the database."""

    queryset = ConnectedSystem.objects.defer("secret_settings", "persisted_connector_data")
    serializer_class = ConnectedSystemSerializer
    filterset_class = ConnectedSystemFilter


class ObjectTypeViewSet(ReadOnlyViewSet):
    """The object types of connected systems, with their attributes."""

    queryset = ConnectedSystemObjectType.objects.prefetch_related("attributes").order_by("pk")
    serializer_class = ObjectTypeSerializer
    filterset_class = ObjectTypeFilter


class MetaverseObjectTypeViewSet(ReadOnlyViewSet):
    """The metaverse object types, with their attributes and deletion rule."""

    queryset = MetaverseObjectType.objects.prefetch_related(
        "attributes", "authoritative_systems"
    ).order_by("pk")
    serializer_class = MetaverseObjectTypeSerializer
    filterset_class = MetaverseObjectTypeFilter
