"""Undoing an export run (:mod:`exports.undo`): the plan, and the request to stage it."""

from __future__ import annotations

from rest_framework import serializers


class UndoRequestSerializer(serializers.Serializer):
    """Stage the undo of an export run: why (kept on the audit trail)."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class InverseChangeSerializer(serializers.Serializer):
    attribute = serializers.CharField()
    change_type = serializers.CharField(help_text="update, add, remove or remove_all.")
    values = serializers.ListField(child=serializers.JSONField())
    previous_values = serializers.ListField(
        child=serializers.JSONField(), help_text="What the object holds now."
    )


class UndoItemSerializer(serializers.Serializer):
    cso = serializers.IntegerField(
        help_text="The id of the connector space object the run sent to."
    )
    target = serializers.CharField(help_text="Its DN or external id.")
    undoes = serializers.CharField(help_text="What the run did: create, update or delete.")
    change_type = serializers.CharField(help_text="The inverse export: delete, update or create.")
    dn = serializers.CharField(help_text="A create's DN, or the DN an update moves back to.")
    enables = serializers.BooleanField(
        help_text="The run disabled the account: the undo re-enables it."
    )
    changes = InverseChangeSerializer(many=True)
    conflict = serializers.CharField(help_text="Why it is left out (empty when it is not).")


class StagedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The pending export staged.")
    change_type = serializers.CharField()
    approval = serializers.CharField(help_text="As the system's approval policy says.")


class UndoPlanSerializer(serializers.Serializer):
    activity = serializers.IntegerField()
    system = serializers.CharField()
    profile = serializers.CharField()
    inverse = UndoItemSerializer(many=True, help_text="The inverse changes to stage.")
    conflicts = UndoItemSerializer(
        many=True, help_text="Objects changed since the run: left out, with the reason."
    )
    staged = StagedSerializer(many=True, help_text="After a POST: the pending exports staged.")
