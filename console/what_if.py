"""What would a sync do? One MVO's or CSO's outcome under the current rules, in the console.

The MVO page and the CSO's admin page have a "What would a sync do?" button for those
who may run. It previews the sync of that object (:mod:`runs.what_if`: the real sync,
rolled back; one object, so it runs at once, not on a worker) and shows its outcome
value by value: each RPEI's change and each attribute's old → new values, and the
pending exports it would create, change or remove (target, attribute, before → after).
When the preview found nothing to do it says so plainly.

On the MVO page the outcome comes inline (HTMX); otherwise — from the admin, or
without JavaScript — the browser goes to the outcome's own page (``console:what-if``),
which the preview activity's page links to as well. A sync running now holds the
metaverse: the button then says which run is in the way, and nothing is previewed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from access.roles import RUN_PERMISSION
from connectors.choices import COUNTED_CHANGE_TYPES, ActivityStatus
from connectors.models import Activity, ConnectorSpaceObject, RunProfileExecutionItem
from console.links import admin_change_url
from console.previews import PreviewedExportRow, previewed_export_rows
from console.views import ITEM_FIELDS, ItemRow, console_view, item_rows, page_context
from metaverse.models import MetaverseObject
from metaverse.sync.manual import describe_cso
from runs import what_if
from runs.models import PreviewedExport
from runs.runner import AlreadyRunning

#: RPEIs, and pending exports, an outcome lists: one object's sync makes a few (its
#: CSOs in every system); the preview activity's page has them all.
OUTCOME_ROWS = 200

PARTIAL = "console/partials/what_if_outcome.html"


@dataclass(frozen=True)
class SystemItemRow:
    """An RPEI of the outcome and the connected system of its CSO ('' when the run
    would have made the CSO)."""

    row: ItemRow
    system: str


@dataclass(frozen=True)
class Outcome:
    """What a "what if" preview found the sync of one object would do."""

    activity: Activity
    items: list[SystemItemRow]
    exports: list[PreviewedExportRow]
    more_items: int
    more_exports: int

    @property
    def failed(self) -> bool:
        return self.activity.status == ActivityStatus.FAILED

    @property
    def nothing_would_change(self) -> bool:
        """The sync would change no value and leave the pending exports as they are."""
        counts = self.activity.counts or {}
        return (
            self.activity.status == ActivityStatus.COMPLETE
            and not any(counts.get(change_type) for change_type in COUNTED_CHANGE_TYPES)
            and not self.exports
            and not self.activity.error_count
        )

    @property
    def url(self) -> str:
        return reverse("console:what-if", args=[self.activity.pk])


def outcome(activity: Activity) -> Outcome:
    """The outcome of a "what if" preview activity (a fixed number of queries)."""
    items = list(
        RunProfileExecutionItem.objects.filter(activity=activity)
        .select_related("cs_object__connected_system")
        .only(*ITEM_FIELDS, "cs_object__connected_system__name")
        .order_by("pk")[: OUTCOME_ROWS + 1]
    )
    exports = list(
        PreviewedExport.objects.filter(activity=activity)
        .select_related("connected_system")
        .only(*_EXPORT_FIELDS)
        .order_by("pk")[: OUTCOME_ROWS + 1]
    )
    shown_items, shown_exports = items[:OUTCOME_ROWS], exports[:OUTCOME_ROWS]
    rows = item_rows(shown_items, preview=True)
    return Outcome(
        activity=activity,
        items=[
            SystemItemRow(row, item.cs_object.connected_system.name if item.cs_object else "")
            for row, item in zip(rows, shown_items, strict=True)
        ],
        exports=previewed_export_rows(shown_exports),
        more_items=activity.items.count() - OUTCOME_ROWS if len(items) > OUTCOME_ROWS else 0,
        more_exports=(
            activity.previewed_exports.count() - OUTCOME_ROWS if len(exports) > OUTCOME_ROWS else 0
        ),
    )


@console_view(RUN_PERMISSION)
@require_POST
def mvo_what_if(request: HttpRequest, pk: int) -> HttpResponse:
    """POST: preview a sync of the MVO (with its CSOs of every system)."""
    _may_view(request, "metaverse.view_metaverseobject")
    mvo = get_object_or_404(MetaverseObject.objects.select_related("object_type"), pk=pk)
    return _preview(
        request,
        lambda: what_if.what_if_mvo(mvo, request.user),
        str(mvo),
        reverse("console:mvo", args=[mvo.pk]),
    )


@console_view(RUN_PERMISSION)
@require_POST
def cso_what_if(request: HttpRequest, pk: int) -> HttpResponse:
    """POST: preview a sync of the CSO (with its MVO's other CSOs when it is joined)."""
    _may_view(request, "connectors.view_connectorspaceobject")
    cso = get_object_or_404(
        ConnectorSpaceObject.objects.select_related("connected_system", "object_type"), pk=pk
    )
    return _preview(
        request,
        lambda: what_if.what_if_cso(cso, request.user),
        describe_cso(cso),
        admin_change_url(ConnectorSpaceObject, cso.pk) or reverse("console:dashboard"),
    )


def _may_view(request: HttpRequest, permission: str) -> None:
    """The outcome shows the object's values: only to those who may see it."""
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the {permission!r} permission too.")


def _preview(
    request: HttpRequest, preview: Callable[[], Activity], subject: str, back: str
) -> HttpResponse:
    """Run the preview; its outcome inline (HTMX) or on its page, or why it could not
    run (a sync in the way, an object no system holds)."""
    try:
        activity = preview()
    except (AlreadyRunning, ValueError) as exc:
        refusal = f"Could not preview a sync of {subject}: {exc}"
        running = getattr(exc, "running", None)
        if request.htmx:  # answered 200: HTMX swaps only successful answers in
            return render(request, PARTIAL, {"refusal": refusal, "running": running})
        if running is not None:
            refusal = format_html(
                '{} <a href="{}">Activity #{}</a>',
                refusal,
                reverse("console:activity", args=[running.pk]),
                running.pk,
            )
        messages.error(request, refusal)
        return redirect(back)
    if request.htmx:
        return render(request, PARTIAL, {"outcome": outcome(activity)})
    return redirect("console:what-if", pk=activity.pk)


@console_view("connectors.view_activity")
def what_if_page(request: HttpRequest, pk: int) -> HttpResponse:
    """The outcome of one "What would a sync do?" preview, on a page of its own."""
    activity = get_object_or_404(
        Activity.objects.select_related("connected_system"),
        pk=pk,
        preview=True,
        run_profile__isnull=True,
    )
    if activity.status in (ActivityStatus.QUEUED, ActivityStatus.IN_PROGRESS):
        return redirect("console:activity", pk=activity.pk)  # it runs at once: rare
    context = page_context(request, "What would a sync do?", outcome=outcome(activity))
    return render(request, "console/what_if.html", context)


#: What an outcome shows of a previewed export (and its system's name).
_EXPORT_FIELDS = (
    "pk",
    "effect",
    "change_type",
    "target",
    "status",
    "approval",
    "changes",
    "before",
    "reference_names",
    "cs_object_id",
    "pending_export_id",
    "metaverse_object_id",
    "connected_system_id",
    "connected_system__name",
)
