"""The admin of the metaverse: its schema, its objects (MVOs) and the sync rules.

The schema and sync rules are configuration, editable here; a sync rule's form checks
what the database cannot (its object type belongs to its connected system, its
expressions parse). MVOs are written by sync only, so their pages are read-only:
attributes with the connected system and sync rule that contributed each, and the
CSOs joined to the MVO.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from connectors.models import ConnectedSystemObjectType, ConnectorSpaceObject
from connectors.registry import connector_sets_passwords
from console.admin.audit import AuditedAdminMixin
from console.admin.helpers import (
    CSO_JSON_FIELDS,
    SYSTEM_DETAIL_FIELDS,
    LargeTableAdmin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    SummaryDeleteMixin,
    changelist_link,
    html_table,
    line_list,
    link,
    related_defer,
)
from console.admin.layout import CompactTabularInline
from console.admin.mvo_columns import (
    AttributeColumnsChangeList,
    attribute_columns,
    telling_attributes,
)
from console.mvo import attribute_rows
from exports.models import PendingExport
from metaverse.choices import FlowKind, SyncRuleDirection
from metaverse.expressions import ExpressionSyntaxError, compile_dn_template, compile_expression
from metaverse.models import (
    MetaverseAttribute,
    MetaverseObject,
    MetaverseObjectKey,
    MetaverseObjectType,
    SyncRule,
    SyncRuleFlow,
    SyncRuleJoin,
)
from metaverse.sync.keys import normalise_key

# --------------------------------------------------------------------------- schema


class MetaverseAttributeInline(CompactTabularInline):
    model = MetaverseAttribute
    fields = ("name", "data_type", "multivalued")
    extra = 0


@admin.register(MetaverseObjectType)
class MetaverseObjectTypeAdmin(AuditedAdminMixin, SummaryDeleteMixin, admin.ModelAdmin):
    """A metaverse object type (person, group) with its attributes and deletion rule."""

    list_display = ("name", "deletion_rule", "deletion_grace_period_days", "objects")
    list_filter = ("deletion_rule",)
    search_fields = ("name",)
    filter_horizontal = ("authoritative_systems",)
    readonly_fields = ("objects",)
    inlines = (MetaverseAttributeInline,)
    delete_summary = (
        (MetaverseAttribute, "object_type"),
        (SyncRule, "mv_object_type"),
    )

    def protected_summary(self, pks: list[Any]) -> list[str]:
        """MVOs protect their type: it cannot be deleted while any exist."""
        count = MetaverseObject.objects.filter(object_type__in=pks).count()
        return [f"{count:,} metaverse objects"] if count else []

    @admin.display(description="MVOs")
    def objects(self, object_type: MetaverseObjectType) -> str:
        if not object_type.pk:
            return "-"
        return changelist_link(MetaverseObject, "MVOs", object_type__id__exact=object_type.pk)


@admin.register(MetaverseAttribute)
class MetaverseAttributeAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("name", "object_type", "data_type", "multivalued")
    list_filter = ("object_type", "data_type", "multivalued")
    list_select_related = ("object_type",)
    search_fields = ("name",)


# --------------------------------------------------------------------------- MVOs


class JoinedCsoInline(ReadOnlyInline):
    """The CSOs joined to an MVO, one per connected system."""

    model = ConnectorSpaceObject
    fk_name = "metaverse_object"
    verbose_name = "joined CSO"
    verbose_name_plural = "joined CSOs"
    fields = (
        "connected_system",
        "object_type",
        "external_id",
        "secondary_external_id",
        "status",
        "join_type",
        "joined_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("connected_system", "object_type__connected_system")
            .defer(
                *CSO_JSON_FIELDS,
                *related_defer("connected_system", SYSTEM_DETAIL_FIELDS),
                *related_defer("object_type__connected_system", SYSTEM_DETAIL_FIELDS),
            )
            .order_by("connected_system__name", "pk")
        )


@admin.register(MetaverseObject)
class MetaverseObjectAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    """MVOs: read-only; attributes with their sources, and the CSOs joined to each."""

    list_display = ("id", "display_name", "object_type", "status", "deletion_due_at", "updated_at")
    list_display_links = ("id", "display_name")
    list_filter = ("object_type", "status")
    list_select_related = ("object_type",)
    search_fields = ("display_name",)
    search_help_text = (
        "Display name (contains), a join value such as an employee id or account name "
        "(exact, any case), or an MVO id."
    )
    ordering = ("-id",)
    readonly_fields = ("attributes_table", "links")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "object_type",
                    "display_name",
                    "status",
                    "deletion_due_at",
                    "created_at",
                    "updated_at",
                    "links",
                )
            },
        ),
        ("Attributes", {"fields": ("attributes_table",)}),
    )
    inlines = (JoinedCsoInline,)

    def get_list_display(self, request: HttpRequest) -> list:
        """The list's columns, with the attributes that tell people apart after the name."""
        identity, rest = self.list_display[:2], self.list_display[2:]
        return [*identity, *attribute_columns(telling_attributes()), *rest]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return AttributeColumnsChangeList

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer("attributes", "attribute_sources")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Display name contains the term, or a join key equals it, or the id is it.

        Join keys (``MetaverseObjectKey``) are the indexed, normalised values of the
        attributes sync rules join on, so this finds people by employee id or account
        name without scanning the attribute documents.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        keys = MetaverseObjectKey.objects.filter(value=normalise_key(term)).values(
            "metaverse_object_id"
        )
        match = Q(display_name__icontains=term) | Q(pk__in=keys)
        if term.isdigit():
            match |= Q(pk=int(term))
        return queryset.filter(match), False

    @admin.display(description="attributes")
    def attributes_table(self, mvo: MetaverseObject) -> str:
        """Attribute → values, with the connected system and sync rule that gave them."""
        rows = []
        for row in attribute_rows(mvo):
            if row.references is None:
                values = line_list(row.values)
            else:
                values = line_list(link(ref.url, ref.label) for ref in row.references)
            rows.append(
                (
                    row.name,
                    values,
                    link(row.system_url, row.system) if row.system else "-",
                    link(row.rule_url, row.rule) if row.rule else "-",
                )
            )
        return html_table(("Attribute", "Values", "Connected system", "Sync rule"), rows)

    @admin.display(description="see also")
    def links(self, mvo: MetaverseObject) -> str:
        return line_list(
            [
                link(reverse("console:mvo", args=[mvo.pk]), "Across systems, with history"),
                changelist_link(
                    PendingExport, "Pending exports", metaverse_object__id__exact=mvo.pk
                ),
            ]
        )


@admin.register(MetaverseObjectKey)
class MetaverseObjectKeyAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    """The join keys of MVOs (kept by sync): which MVO a join value finds."""

    list_display = ("id", "metaverse_object", "attribute", "value")
    list_select_related = ("metaverse_object__object_type",)
    search_fields = ("=value",)
    search_help_text = "A normalised join value (exact: trimmed, lower case)."

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer("metaverse_object__attributes", "metaverse_object__attribute_sources")


# --------------------------------------------------------------------------- sync rules


def expression_error(source: str, compile_source: Any) -> str:
    """Why ``source`` does not compile ('' when it does, or is blank)."""
    if not source.strip():
        return ""
    try:
        compile_source(source)
    except ExpressionSyntaxError as error:
        return str(error)
    return ""


def _disable_flows_error(flows: Any) -> str:
    """What is wrong with a rule's ``disable_flows`` (a list of flows), or ""."""
    if flows in (None, ""):
        return ""
    if not isinstance(flows, list):
        return 'A list of flows: [{"target": …, "source": …} or {"target": …, "expression": …}].'
    for index, flow in enumerate(flows):
        keys = set(flow) if isinstance(flow, dict) else set()
        if not flow or keys not in ({"target", "source"}, {"target", "expression"}):
            return f'Flow {index + 1}: give "target" and either "source" or "expression".'
        if error := expression_error(flow.get("expression") or "", compile_expression):
            return f"Flow {index + 1}: {error}"
    return ""


class SyncRuleForm(forms.ModelForm):
    """A sync rule, checked: its object type is its system's, its expressions parse."""

    class Meta:
        model = SyncRule
        fields = (
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
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        system = cleaned.get("connected_system")
        object_type = cleaned.get("cs_object_type")
        if system and object_type and object_type.connected_system_id != system.pk:
            self.add_error(
                "cs_object_type",
                f"The object type {object_type} belongs to another connected system, "
                f"not to {system}.",
            )
        if error := expression_error(cleaned.get("scope") or "", compile_expression):
            self.add_error("scope", error)
        if error := expression_error(cleaned.get("dn_template") or "", compile_dn_template):
            self.add_error("dn_template", error)
        disable_dn = cleaned.get("disable_dn_template") or ""
        if error := expression_error(disable_dn, compile_dn_template):
            self.add_error("disable_dn_template", error)
        if error := _disable_flows_error(cleaned.get("disable_flows")):
            self.add_error("disable_flows", error)
        direction = cleaned.get("direction")
        if direction == SyncRuleDirection.IMPORT and cleaned.get("provision"):
            self.add_error("provision", "Only an export rule provisions; an import rule projects.")
        if direction == SyncRuleDirection.EXPORT and cleaned.get("project"):
            self.add_error("project", "Only an import rule projects; an export rule provisions.")
        if cleaned.get("initial_password"):
            if direction == SyncRuleDirection.IMPORT:
                self.add_error(
                    "initial_password", "Only an export rule sets the password of what it creates."
                )
            elif system and not connector_sets_passwords(system.connector):
                self.add_error(
                    "initial_password",
                    f"The {system.connector} connector of {system} does not set passwords.",
                )
        return cleaned


class SyncRuleFlowForm(forms.ModelForm):
    """A flow: a direct flow names its source, an expression flow has a valid expression."""

    class Meta:
        model = SyncRuleFlow
        fields = ("order", "kind", "source", "expression", "target")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind == FlowKind.DIRECT and not (cleaned.get("source") or "").strip():
            self.add_error("source", "A direct flow needs the source attribute it copies.")
        if kind == FlowKind.EXPRESSION:
            source = cleaned.get("expression") or ""
            if not source.strip():
                self.add_error("expression", "An expression flow needs its expression.")
            elif error := expression_error(source, compile_expression):
                self.add_error("expression", error)
        return cleaned


class SyncRuleJoinInline(CompactTabularInline):
    """Join rules, tried in order."""

    model = SyncRuleJoin
    fields = ("order", "cs_attribute", "mv_attribute")
    ordering = ("order", "pk")
    extra = 0


class SyncRuleFlowInline(CompactTabularInline):
    """Attribute flows, in order."""

    model = SyncRuleFlow
    form = SyncRuleFlowForm
    fields = ("order", "kind", "source", "expression", "target")
    ordering = ("order", "pk")
    extra = 0


@admin.register(SyncRule)
class SyncRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Sync rules with their joins and flows, filterable by system, direction, MV type."""

    form = SyncRuleForm
    list_display = (
        "name",
        "connected_system",
        "direction",
        "cs_object_type_name",
        "mv_object_type",
        "precedence",
        "enabled",
        "project",
        "provision",
    )
    list_filter = ("connected_system", "direction", "mv_object_type", "enabled")
    list_select_related = ("connected_system", "cs_object_type", "mv_object_type")
    search_fields = ("name",)
    ordering = ("precedence", "name")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "connected_system",
                    "direction",
                    "cs_object_type",
                    "mv_object_type",
                    "precedence",
                    "enabled",
                    "scope",
                )
            },
        ),
        ("Import", {"fields": ("project",)}),
        (
            "Export",
            {
                "fields": (
                    "provision",
                    "dn_template",
                    "deprovision_action",
                    "enforce_state",
                    "initial_password",
                )
            },
        ),
    )
    inlines = (SyncRuleJoinInline, SyncRuleFlowInline)

    @admin.display(description="object type", ordering="cs_object_type__name")
    def cs_object_type_name(self, rule: SyncRule) -> str:
        return format_html("{}", rule.cs_object_type.name)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "cs_object_type":
            kwargs["queryset"] = ConnectedSystemObjectType.objects.select_related(
                "connected_system"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
