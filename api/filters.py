"""The filters of every list (django-filter), as query parameters.

Relations are filtered by id (``?connected_system=3``), choices by their value
(``?status=failed``), times by ranges (``?created_after=2026-01-31T00:00:00Z``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from api.search import ATTRIBUTE_NAME, cso_search, holds_value, mvo_search
from connectors.choices import ActivityStatus, ObjectChangeType, RpeiErrorType, RunProfileType
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
)
from exports.choices import PendingExportChangeType
from exports.models import ApprovalAuditEntry, PendingExport
from metaverse.models import MetaverseObject, MetaverseObjectType, SyncRule
from runs.models import PreviewedExport, PreviewEffect

MAX_ID = 2**63 - 1


class IdFilter(filters.Filter):
    """An object's id (an integer; no lookup of the object)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, sent to the database in UTC: PostgreSQL refuses offsets
    beyond ±15:59 that Python reads."""

    def clean(self, value: Any) -> datetime | None:
        moment = super().clean(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError(f"{value} is out of range.") from None


class TimeFilter(filters.IsoDateTimeFilter):
    """A time bound (``?created_after=2026-01-31T00:00:00Z``)."""

    field_class = UtcDateTimeField


class AttributeValueForm(forms.Form):
    """``attribute`` and ``value`` come together, and ``attribute`` is a name."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        attribute, value = data.get("attribute"), data.get("value")
        if bool(attribute) != bool(value):
            raise forms.ValidationError(
                "Give both 'attribute' and 'value' (e.g. ?attribute=mail&value=a@example.org)."
            )
        if attribute and (not ATTRIBUTE_NAME.match(attribute) or "__" in attribute):
            self.add_error("attribute", f"{attribute!r} is not an attribute name.")
        return data


class AttributeValueFilterSet(filters.FilterSet):
    """``?attribute=&value=`` (exact value of an attribute) and ``?search=``."""

    attribute = filters.CharFilter(
        method="by_attribute", help_text="An attribute's name; give 'value' too."
    )
    value = filters.CharFilter(
        method="by_attribute", help_text="A value the attribute holds (exact)."
    )
    search = filters.CharFilter(method="by_search", help_text="A free search term.")

    def by_attribute(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if name != "value":
            return queryset  # applied once, with the value
        attribute = self.form.cleaned_data["attribute"]
        return queryset.filter(holds_value(attribute, value))

    def by_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        term = value.strip()
        return queryset.filter(self.search_match(term)) if term else queryset

    def search_match(self, term: str) -> Any:
        raise NotImplementedError


class ConnectorSpaceObjectFilter(AttributeValueFilterSet):
    connected_system = IdFilter(field_name="connected_system_id")
    object_type = IdFilter(field_name="object_type_id")
    metaverse_object = IdFilter(field_name="metaverse_object_id")
    search = filters.CharFilter(
        method="by_search", help_text="External id or DN (contains), or the CSO's id."
    )

    class Meta:
        model = ConnectorSpaceObject
        form = AttributeValueForm
        fields = ("status", "join_type", "external_id", "sync_pending")

    def search_match(self, term: str) -> Any:
        return cso_search(term)


class MetaverseObjectFilter(AttributeValueFilterSet):
    object_type = IdFilter(field_name="object_type_id")
    search = filters.CharFilter(
        method="by_search",
        help_text="Display name (contains), a join value such as an employee id "
        "(exact, any case), or the MVO's id.",
    )

    class Meta:
        model = MetaverseObject
        form = AttributeValueForm
        fields = ("status", "display_name")

    def search_match(self, term: str) -> Any:
        return mvo_search(term)


class ConnectedSystemFilter(filters.FilterSet):
    class Meta:
        model = ConnectedSystem
        fields = ("name", "connector", "approval_mode")


class ObjectTypeFilter(filters.FilterSet):
    connected_system = IdFilter(field_name="connected_system_id")

    class Meta:
        model = ConnectedSystemObjectType
        fields = ("name", "selected")


class MetaverseObjectTypeFilter(filters.FilterSet):
    class Meta:
        model = MetaverseObjectType
        fields = ("name",)


class SyncRuleFilter(filters.FilterSet):
    connected_system = IdFilter(field_name="connected_system_id")
    cs_object_type = IdFilter(field_name="cs_object_type_id")
    mv_object_type = IdFilter(field_name="mv_object_type_id")

    class Meta:
        model = SyncRule
        fields = ("direction", "enabled", "name")


class RunProfileFilter(filters.FilterSet):
    connected_system = IdFilter(field_name="connected_system_id")

    class Meta:
        model = RunProfile
        fields = ("profile_type", "name")


class ScheduleFilter(filters.FilterSet):
    class Meta:
        model = Schedule
        fields = ("enabled", "name")


class ActivityFilter(filters.FilterSet):
    connected_system = IdFilter(field_name="connected_system_id")
    run_profile = IdFilter(field_name="run_profile_id")
    schedule = IdFilter(field_name="schedule_id")
    status = filters.MultipleChoiceFilter(choices=ActivityStatus.choices)
    profile_type = filters.ChoiceFilter(choices=RunProfileType.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")
    error_type = filters.ChoiceFilter(
        choices=RpeiErrorType.choices[1:],
        method="with_error_type",
        help_text="Activities with at least one execution item of this error type.",
    )
    has_errors = filters.BooleanFilter(method="with_errors", help_text="error_count > 0.")
    preview = filters.BooleanFilter(
        help_text="Previews (true: they changed nothing) or real runs (false)."
    )

    class Meta:
        model = Activity
        fields = ("profile_name",)

    def with_error_type(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        items = RunProfileExecutionItem.objects.filter(activity=OuterRef("pk"), error_type=value)
        return queryset.filter(Exists(items))

    def with_errors(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset.filter(error_count__gt=0) if value else queryset.filter(error_count=0)


class ExecutionItemFilter(filters.FilterSet):
    activity = IdFilter(field_name="activity_id")
    connected_system = IdFilter(field_name="activity__connected_system_id")
    cs_object = IdFilter(field_name="cs_object_id")
    metaverse_object = IdFilter(field_name="metaverse_object_id")
    change_type = filters.ChoiceFilter(choices=ObjectChangeType.choices)
    error_type = filters.ChoiceFilter(choices=RpeiErrorType.choices[1:])
    has_error = filters.BooleanFilter(method="with_error", help_text="Any error type.")

    class Meta:
        model = RunProfileExecutionItem
        fields = ("external_id",)

    def with_error(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        return queryset.exclude(error_type="") if value else queryset.filter(error_type="")


class PendingExportFilter(filters.FilterSet):
    connected_system = IdFilter(field_name="connected_system_id")
    cs_object = IdFilter(field_name="cs_object_id")
    metaverse_object = IdFilter(field_name="metaverse_object_id")
    created_by_activity = IdFilter(field_name="created_by_activity_id")

    class Meta:
        model = PendingExport
        fields = ("status", "approval", "change_type")


class PreviewedExportFilter(filters.FilterSet):
    effect = filters.ChoiceFilter(
        choices=PreviewEffect.choices,
        help_text="What the preview would do to the pending export: created, changed or removed.",
    )
    change_type = filters.ChoiceFilter(choices=PendingExportChangeType.choices)
    connected_system = IdFilter(field_name="connected_system_id")
    cs_object = IdFilter(field_name="cs_object_id")
    metaverse_object = IdFilter(field_name="metaverse_object_id")

    class Meta:
        model = PreviewedExport
        fields = ()


class ApprovalAuditEntryFilter(filters.FilterSet):
    pending_export = IdFilter(field_name="pending_export_ref")
    at_after = TimeFilter(field_name="at", lookup_expr="gte")
    at_before = TimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = ApprovalAuditEntry
        fields = ("action", "username", "connected_system_name", "change_type")
