"""The admin of connected systems, the connector space, run profiles and activities.

The admin is the identity administrator's console. What it promises:

* Configuration (connected systems, their object types, attributes, run profiles,
  schedules) is editable; what the engine records (CSOs, activities, RPEIs) is
  read-only for everyone, superusers included: the models' state belongs to the runs.
* Secrets are write-only (see :mod:`console.admin.forms`): ``secret_settings`` is in no
  form, list, read-only field or page.
* Changelists of tables that reach 100,000+ rows (CSOs, RPEIs) run a fixed number of
  queries whatever the page shows: related rows come with ``list_select_related``,
  big JSON columns are deferred, the unfiltered total is not counted, facets are off.
* Deleting a connected system or object type confirms with counts, not with a list of
  every CSO that goes with it.

The helpers at the top (links, JSON, read-only admins) are shared with the metaverse
and exports admins.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, IntegerField, Model, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from connectors.choices import AttributeDataType, RpeiErrorType
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
    ScheduleStep,
)
from console.admin.audit import AuditedAdminMixin
from console.admin.forms import (
    CLEAR_PREFIX,
    SECRET_PREFIX,
    ConnectedSystemForm,
    offered_secrets,
    secret_field_names,
)
from console.admin.helpers import (
    CSO_JSON_FIELDS,
    SYSTEM_DETAIL_FIELDS,
    LargeTableAdmin,
    LeanChangeListMixin,
    ReadOnlyAdminMixin,
    SummaryDeleteMixin,
    change_link,
    changelist_link,
    html_table,
    line_list,
    link,
    pretty_json,
    related_defer,
)
from console.admin.layout import CompactTabularInline
from console.admin.runs import (
    ActivityOverrideMixin,
    ConnectedSystemRunMixin,
    RunProfileRunMixin,
)
from console.admin.what_if import CsoWhatIfMixin
from console.changes import item_changes
from console.mvo import reference_id
from exports.models import PendingExport
from metaverse.models import SyncRule
from metaverse.sync.disabling import disabled_text, with_delete_after_days
from runs.progress import format_duration
from runs.threshold_override import audit_line

# --------------------------------------------------------------------------- connected systems


class ConnectedSystemObjectTypeInline(CompactTabularInline):
    """The system's object types; each links to its own page with its attributes."""

    model = ConnectedSystemObjectType
    fields = (
        "name",
        "selected",
        "external_id_attribute",
        "secondary_external_id_attribute",
        "container",
    )
    extra = 0
    show_change_link = True


class RunProfileInline(CompactTabularInline):
    model = RunProfile
    fields = ("name", "profile_type", "page_size")
    extra = 0
    show_change_link = True


def _count_of(model: type[Model], **filters: Any) -> Coalesce:
    """A per-system count of ``model`` rows, as a subquery (one index scan per row shown)."""
    counted = (
        model._default_manager.filter(connected_system=OuterRef("pk"), **filters)
        .order_by()
        .values("connected_system")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


@admin.register(ConnectedSystem)
class ConnectedSystemAdmin(
    AuditedAdminMixin,
    ConnectedSystemRunMixin,
    SummaryDeleteMixin,
    LeanChangeListMixin,
    admin.ModelAdmin,
):
    """Connected systems: settings as JSON, secrets write-only, schema and profiles inline."""

    form = ConnectedSystemForm
    list_display = (
        "name",
        "connector",
        "approval_mode",
        "cso_count",
        "pending_export_count",
        "updated_at",
    )
    list_filter = ("connector", "approval_mode")
    search_fields = ("name", "description")
    ordering = ("name",)
    readonly_fields = (
        "connector_space",
        "persisted_connector_data_display",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            None,
            {"fields": ("name", "description", "connector", "approval_mode", "separate_duties")},
        ),
        ("Settings", {"fields": ("settings", "config_base_dir")}),
        ("Exports", {"fields": ("export_max_retries", "export_retry_backoff_seconds")}),
        ("Safety", {"fields": ("deletion_threshold", "change_threshold")}),
        (
            "State",
            {
                "fields": (
                    "connector_space",
                    "persisted_connector_data_display",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    inlines = (ConnectedSystemObjectTypeInline, RunProfileInline)
    delete_summary = (
        (ConnectorSpaceObject, "connected_system"),
        (PendingExport, "connected_system"),
        (Activity, "connected_system"),
        (RunProfileExecutionItem, "activity__connected_system"),
        (ConnectedSystemObjectType, "connected_system"),
        (RunProfile, "connected_system"),
        (SyncRule, "connected_system"),
    )

    def get_fieldsets(self, request: HttpRequest, obj: ConnectedSystem | None = None) -> list:
        """The static fieldsets plus a "Secrets" one with the inputs the form will offer."""
        posted = request.POST.get("connector") if request.method == "POST" else None
        secrets = secret_field_names(offered_secrets(obj.connector if obj else None, posted))
        fieldsets = list(super().get_fieldsets(request, obj))
        if secrets:
            fieldsets.insert(2, ("Secrets", {"fields": secrets}))
        return fieldsets

    def get_form(
        self, request: HttpRequest, obj: ConnectedSystem | None = None, **kwargs: Any
    ) -> type[ConnectedSystemForm]:
        # The secret inputs are added by the form itself (they depend on the
        # connector), so they are left out of the fields the factory builds.
        if kwargs.get("fields"):
            kwargs["fields"] = [
                name
                for name in kwargs["fields"]
                if not name.startswith((SECRET_PREFIX, CLEAR_PREFIX))
            ]
        return super().get_form(request, obj, **kwargs)

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer("persisted_connector_data", "secret_settings").annotate(
            cso_total=_count_of(ConnectorSpaceObject),
            pending_export_total=_count_of(PendingExport),
        )

    @admin.display(description="CSOs", ordering="cso_total")
    def cso_count(self, system: ConnectedSystem) -> str:
        return changelist_link(
            ConnectorSpaceObject,
            f"{system.cso_total:,}",
            connected_system__id__exact=system.pk,
        )

    @admin.display(description="pending exports", ordering="pending_export_total")
    def pending_export_count(self, system: ConnectedSystem) -> str:
        return changelist_link(
            PendingExport,
            f"{system.pending_export_total:,}",
            connected_system__id__exact=system.pk,
        )

    @admin.display(description="connector space")
    def connector_space(self, system: ConnectedSystem) -> str:
        """CSOs by status, each linked to the filtered CSO list (one grouped query)."""
        if not system.pk:
            return "-"
        by_status = dict(
            system.cs_objects.order_by()
            .values_list("status")
            .annotate(n=Count("pk"))
            .values_list("status", "n")
        )
        field = ConnectorSpaceObject._meta.get_field("status")
        rows = [
            (
                label,
                changelist_link(
                    ConnectorSpaceObject,
                    f"{by_status.get(value, 0):,}",
                    connected_system__id__exact=system.pk,
                    status__exact=value,
                ),
            )
            for value, label in field.choices
        ]
        links = line_list(
            [
                changelist_link(
                    RunProfileExecutionItem,
                    "Run history (RPEIs)",
                    activity__connected_system__id__exact=system.pk,
                ),
                changelist_link(Activity, "Activities", connected_system__id__exact=system.pk),
                changelist_link(SyncRule, "Sync rules", connected_system__id__exact=system.pk),
            ]
        )
        return format_html("{}{}", html_table(("Status", "CSOs"), rows), links)

    @admin.display(description="persisted connector data")
    def persisted_connector_data_display(self, system: ConnectedSystem) -> str:
        return pretty_json(system.persisted_connector_data)


class ConnectedSystemAttributeInline(CompactTabularInline):
    model = ConnectedSystemAttribute
    fields = ("name", "data_type", "multivalued", "writability", "references", "optional")
    extra = 0


@admin.register(ConnectedSystemObjectType)
class ConnectedSystemObjectTypeAdmin(AuditedAdminMixin, SummaryDeleteMixin, admin.ModelAdmin):
    """An object type of a connected system's schema, with its attributes inline."""

    list_display = (
        "name",
        "connected_system",
        "selected",
        "external_id_attribute",
        "secondary_external_id_attribute",
        "container",
    )
    list_filter = ("connected_system", "selected")
    list_select_related = ("connected_system",)
    search_fields = ("name", "container", "connected_system__name")
    inlines = (ConnectedSystemAttributeInline,)
    delete_summary = (
        (ConnectorSpaceObject, "object_type"),
        (ConnectedSystemAttribute, "object_type"),
        (SyncRule, "cs_object_type"),
    )


@admin.register(ConnectedSystemAttribute)
class ConnectedSystemAttributeAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "object_type", "data_type", "multivalued", "writability", "references")
    list_filter = ("object_type__connected_system", "data_type", "multivalued", "writability")
    list_select_related = ("object_type__connected_system",)
    search_fields = ("name", "object_type__name")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "object_type":
            kwargs["queryset"] = ConnectedSystemObjectType.objects.select_related(
                "connected_system"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --------------------------------------------------------------------------- connector space


class ObjectTypeListFilter(admin.RelatedFieldListFilter):
    """Object types named with their system (one query); only the chosen system's
    when the list is already filtered by connected system."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list:
        types = ConnectedSystemObjectType.objects.select_related("connected_system")
        system = request.GET.get("connected_system__id__exact", "")
        if system.isdigit():
            types = types.filter(connected_system_id=int(system))
        return [(object_type.pk, str(object_type)) for object_type in types]


def cso_reference_links(cso: ConnectorSpaceObject) -> tuple[set[str], dict[int, Any]]:
    """The CSO's reference attribute names and the CSOs its reference values name.

    Two queries whatever the number of values.
    """
    names = set(
        ConnectedSystemAttribute.objects.filter(
            object_type_id=cso.object_type_id, data_type=AttributeDataType.REFERENCE
        ).values_list("name", flat=True)
    )
    ids = {
        reference_id(value)
        for name in names
        for value in (cso.attributes or {}).get(name, [])
        if reference_id(value) is not None
    }
    targets = (
        ConnectorSpaceObject.objects.only("id", "external_id", "secondary_external_id").in_bulk(ids)
        if ids
        else {}
    )
    return names, targets


@admin.register(ConnectorSpaceObject)
class ConnectorSpaceObjectAdmin(CsoWhatIfMixin, ReadOnlyAdminMixin, LargeTableAdmin):
    """CSOs: browse by system, type, status and join; search by external id or DN; on
    one CSO's page, "What would a sync do?" (:mod:`console.admin.what_if`)."""

    list_display = (
        "id",
        "connected_system",
        "object_type_name",
        "external_id",
        "secondary_external_id",
        "status_shown",
        "join_type",
        "mvo_link",
    )
    list_filter = (
        "connected_system",
        ("object_type", ObjectTypeListFilter),
        "status",
        "join_type",
        "sync_pending",
        "disconnected_by_hand",
    )
    list_select_related = ("connected_system", "object_type", "metaverse_object")
    search_fields = ("external_id", "secondary_external_id")
    search_help_text = "External id or DN (contains)."
    ordering = ("-id",)
    raw_id_fields = ("connected_system", "object_type", "metaverse_object")
    readonly_fields = (
        "mvo_link",
        "disabled_shown",
        "attributes_table",
        "unresolved_references_table",
        "pending_export_link",
        "history_link",
        "value_history_link",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "connected_system",
                    "object_type",
                    "external_id",
                    "secondary_external_id",
                    "status",
                    "disabled_shown",
                    "sync_pending",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        (
            "Join",
            {
                "fields": (
                    "mvo_link",
                    "join_type",
                    "joined_at",
                    "disconnected_by_hand",
                    "disconnected_from_mvo",
                )
            },
        ),
        ("Attributes", {"fields": ("attributes_table", "unresolved_references_table")}),
        (
            "Exports and history",
            {"fields": ("pending_export_link", "history_link", "value_history_link")},
        ),
    )

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer(
            *CSO_JSON_FIELDS,
            *related_defer("connected_system", SYSTEM_DETAIL_FIELDS),
            "metaverse_object__attributes",
            "metaverse_object__attribute_sources",
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return with_delete_after_days(super().get_queryset(request))

    @admin.display(description="status", ordering="status")
    def status_shown(self, cso: ConnectorSpaceObject) -> str:
        """The status; for an account JIM disabled, since when and its delete date."""
        disabled = disabled_text(cso)
        return f"{cso.get_status_display()}, {disabled}" if disabled else cso.get_status_display()

    @admin.display(description="disabled")
    def disabled_shown(self, cso: ConnectorSpaceObject) -> str:
        return disabled_text(cso) or "-"

    @admin.display(description="object type", ordering="object_type__name")
    def object_type_name(self, cso: ConnectorSpaceObject) -> str:
        return cso.object_type.name

    @admin.display(description="MVO", ordering="metaverse_object")
    def mvo_link(self, cso: ConnectorSpaceObject) -> str:
        mvo = cso.metaverse_object
        if mvo is None:
            return "-"
        return change_link(mvo, mvo.display_name or f"MVO {mvo.pk}")

    @admin.display(description="attributes")
    def attributes_table(self, cso: ConnectorSpaceObject) -> str:
        """Attribute → values; a reference value (a CSO id) links to that CSO."""
        references, targets = cso_reference_links(cso)
        rows = []
        for name in sorted(cso.attributes or {}, key=str.lower):
            values = cso.attributes[name]
            values = values if isinstance(values, list) else [values]
            if name in references:
                cells = [self._reference(value, targets) for value in values]
            else:
                cells = values
            rows.append((name, line_list(cells)))
        return html_table(("Attribute", "Values"), rows)

    @staticmethod
    def _reference(value: Any, targets: dict[int, ConnectorSpaceObject]) -> str:
        target = targets.get(reference_id(value))
        if target is None:
            return format_html("{} (no such CSO)", value)
        return change_link(target, f"{target} (CSO {target.pk})")

    @admin.display(description="unresolved references")
    def unresolved_references_table(self, cso: ConnectorSpaceObject) -> str:
        """References the import could not resolve yet: attribute → the ids/DNs given."""
        unresolved = cso.unresolved_references or {}
        rows = [
            (name, line_list(values if isinstance(values, list) else [values]))
            for name, values in sorted(unresolved.items())
        ]
        return html_table(("Attribute", "Unresolved values"), rows)

    @admin.display(description="pending export")
    def pending_export_link(self, cso: ConnectorSpaceObject) -> str:
        try:
            export = cso.pending_export
        except ObjectDoesNotExist:
            return "None"
        return change_link(
            export, f"{export.get_change_type_display()} — {export.get_status_display()}"
        )

    @admin.display(description="run history")
    def history_link(self, cso: ConnectorSpaceObject) -> str:
        return changelist_link(
            RunProfileExecutionItem, "RPEIs of this CSO", cs_object__id__exact=cso.pk
        )

    @admin.display(description="value history")
    def value_history_link(self, cso: ConnectorSpaceObject) -> str:
        url = reverse("console:cso-value-history", args=[cso.pk])
        return format_html('<a href="{}">Each change of its values, newest first</a>', url)


# --------------------------------------------------------------------------- run profiles


@admin.register(RunProfile)
class RunProfileAdmin(AuditedAdminMixin, RunProfileRunMixin, admin.ModelAdmin):
    list_display = ("name", "connected_system", "profile_type", "page_size", "runs")
    list_filter = ("connected_system", "profile_type")
    list_select_related = ("connected_system",)
    search_fields = ("name", "connected_system__name")
    readonly_fields = ("runs",)

    @admin.display(description="runs")
    def runs(self, profile: RunProfile) -> str:
        if not profile.pk:
            return "-"
        return line_list(
            [
                changelist_link(Activity, "Activities", run_profile__id__exact=profile.pk),
                link(reverse("console:run-profile-history", args=[profile.pk]), "History chart"),
            ]
        )


class ScheduleStepInline(CompactTabularInline):
    model = ScheduleStep
    fields = ("order", "run_profile")
    extra = 0

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "run_profile":
            kwargs["queryset"] = RunProfile.objects.select_related("connected_system")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Schedule)
class ScheduleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Schedules: ordered run-profile steps on a cron."""

    list_display = ("name", "cron", "enabled", "stop_on_failure", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description")
    inlines = (ScheduleStepInline,)


# --------------------------------------------------------------------------- activities


class ActivityListFilter(admin.SimpleListFilter):
    """Narrows RPEIs to one activity. Reached by links (there can be thousands of
    activities, so none are listed): shown only while one is chosen."""

    title = "activity"
    parameter_name = "activity__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Django applies only filters that show choices, so an activity that does not
        # exist is still a choice (which matches nothing), never an ignored filter.
        value = request.GET.get(self.parameter_name)
        if value is None:
            return []
        found = value.isdigit() and (
            Activity.objects.select_related("connected_system").filter(pk=int(value)).first()
        )
        return [(value, str(found) if found else f"{value} (no such activity)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(activity_id=int(value))


@admin.register(Activity)
class ActivityAdmin(
    ActivityOverrideMixin, ReadOnlyAdminMixin, LeanChangeListMixin, admin.ModelAdmin
):
    """Activities (runs): read-only. RPEIs are summarised by type, never listed inline."""

    # The outcome (duration, processed, errors) before the phase, so it fits 1,280 px; the
    # profile's type is a filter (and mostly its name).
    list_display = (
        "id",
        "connected_system",
        "profile_shown",
        "status",
        "started_at",
        "duration",
        "processed",
        "error_count",
        "phase",
    )
    list_filter = ("connected_system", "status", "profile_type", "preview")
    list_select_related = ("connected_system",)
    search_fields = ("profile_name", "message", "initiated_by_name")
    date_hierarchy = "created_at"
    readonly_fields = ("duration", "processed", "rpei_summary", "live_page", "threshold_audit")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "connected_system",
                    "run_profile",
                    "profile_name",
                    "profile_type",
                    "preview",
                    "status",
                    "phase",
                    "message",
                    "live_page",
                )
            },
        ),
        (
            "Progress",
            {"fields": ("processed", "error_count", "rpei_summary")},
        ),
        (
            "Thresholds",
            {"fields": ("allow_deletions", "allow_changes", "threshold_audit", "overrides")},
        ),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration",
                    "heartbeat_at",
                )
            },
        ),
        (
            "Origin",
            {
                "fields": (
                    "initiated_by",
                    "initiated_by_name",
                    "schedule",
                    "task_id",
                    "cancel_requested",
                )
            },
        ),
    )

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer(*related_defer("connected_system", SYSTEM_DETAIL_FIELDS))

    @admin.display(description="profile name", ordering="profile_name")
    def profile_shown(self, activity: Activity) -> str:
        """The run profile's name; a preview says so (it changed nothing)."""
        return f"{activity.profile_name} (preview)" if activity.preview else activity.profile_name

    @admin.display(description="duration")
    def duration(self, activity: Activity) -> str:
        return format_duration(activity.duration_seconds)

    @admin.display(description="processed", ordering="objects_processed")
    def processed(self, activity: Activity) -> str:
        if activity.objects_total is None:
            return f"{activity.objects_processed:,}"
        return f"{activity.objects_processed:,} / {activity.objects_total:,}"

    @admin.display(description="allowed by")
    def threshold_audit(self, activity: Activity) -> str:
        return audit_line(activity) or "—"

    @admin.display(description="live page")
    def live_page(self, activity: Activity) -> str:
        return link(reverse("console:activity", args=[activity.pk]), "Progress and items")

    @admin.display(description="RPEIs")
    def rpei_summary(self, activity: Activity) -> str:
        """RPEIs counted by change type and by error type (two grouped queries), each
        count linked to the RPEI list filtered to it."""
        changes = (
            activity.items.filter(error_type=RpeiErrorType.NONE)
            .order_by()
            .values_list("change_type")
            .annotate(n=Count("pk"))
            .values_list("change_type", "n")
        )
        errors = (
            activity.items.exclude(error_type=RpeiErrorType.NONE)
            .order_by()
            .values_list("error_type")
            .annotate(n=Count("pk"))
            .values_list("error_type", "n")
        )
        change_labels = dict(RunProfileExecutionItem._meta.get_field("change_type").choices)
        error_labels = dict(RpeiErrorType.choices)
        rows = [
            (
                "change",
                change_labels.get(value, value),
                self._items_link(activity, n, change_type__exact=value, error_type__exact=""),
            )
            for value, n in sorted(changes)
        ] + [
            (
                "error",
                error_labels.get(value, value),
                self._items_link(activity, n, error_type__exact=value),
            )
            for value, n in sorted(errors)
        ]
        total = self._items_link(activity, "All RPEIs")
        return format_html("{}{}", html_table(("Kind", "Type", "RPEIs"), rows), total)

    @staticmethod
    def _items_link(activity: Activity, label: Any, **filters: Any) -> str:
        if isinstance(label, int):
            label = f"{label:,}"
        return changelist_link(
            RunProfileExecutionItem, label, activity__id__exact=activity.pk, **filters
        )


#: The RPEI details the changes table shows (the rest is shown as recorded).
SHOWN_AS_CHANGES = frozenset({"attributes", "changes", "dn"})


@admin.register(RunProfileExecutionItem)
class RunProfileExecutionItemAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    """RPEIs: read-only; filtered by activity (through links), change and error type."""

    list_display = (
        "id",
        "activity_link",
        "change_type",
        "error_type",
        "external_id",
        "cso_link",
        "mvo_link",
        "short_message",
        "created_at",
    )
    list_filter = (
        ActivityListFilter,
        ("activity__connected_system", admin.RelatedFieldListFilter),
        "change_type",
        "error_type",
    )
    list_select_related = ("activity__connected_system", "cs_object", "metaverse_object")
    search_fields = ("external_id", "message")
    search_help_text = "External id or message (contains)."
    raw_id_fields = ("activity", "cs_object", "metaverse_object", "pending_export")
    readonly_fields = ("details_display",)
    fields = (
        "activity",
        "change_type",
        "error_type",
        "external_id",
        "message",
        "cs_object",
        "metaverse_object",
        "pending_export",
        "details_display",
        "created_at",
    )

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer(
            "details",
            "activity__counts",
            "activity__message",
            *related_defer("activity__connected_system", SYSTEM_DETAIL_FIELDS),
            *related_defer("cs_object", CSO_JSON_FIELDS),
            "metaverse_object__attributes",
            "metaverse_object__attribute_sources",
        )

    @admin.display(description="activity", ordering="activity")
    def activity_link(self, item: RunProfileExecutionItem) -> str:
        return change_link(item.activity)

    @admin.display(description="CSO", ordering="cs_object")
    def cso_link(self, item: RunProfileExecutionItem) -> str:
        return change_link(item.cs_object)

    @admin.display(description="MVO", ordering="metaverse_object")
    def mvo_link(self, item: RunProfileExecutionItem) -> str:
        mvo = item.metaverse_object
        return "-" if mvo is None else change_link(mvo, mvo.display_name or f"MVO {mvo.pk}")

    @admin.display(description="message")
    def short_message(self, item: RunProfileExecutionItem) -> str:
        message = item.message
        return message if len(message) <= 120 else f"{message[:117]}…"

    @admin.display(description="details")
    def details_display(self, item: RunProfileExecutionItem) -> str:
        """What changed as the console shows it (each attribute once, old → new, with
        reference values named), then whatever else the run recorded."""
        changes = item_changes([item])[item.pk]
        table = render_to_string("console/partials/changes.html", {"changes": changes})
        rest = {k: v for k, v in item.details.items() if k not in SHOWN_AS_CHANGES}
        if not rest:
            return table if changes else "-"  # a template's output: safe HTML
        return format_html("{}{}", table, pretty_json(rest))
