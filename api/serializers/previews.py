"""What a preview would do: the pending exports it would create, change or remove
(:class:`runs.models.PreviewedExport`), and the answer of a what-if on one object."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.serializers.runs import ActivitySerializer
from connectors.models import RunProfileExecutionItem
from exports.choices import (
    ApprovalState,
    AttributeChangeStatus,
    AttributeChangeType,
    PendingExportChangeType,
    PendingExportStatus,
)
from runs.models import PreviewedExport


class PreviewedChangeSerializer(serializers.Serializer):
    """One attribute change of a previewed export, as the pending export would hold it."""

    attribute = serializers.CharField()
    change_type = serializers.ChoiceField(choices=AttributeChangeType.choices)
    values = serializers.ListField(child=serializers.JSONField())
    previous_values = serializers.ListField(child=serializers.JSONField())
    status = serializers.ChoiceField(choices=AttributeChangeStatus.choices)


class PreviewedExportBeforeSerializer(serializers.Serializer):
    """The stored pending export as it is now, which the preview would change or remove."""

    change_type = serializers.ChoiceField(choices=PendingExportChangeType.choices)
    status = serializers.ChoiceField(choices=PendingExportStatus.choices)
    approval = serializers.ChoiceField(choices=ApprovalState.choices)
    changes = PreviewedChangeSerializer(many=True)


class PreviewedExportSerializer(serializers.ModelSerializer):
    connected_system_name = serializers.CharField(read_only=True)
    changes = PreviewedChangeSerializer(
        many=True, read_only=True, help_text="The attribute changes it would hold."
    )
    before = serializers.SerializerMethodField(
        help_text="For an export the preview would change or remove: the stored pending "
        "export as it is now. Null for one it would create."
    )
    reference_names = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The names of the reference values of the changes (CSO id → DN or "
        "external id), as they were when the preview ran: a CSO it would provision "
        "never exists.",
    )

    class Meta:
        model = PreviewedExport
        fields = (
            "id",
            "activity",
            "effect",
            "connected_system",
            "connected_system_name",
            "pending_export",
            "cs_object",
            "metaverse_object",
            "target",
            "change_type",
            "status",
            "approval",
            "changes",
            "before",
            "reference_names",
        )

    @extend_schema_field(PreviewedExportBeforeSerializer(allow_null=True))
    def get_before(self, previewed: PreviewedExport) -> dict[str, Any] | None:
        return previewed.before or None


class WhatIfItemSerializer(serializers.ModelSerializer):
    """What the sync would do to one object (an RPEI of the preview), value by value."""

    changes = serializers.SerializerMethodField(
        help_text="attribute → its change: {'old': [...], 'new': [...]} for a single "
        "value; {'added': [...], 'removed': [...], 'multivalued': true} for many; "
        "'ref' ('cso' or 'mvo') when the values are ids of objects."
    )
    new_references = serializers.SerializerMethodField(
        help_text="'mvo:12' or 'cso:7' → name, for referenced objects the sync would "
        "create (their ids never exist)."
    )

    class Meta:
        model = RunProfileExecutionItem
        fields = (
            "id",
            "external_id",
            "change_type",
            "error_type",
            "message",
            "cs_object",
            "metaverse_object",
            "changes",
            "new_references",
        )

    @extend_schema_field(serializers.DictField(child=serializers.DictField()))
    def get_changes(self, item: RunProfileExecutionItem) -> dict[str, Any]:
        return _details(item).get("changes") or {}

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_new_references(self, item: RunProfileExecutionItem) -> dict[str, str]:
        return _details(item).get("new_references") or {}


def _details(item: RunProfileExecutionItem) -> dict[str, Any]:
    return item.details if isinstance(item.details, dict) else {}


class WhatIfSerializer(serializers.Serializer):
    """The answer of a what-if: the finished preview activity, what the sync would do
    to each object it touches, and the pending exports it would create, change or
    remove."""

    activity = ActivitySerializer(help_text="The preview activity ('preview': true).")
    items = WhatIfItemSerializer(many=True)
    pending_exports = PreviewedExportSerializer(many=True)
