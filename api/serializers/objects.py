"""The connector space (CSOs) and the metaverse (MVOs)."""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from connectors.models import ConnectorSpaceObject
from metaverse.models import MetaverseObject
from metaverse.sync.disabling import delete_due_at


class ConnectorSpaceObjectSerializer(serializers.ModelSerializer):
    object_type_name = serializers.CharField(read_only=True)
    delete_due_at = serializers.SerializerMethodField(
        help_text="A disabled account (deprovision: disable): when it is deleted; null "
        "when not disabled or kept disabled."
    )

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
            "disconnected_by_hand",
            "disconnected_from_mvo",
            "disabled_at",
            "delete_due_at",
            "created_at",
            "updated_at",
        )

    def get_delete_due_at(self, cso: ConnectorSpaceObject) -> datetime | None:
        return delete_due_at(cso)


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


class MvoActionSerializer(serializers.Serializer):
    """A manual action on a metaverse object: why (kept on the audit trail)."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class MvoDisconnectSerializer(MvoActionSerializer):
    """Disconnecting one of a metaverse object's connector space objects."""

    cso = serializers.IntegerField(help_text="The id of the connector space object.")


class MvoRejoinSerializer(MvoActionSerializer):
    """Re-joining a connector space object disconnected by hand to a metaverse object."""

    cso = serializers.IntegerField(
        help_text="The id of the connector space object, disconnected by hand."
    )
