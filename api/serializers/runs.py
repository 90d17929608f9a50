"""Run profiles, schedules, activities (runs) and their execution items (RPEIs), and
what a client sends to start a run."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.models import (
    Activity,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
    ScheduleStep,
)
from runs.models import PreviewEffect


class RunProfileSerializer(serializers.ModelSerializer):
    connected_system_name = serializers.CharField(read_only=True)

    class Meta:
        model = RunProfile
        fields = (
            "id",
            "connected_system",
            "connected_system_name",
            "name",
            "profile_type",
            "page_size",
        )


class ScheduleStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScheduleStep
        fields = ("order", "run_profile")


class ScheduleSerializer(serializers.ModelSerializer):
    steps = ScheduleStepSerializer(many=True, read_only=True)

    class Meta:
        model = Schedule
        fields = (
            "id",
            "name",
            "description",
            "cron",
            "enabled",
            "stop_on_failure",
            "steps",
            "created_at",
            "updated_at",
        )


class PreviewedExportCountsSerializer(serializers.Serializer):
    """How many pending exports a preview would create, change and remove."""

    created = serializers.IntegerField()
    changed = serializers.IntegerField()
    removed = serializers.IntegerField()


class ActivitySerializer(serializers.ModelSerializer):
    connected_system_name = serializers.CharField(read_only=True)
    duration_seconds = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Running time so far, or in all."
    )
    pending_exports = serializers.SerializerMethodField(
        help_text="A preview: how many pending exports it would create, change and remove "
        "(listed at /api/v1/activities/{id}/previewed-exports/; recorded when it ends). "
        "Null for a run."
    )

    class Meta:
        model = Activity
        fields = (
            "id",
            "connected_system",
            "connected_system_name",
            "run_profile",
            "profile_type",
            "profile_name",
            "status",
            "phase",
            "message",
            "objects_total",
            "objects_processed",
            "counts",
            "error_count",
            "allow_deletions",
            "allow_changes",
            "cancel_requested",
            "initiated_by_name",
            "schedule",
            "overrides",
            "preview",
            "pending_exports",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
            "duration_seconds",
        )

    @extend_schema_field(PreviewedExportCountsSerializer(allow_null=True))
    def get_pending_exports(self, activity: Any) -> dict[str, int] | None:
        # The view annotates the counts (api.views.runs.activities), one subquery each.
        if not activity.preview:
            return None
        return {effect: getattr(activity, f"previewed_{effect}") or 0 for effect in PreviewEffect}


class ExecutionItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunProfileExecutionItem
        fields = (
            "id",
            "activity",
            "change_type",
            "error_type",
            "message",
            "external_id",
            "cs_object",
            "metaverse_object",
            "pending_export",
            "details",
            "created_at",
        )


class RunRequestSerializer(serializers.Serializer):
    """What ``POST /run-profiles/{id}/run/`` accepts (all optional)."""

    allow_deletions = serializers.BooleanField(
        default=False,
        help_text="Let the run exceed the system's deletion threshold "
        "(needs connectors.override_threshold).",
    )
    allow_changes = serializers.BooleanField(
        default=False,
        help_text="Let the run exceed the system's change threshold "
        "(needs connectors.override_threshold).",
    )
    preview = serializers.BooleanField(
        default=False,
        help_text="Run it as a preview: it changes nothing and records what it would have "
        "done (an import or a sync; an export run cannot be previewed).",
    )


class ScheduleRunSerializer(serializers.Serializer):
    """The answer to ``POST /schedules/{id}/run/``: the schedule was handed to the
    workers; its runs appear as activities with this schedule as they start."""

    schedule = serializers.IntegerField()
    task_id = serializers.CharField()
    first_activity = serializers.IntegerField(help_text="The first step's activity, queued.")
    activities = serializers.CharField(help_text="Where its activities are listed.")
