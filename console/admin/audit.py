"""The audit trail in the admin, and the mixin that records configuration changes.

:class:`AuditEntryAdmin` is the one place an Administrator reads who did what:
configuration changes (admin, ``jim apply``), runs started, approvals and
rejections, retries and discards, API keys. It is read-only for everyone, superusers
included, and shown only to users with ``audit.view_auditentry`` (the Administrators
role). An entry about a pending export links to that export's approval audit entries
(:class:`exports.models.ApprovalAuditEntry`), which keep what the export was.

:class:`AuditedAdminMixin` records, in the transaction of the admin's save or delete,
one entry per object saved or deleted, with each field before → after — the rows of
its inlines too (``flows#12.expression``), secrets masked (:mod:`audit.recording`).
"""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from audit.context import client_address
from audit.models import Action, AuditEntry, Via
from audit.recording import diff, record, secret_fields_of, snapshot
from console.admin.helpers import ReadOnlyAdminMixin, changelist_link, html_table, link
from console.views import admin_change_url
from exports.models import ApprovalAuditEntry, PendingExport


class AuditedAdminMixin:
    """For the admin of a configuration model: every save and delete is recorded."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The database still holds the state before the form's (and its inlines').
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        obj._audit_before = self._audit_state(stored) if stored is not None else {}
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[misc]
        obj = form.instance
        before = getattr(obj, "_audit_before", {})
        changes = diff(before, self._audit_state(obj), self._audit_secrets(obj))
        if change and not changes:
            return
        action = Action.CHANGED if change else Action.CREATED
        self._audit(request, action, obj, changes)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            self._audit_deletion(request, obj)
            super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for obj in queryset:
                self._audit_deletion(request, obj)
            super().delete_queryset(request, queryset)  # type: ignore[misc]

    def _audit_deletion(self, request: HttpRequest, obj: Any) -> None:
        changes = diff(self._audit_state(obj), {}, self._audit_secrets(obj))
        self._audit(request, Action.DELETED, obj, changes)

    def _audit(self, request: HttpRequest, action: str, obj: Any, changes: dict) -> None:
        record(
            request.user,
            action,
            obj,
            changes=changes,
            via=Via.ADMIN,
            address=client_address(request),
        )

    def _audit_state(self, obj: models.Model) -> dict[str, Any]:
        """The object's fields, and each field of each row of its inlines."""
        state = snapshot(obj)
        for inline in self.inlines:  # type: ignore[attr-defined]
            parent_link = _parent_link(inline.model, type(obj), getattr(inline, "fk_name", None))
            rows = inline.model._default_manager.filter(**{parent_link: obj.pk}).order_by("pk")
            prefix = str(inline.model._meta.verbose_name_plural).replace(" ", "_")
            for row in rows:
                for name, value in snapshot(row, exclude=[parent_link]).items():
                    state[f"{prefix}#{row.pk}.{name}"] = value
        return state

    def _audit_secrets(self, obj: models.Model) -> frozenset[str]:
        return secret_fields_of(type(obj))


def _parent_link(child: type[models.Model], parent: type[models.Model], name: str | None) -> str:
    """The name of ``child``'s foreign key to ``parent``."""
    if name:
        return name
    for field in child._meta.concrete_fields:
        if field.is_relation and field.related_model is parent:
            return field.name
    raise ValueError(f"{child._meta.label} has no foreign key to {parent._meta.label}")


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: browse, search and filter; nobody adds, changes or deletes."""

    list_display = ("at", "actor_name", "via", "action", "object_type", "object_repr", "summary")
    list_filter = (
        "action",
        "via",
        "object_type",
        ("actor", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("actor_name", "object_repr", "object_id", "reason")
    search_help_text = "Who, the object's name or id, or the reason (contains)."
    date_hierarchy = "at"
    list_select_related = ("actor",)
    list_per_page = 100
    show_full_result_count = False
    fields = (
        "at",
        "actor",
        "actor_name",
        "via",
        "address",
        "action",
        "object_type",
        "object_id",
        "object_link",
        "reason",
        "changes_table",
        "see_also",
    )
    readonly_fields = ("object_link", "changes_table", "see_also")

    @admin.display(description="object", ordering="object_repr")
    def object_link(self, entry: AuditEntry) -> str:
        """The object's page while it exists; its name as it was otherwise."""
        model = _model(entry.object_type)
        label = entry.object_repr or entry.object_id or "-"
        if model is None or not entry.object_id.isdigit():
            return format_html("{}", label)
        if not model._default_manager.filter(pk=int(entry.object_id)).exists():
            return format_html("{} (gone)", label)
        return link(admin_change_url(model, int(entry.object_id)), label)

    @admin.display(description="changes")
    def summary(self, entry: AuditEntry) -> str:
        names = ", ".join(entry.changes) if entry.changes else ""
        text = names or entry.reason
        return text if len(text) <= 120 else f"{text[:117]}…"

    @admin.display(description="before → after")
    def changes_table(self, entry: AuditEntry) -> str:
        rows = [(name, _shown(pair[0]), _shown(pair[1])) for name, pair in entry.changes.items()]
        return html_table(("Field", "Before", "After"), rows)

    @admin.display(description="see also")
    def see_also(self, entry: AuditEntry) -> str:
        if entry.object_type != PendingExport._meta.label_lower or not entry.object_id.isdigit():
            return "-"
        return changelist_link(
            ApprovalAuditEntry,
            "What the export was, on its approval audit entries",
            pending_export_ref=entry.object_id,
        )


def _model(label: str) -> type[models.Model] | None:
    try:
        return apps.get_model(label) if label else None
    except (LookupError, ValueError):
        return None


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)
