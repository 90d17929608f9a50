"""The connector space (CSOs) and the metaverse (MVOs)."""

from __future__ import annotations

from rest_framework import serializers

from connectors.models import ConnectorSpaceObject
from metaverse.models import MetaverseObject


class ConnectorSpaceObjectSerializer(serializers.ModelSerializer):
    object_type_name = serializers.CharField(read_only=True)

    class Meta:
        model = ConnectorSpaceObject
        fields = (
            "id",
            "connected_system",
            "object_type",
            "object_type_name",
            "external_id",
            "secondary_external_id",
            "status",
            "join_type",
            "metaverse_object",
            "joined_at",
            "attributes",
            "unresolved_references",
            "sync_pending",
            "created_at",
            "updated_at",
        )


class JoinedObjectSerializer(serializers.ModelSerializer):
    """A CSO joined to an MVO, as the MVO lists it."""

    class Meta:
        model = ConnectorSpaceObject
        fields = ("id", "connected_system", "external_id", "secondary_external_id", "join_type")


class MetaverseObjectSerializer(serializers.ModelSerializer):
    object_type_name = serializers.CharField(read_only=True)
    connector_space_objects = JoinedObjectSerializer(source="cs_objects", many=True, read_only=True)

    class Meta:
        model = MetaverseObject
        fields = (
            "id",
            "object_type",
            "object_type_name",
            "display_name",
            "status",
            "deletion_due_at",
            "attributes",
            "attribute_sources",
            "connector_space_objects",
            "created_at",
            "updated_at",
        )
