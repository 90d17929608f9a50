"""The value history of an object as a timeline (see :mod:`history`): newest first, a
page at a time, each entry when, which run (linked while its activity is kept) or
person, and each attribute old → new, rendered as every change is
(:mod:`console.changes`).

The MVO page shows the first page; "Show older" fetches the next (HTMX swaps it in;
without script it is a page of its own). A CSO's timeline is a page of its own, linked
from its admin page. A page costs three queries whatever it holds:
the entries, the activities still kept, the names of the reference values.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from connectors.models import Activity, ConnectorSpaceObject
from console.changes import AttributeChange, changes_of, reference_names
from console.views import admin_change_url, console_view, page_context
from history.models import ObjectKind, ValueChange
from metaverse.models import MetaverseObject

#: Entries on one page of a timeline.
PAGE_SIZE = 25


@dataclass(frozen=True)
class Entry:
    """One entry of the timeline."""

    change: ValueChange
    changes: list[AttributeChange]
    activity_url: str


@dataclass(frozen=True)
class Timeline:
    """A page of an object's history, and the URL of the older entries ('' at the end)."""

    entries: list[Entry]
    older_url: str


def timeline(kind: str, object_id: int, url: str, before: int | None = None) -> Timeline:
    """The page of ``kind`` object ``object_id``'s history older than entry ``before``
    (the newest page when None); ``url`` serves the next pages."""
    changes = ValueChange.objects.filter(object_kind=kind, object_id=object_id)
    if before is not None:
        changes = changes.filter(pk__lt=before)
    page = list(changes.order_by("-pk")[: PAGE_SIZE + 1])
    more, page = len(page) > PAGE_SIZE, page[:PAGE_SIZE]
    kept = set(
        Activity.objects.filter(pk__in={c.activity_id for c in page} - {None}).values_list(
            "pk", flat=True
        )
    )
    records = {change.pk: {"changes": change.changes} for change in page}  # as an RPEI's
    names = reference_names(records.values())
    entries = [
        Entry(
            change,
            changes_of(records[change.pk], names),
            reverse("console:activity", args=[change.activity_id])
            if change.activity_id in kept
            else "",
        )
        for change in page
    ]
    return Timeline(entries, f"{url}?before={page[-1].pk}" if more else "")


def _before(request: HttpRequest) -> int | None:
    value = request.GET.get("before", "")
    return int(value) if value.isdigit() else None


@console_view("metaverse.view_metaverseobject")
def mvo_value_history(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of an MVO's value history: the partial for HTMX, else a page of its own."""
    mvo = get_object_or_404(MetaverseObject, pk=pk)
    back = reverse("console:mvo", args=[pk])
    return _page(request, ObjectKind.MVO, pk, "console:mvo-value-history", str(mvo), back)


@console_view("connectors.view_connectorspaceobject")
def cso_value_history(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of a CSO's value history (linked from its admin page); HTMX as above."""
    cso = get_object_or_404(ConnectorSpaceObject.objects.select_related("connected_system"), pk=pk)
    name = f"{cso.external_id or cso.secondary_external_id or cso.pk} in {cso.connected_system}"
    back = admin_change_url(ConnectorSpaceObject, pk)
    return _page(request, ObjectKind.CSO, pk, "console:cso-value-history", name, back)


def _page(
    request: HttpRequest, kind: str, pk: int, url_name: str, name: str, back_url: str
) -> HttpResponse:
    url = reverse(url_name, args=[pk])
    context = {"value_history": timeline(kind, pk, url, _before(request))}
    if request.htmx:
        return render(request, "console/partials/value_history_entries.html", context)
    return render(
        request,
        "console/value_history.html",
        page_context(
            request, f"Value history of {name}", subject=name, back_url=back_url, **context
        ),
    )
