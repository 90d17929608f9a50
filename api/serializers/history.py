"""An object's value history (:mod:`history`), as the API gives it."""

from __future__ import annotations

from rest_framework import serializers

from history.models import ValueChange


class ValueChangeSerializer(serializers.ModelSerializer):
    """One change of one object's values: when, which run (or person), what changed."""

    class Meta:
        model = ValueChange
        fields = ["id", "object_kind", "object_id", "event", "at", "activity_id", "run"]
        fields += ["person", "changes"]
        read_only_fields = fields
