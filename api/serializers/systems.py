"""Connected systems and their schema (object types, attributes), and the metaverse
schema.

A connected system is shown with its settings but never its secrets: the
``secret_settings`` column is not even read (the views defer it), and a setting the
connector declares secret (``bind_password`` for LDAP) is left out of ``settings``
should it ever be stored there.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from connectors.models import (
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
)
from connectors.registry import UnknownConnector, get_connector_class
from metaverse.models import MetaverseAttribute, MetaverseObjectType

#: Words that mark a setting as secret whatever the connector declares.
SECRET_WORDS = ("password", "secret", "token", "credential", "private")


def secret_setting_names(connector: str) -> frozenset[str]:
    """The settings ``connector`` declares secret (none known for an unknown connector:
    then only :data:`SECRET_WORDS` guard its settings)."""
    try:
        return get_connector_class(connector).secret_setting_names()
    except UnknownConnector:
        return frozenset()


def shown_settings(connector: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` without a secret, nor JIM's bookkeeping (``_…`` keys)."""
    secret = secret_setting_names(connector)
    return {
        name: value
        for name, value in settings.items()
        if name not in secret
        and not name.startswith("_")
        and not any(word in name.lower() for word in SECRET_WORDS)
    }


class ConnectedSystemSerializer(serializers.ModelSerializer):
    settings = serializers.SerializerMethodField(
        help_text="The connector's settings, without its secrets (never shown)."
    )

    class Meta:
        model = ConnectedSystem
        fields = (
            "id",
            "name",
            "description",
            "connector",
            "settings",
            "approval_mode",
            "export_max_retries",
            "export_retry_backoff_seconds",
            "deletion_threshold",
            "change_threshold",
            "created_at",
            "updated_at",
        )

    def get_settings(self, system: ConnectedSystem) -> dict[str, Any]:
        return shown_settings(system.connector, system.settings or {})


class AttributeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConnectedSystemAttribute
        fields = ("id", "name", "data_type", "multivalued", "writability", "references", "optional")


class ObjectTypeSerializer(serializers.ModelSerializer):
    attributes = AttributeSerializer(many=True, read_only=True)

    class Meta:
        model = ConnectedSystemObjectType
        fields = (
            "id",
            "connected_system",
            "name",
            "selected",
            "external_id_attribute",
            "secondary_external_id_attribute",
            "container",
            "attributes",
        )


class MetaverseAttributeSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetaverseAttribute
        fields = ("id", "name", "data_type", "multivalued")


class MetaverseObjectTypeSerializer(serializers.ModelSerializer):
    attributes = MetaverseAttributeSerializer(many=True, read_only=True)

    class Meta:
        model = MetaverseObjectType
        fields = (
            "id",
            "name",
            "deletion_rule",
            "authoritative_systems",
            "deletion_grace_period_days",
            "attributes",
        )
