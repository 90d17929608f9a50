"""What the admin pages of every area share: links, tables, lean change lists for
large tables, read-only admins, and a delete confirmation that counts instead of
listing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import capfirst

from console.views import admin_change_url, admin_changelist_url

#: The JSON columns of a CSO, left out of changelists (a page needs none of them).
CSO_JSON_FIELDS = ("attributes", "unresolved_references")
#: The columns of a connected system that a changelist row naming it does not need
#: (and the secrets, which are then not even decrypted).
SYSTEM_DETAIL_FIELDS = ("settings", "secret_settings", "persisted_connector_data")


def related_defer(relation: str, fields: Iterable[str]) -> list[str]:
    """``fields`` of the model reached through ``relation``, as ``defer()`` arguments."""
    return [f"{relation}__{name}" for name in fields]


def link(url: str, label: Any) -> str:
    """``label`` linked to ``url``; the plain label when there is no page to link to."""
    if not url:
        return format_html("{}", label)
    return format_html('<a href="{}">{}</a>', url, label)


def change_link(obj: Model | None, label: Any = None) -> str:
    """A link to ``obj``'s admin page, labelled ``label`` (default ``str(obj)``)."""
    if obj is None:
        return "-"
    return link(admin_change_url(type(obj), obj.pk), obj if label is None else label)


def changelist_link(model: type[Model], label: Any, **filters: Any) -> str:
    """A link to ``model``'s changelist filtered by ``filters``."""
    return link(admin_changelist_url(model, **filters), label)


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON in a ``<pre>``, for read-only display."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre style="margin: 0; white-space: pre-wrap">{}</pre>', text)


def html_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small read-only table; cells are escaped unless they are already safe HTML."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows),
    )
    if not body:
        return "-"
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def line_list(items: Iterable[Any]) -> SafeString:
    """Items one per line (escaped unless already safe HTML)."""
    return format_html_join(mark_safe("<br>"), "{}", ((item,) for item in items))


class LeanChangeList(ChangeList):
    """A changelist whose rows start from the admin's :meth:`changelist_queryset`
    (so its annotations can be sorted on)."""

    _shaped = False

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        if not self._shaped:
            self.root_queryset = self.model_admin.changelist_queryset(self.root_queryset)
            self._shaped = True
        return super().get_queryset(request, exclude_parameters)


class LeanChangeListMixin:
    """Lets an admin shape its changelist's rows (defer columns, annotate counts)
    without touching the queryset of its change pages."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LeanChangeList

    def changelist_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset


class ReadOnlyAdminMixin:
    """An admin that shows and never changes: no add, change or delete, for anyone.

    Viewing needs the model's view (or change) permission, as usual.
    """

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only tabular inline: rows shown, none added, changed or deleted."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


class LargeTableAdmin(LeanChangeListMixin, admin.ModelAdmin):
    """Settings for changelists over 100,000+ rows: no unfiltered total, no facets."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100


class SummaryDeleteMixin:
    """Confirms a deletion with counts of what goes with it, not a list of every row.

    ``delete_summary`` lists ``(model, lookup)`` pairs: the rows of ``model`` whose
    ``lookup`` is one of the deleted objects are deleted with them (cascades).
    :meth:`protected_summary` names what forbids the deletion (PROTECT references).
    """

    delete_summary: tuple[tuple[type[Model], str], ...] = ()

    def protected_summary(self, pks: list[Any]) -> list[str]:
        return []

    def get_deleted_objects(
        self, objs: Iterable[Model], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[str]]:
        objs = list(objs)
        pks = [obj.pk for obj in objs]
        opts = self.model._meta
        deleted: list[Any] = [f"{capfirst(opts.verbose_name)}: {obj}" for obj in objs]
        model_count = {str(opts.verbose_name_plural): len(objs)}
        for model, lookup in self.delete_summary:
            count = model._default_manager.filter(**{f"{lookup}__in": pks}).count()
            if count:
                name = str(model._meta.verbose_name_plural)
                model_count[name] = count
                deleted.append(f"{count:,} {name}")
        return deleted, model_count, set(), self.protected_summary(pks)
