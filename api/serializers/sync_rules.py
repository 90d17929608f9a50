"""Sync rules, with their joins and attribute flows."""

from __future__ import annotations

from rest_framework import serializers

from metaverse.models import SyncRule, SyncRuleFlow, SyncRuleJoin


class JoinSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncRuleJoin
        fields = ("order", "cs_attribute", "mv_attribute")


class FlowSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncRuleFlow
        fields = ("order", "kind", "source", "expression", "target")


class SyncRuleSerializer(serializers.ModelSerializer):
    joins = JoinSerializer(many=True, read_only=True)
    flows = FlowSerializer(many=True, read_only=True)

    class Meta:
        model = SyncRule
        fields = (
            "id",
            "name",
            "connected_system",
            "direction",
            "cs_object_type",
            "mv_object_type",
            "precedence",
            "enabled",
            "scope",
            "project",
            "provision",
            "dn_template",
            "deprovision_action",
            "enforce_state",
            "initial_password",
            "disable_flows",
            "disable_dn_template",
            "delete_after_days",
            "joins",
            "flows",
        )
