"""The admin of pending exports, their attribute changes and the audit trail.

Pending exports are written by sync and the export processor, so their pages are
read-only: the changelist filters by system, status, change type and approval, and a
pending export's page tells its whole story (:mod:`console.approval_story`: who, each
attribute once old → new, why, what happens after), its value-by-value rows collapsed
below. Approving and
rejecting (:mod:`console.admin.approvals`), retrying and discarding failed exports
(:mod:`console.admin.interventions`) are admin actions of :class:`PendingExportAdmin`
with ``allowed_permissions``, which read-only pages allow. Audit entries can never be
added, changed or deleted in the admin, not even by a superuser.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.urls import reverse

from console.admin.approvals import ApprovalAdminMixin
from console.admin.helpers import (
    CSO_JSON_FIELDS,
    SYSTEM_DETAIL_FIELDS,
    LargeTableAdmin,
    ReadOnlyAdminMixin,
    ReadOnlyInline,
    change_link,
    changelist_link,
    link,
    pretty_json,
    related_defer,
)
from console.admin.interventions import InterventionAdminMixin
from exports.models import (
    ApprovalAuditEntry,
    ExportedChange,
    PendingExport,
    PendingExportAttributeChange,
)

#: Values of one attribute change shown in lists; the change's own page shows them all
#: (a group's export can add or remove tens of thousands of members at once).
VALUES_SHOWN = 20
#: Characters of a pending export's last error shown in the changelist.
LAST_ERROR_SHOWN = 120


def format_values(values: Any, limit: int | None = VALUES_SHOWN) -> str:
    """Attribute values as one line of text ("-" when empty), the first ``limit`` only."""
    if not isinstance(values, list):
        values = [values]
    shown = values if limit is None else values[:limit]
    text = ", ".join(str(value) for value in shown) or "-"
    if len(values) > len(shown):
        text += f" … (+{len(values) - len(shown):,} more)"
    return text


class AttributeChangeInline(ReadOnlyInline):
    """A pending export's attribute changes as they are sent, value by value, with the
    status of each: collapsed, for experts (the page's story shows each attribute once,
    old → new)."""

    model = PendingExportAttributeChange
    fields = ("attribute", "change_type", "values_sent", "held_before", "status")
    readonly_fields = fields
    classes = ("collapse",)
    verbose_name = "change as sent (value by value)"
    verbose_name_plural = "changes as sent (value by value)"

    @admin.display(description="values")
    def values_sent(self, change: PendingExportAttributeChange) -> str:
        """The values this row adds, removes or sets (not an arrow from the previous
        values: an ``add`` row does not replace them)."""
        return format_values(change.values)

    @admin.display(description="the object held when staged")
    def held_before(self, change: PendingExportAttributeChange) -> str:
        return format_values(change.previous_values)


@admin.register(PendingExport)
class PendingExportAdmin(
    ApprovalAdminMixin, InterventionAdminMixin, ReadOnlyAdminMixin, LargeTableAdmin
):
    """Pending exports: read-only, filterable by system, status, change type, approval."""

    actions = [*ApprovalAdminMixin.actions, *InterventionAdminMixin.actions]
    # What an approver scans for comes first, so it fits 1,280 px beside the filters.
    list_display = (
        "id",
        "change_type",
        "target",
        "status",
        "approval",
        "connected_system",
        "error_count",
        "last_error_line",
        "next_retry_at",
        "created_at",
    )
    list_filter = ("connected_system", "status", "change_type", "approval")
    list_select_related = ("connected_system", "cs_object")
    search_fields = ("dn", "cs_object__external_id", "cs_object__secondary_external_id")
    search_help_text = "DN, external id or CSO DN (contains)."
    readonly_fields = ("target", "audit_link", "metaverse_object_shown")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "connected_system",
                    "cs_object",
                    "metaverse_object_shown",
                    "sync_rule",
                    "change_type",
                    "target",
                    "dn",
                    "status",
                )
            },
        ),
        ("Retries", {"fields": ("error_count", "max_retries", "next_retry_at", "last_error")}),
        (
            "Approval",
            {
                "fields": (
                    "approval",
                    "approved_by",
                    "approved_at",
                    "approval_reason",
                    "audit_link",
                )
            },
        ),
        ("Origin", {"fields": ("created_by_activity", "created_at", "updated_at")}),
    )
    inlines = (AttributeChangeInline,)

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset.defer(
            *related_defer("cs_object", CSO_JSON_FIELDS),
            *related_defer("connected_system", SYSTEM_DETAIL_FIELDS),
        )

    @admin.display(description="target", ordering="dn")
    def target(self, export: PendingExport) -> str:
        """The DN to create or move to, else the CSO's DN or external id."""
        return export.target

    @admin.display(description="metaverse object")
    def metaverse_object_shown(self, export: PendingExport) -> str:
        """The MVO's console page; for a delete whose MVO is gone, whom it was."""
        mvo = export.metaverse_object
        if mvo is not None:
            return link(reverse("console:mvo", args=[mvo.pk]), mvo)
        identity = export.identity or {}
        if identity:
            return (
                f"Deleted — was {identity.get('name') or 'unnamed'} "
                f"({identity.get('object_type', 'object')} #{identity.get('metaverse_object')})"
            )
        return "None: the object is joined to no metaverse object any more"

    @admin.display(description="last error")
    def last_error_line(self, export: PendingExport) -> str:
        """The first line of the last error, cut short (the export's page shows it all)."""
        line = export.last_error.partition("\n")[0]
        return line if len(line) <= LAST_ERROR_SHOWN else line[: LAST_ERROR_SHOWN - 1] + "…"

    @admin.display(description="audit trail")
    def audit_link(self, export: PendingExport) -> str:
        return changelist_link(
            ApprovalAuditEntry, "What people did to this export", pending_export_ref=export.pk
        )


@admin.register(PendingExportAttributeChange)
class PendingExportAttributeChangeAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    """Attribute changes of pending exports, reached from a pending export's page."""

    list_display = (
        "id",
        "export_link",
        "attribute",
        "change_type",
        "previous",
        "new",
        "status",
    )
    list_filter = ("change_type", "status", "pending_export__connected_system")
    list_select_related = ("pending_export",)
    search_fields = ("attribute",)
    raw_id_fields = ("pending_export",)
    readonly_fields = ("previous", "new", "all_previous_values", "all_values")
    fields = (
        "pending_export",
        "attribute",
        "change_type",
        "status",
        "all_previous_values",
        "all_values",
    )

    @admin.display(description="pending export", ordering="pending_export")
    def export_link(self, change: PendingExportAttributeChange) -> str:
        export = change.pending_export
        return change_link(export, f"#{export.pk} {export.get_change_type_display()}")

    @admin.display(description="previous values")
    def previous(self, change: PendingExportAttributeChange) -> str:
        return format_values(change.previous_values)

    @admin.display(description="values")
    def new(self, change: PendingExportAttributeChange) -> str:
        return format_values(change.values)

    @admin.display(description="previous values")
    def all_previous_values(self, change: PendingExportAttributeChange) -> str:
        return pretty_json(change.previous_values)

    @admin.display(description="values")
    def all_values(self, change: PendingExportAttributeChange) -> str:
        return pretty_json(change.values)


@admin.register(ApprovalAuditEntry)
class ApprovalAuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail (approvals, rejections, retries, discards): read-only for
    everyone, superusers included."""

    list_display = (
        "at",
        "username",
        "action",
        "connected_system_name",
        "change_type",
        "target",
        "pending_export_ref",
    )
    list_filter = ("action", "change_type", "connected_system_name")
    search_fields = ("target", "username", "reason", "connected_system_name", "last_error")
    date_hierarchy = "at"
    readonly_fields = ("changes_display",)
    fields = (
        "at",
        "user",
        "username",
        "action",
        "reason",
        "connected_system_name",
        "change_type",
        "target",
        "pending_export",
        "pending_export_ref",
        "last_error",
        "changes_display",
    )

    @admin.display(description="changes decided on")
    def changes_display(self, entry: ApprovalAuditEntry) -> str:
        return pretty_json(entry.changes)


@admin.register(ExportedChange)
class ExportedChangeAdmin(ReadOnlyAdminMixin, LargeTableAdmin):
    """What export runs sent, kept for undo (:mod:`exports.undo`) until
    ``JIM_EXPORT_RETENTION_DAYS``: read-only, like the runs that wrote it."""

    list_display = (
        "exported_at",
        "connected_system",
        "activity",
        "change_type",
        "target",
        "disabled",
        "undone_at",
        "undone_by",
    )
    list_filter = ("connected_system", "change_type", "disabled")
    search_fields = ("dn", "new_dn", "external_id", "undone_by")
    date_hierarchy = "exported_at"
    list_select_related = ("connected_system", "activity")
    readonly_fields = ("target", "changes_display", "last_values_display")
    fields = (
        "activity",
        "connected_system",
        "object_type",
        "cso_ref",
        "change_type",
        "target",
        "dn",
        "new_dn",
        "external_id",
        "disabled",
        "exported_at",
        "undone_at",
        "undone_by",
        "changes_display",
        "last_values_display",
    )

    @admin.display(description="changes sent (with the values they replaced)")
    def changes_display(self, change: ExportedChange) -> str:
        return pretty_json(change.changes)

    @admin.display(description="last known values (a delete's, to re-create it)")
    def last_values_display(self, change: ExportedChange) -> str:
        return pretty_json(change.last_values)
