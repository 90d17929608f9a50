"""Pending exports, their attribute changes, the audit trail of what people did to
them, and what a client sends to approve, reject, retry or discard them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from exports.models import ApprovalAuditEntry, PendingExport, PendingExportAttributeChange

#: The most pending exports one bulk request may name by id.
MAX_IDS = 10_000


class AttributeChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = PendingExportAttributeChange
        fields = ("attribute", "change_type", "previous_values", "values", "status")


class PendingExportSerializer(serializers.ModelSerializer):
    connected_system_name = serializers.CharField(read_only=True)
    target = serializers.SerializerMethodField(
        help_text="The DN to create or move to, else the object's DN or external id."
    )
    approved_by_name = serializers.CharField(read_only=True, allow_null=True)
    attribute_changes = AttributeChangeSerializer(many=True, read_only=True)

    class Meta:
        model = PendingExport
        fields = (
            "id",
            "connected_system",
            "connected_system_name",
            "cs_object",
            "metaverse_object",
            "sync_rule",
            "change_type",
            "target",
            "dn",
            "status",
            "error_count",
            "max_retries",
            "next_retry_at",
            "last_error",
            "approval",
            "approved_by_name",
            "approved_at",
            "approval_reason",
            "created_by_activity",
            "created_at",
            "updated_at",
            "attribute_changes",
        )

    def get_target(self, pe: Any) -> str:
        # The view annotates the CSO's names instead of loading the CSO.
        return (
            pe.dn or pe.cso_secondary_external_id or pe.cso_external_id or f"CSO {pe.cs_object_id}"
        )


class ApprovalAuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalAuditEntry
        fields = (
            "id",
            "at",
            "action",
            "username",
            "user",
            "reason",
            "pending_export_ref",
            "pending_export",
            "connected_system_name",
            "change_type",
            "target",
            "changes",
            "last_error",
        )


class DecisionSerializer(serializers.Serializer):
    """The body of an action on one pending export."""

    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=10_000,
        default="",
        help_text="Why; kept on the audit trail. Required to reject and to discard.",
    )

    def __init__(self, *args: Any, reason_required: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reason_required = reason_required

    def validate_reason(self, value: str) -> str:
        value = value.strip()
        if self.reason_required and not value:
            raise serializers.ValidationError(
                "Give a reason: it is kept on the audit trail with your name."
            )
        return value


class BulkDecisionSerializer(DecisionSerializer):
    """The body of a bulk action: the pending exports by ``ids``, or by ``filter`` (the
    list's filters, e.g. ``{"connected_system": 2, "change_type": "delete"}``)."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        max_length=MAX_IDS,
        help_text="The pending exports to act on.",
    )
    filter = serializers.DictField(
        required=False,
        help_text="Instead of ids: act on every pending export the list's filters "
        "(same names and values as the query parameters of the list) select.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError(
                "Name the pending exports either by 'ids' (a list of ids) or by 'filter' "
                "(the list's filters), not both and not neither."
            )
        return attrs


class ActionResultSerializer(serializers.Serializer):
    """What an action on pending exports did."""

    action = serializers.CharField(help_text="approved, rejected, retried or discarded.")
    done = serializers.ListField(
        child=serializers.IntegerField(), help_text="The pending exports acted on."
    )
    skipped = serializers.ListField(
        child=serializers.DictField(),
        help_text="Those of the selection left alone, each with the reason (id, reason).",
    )
