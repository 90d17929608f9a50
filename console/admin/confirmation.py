"""One confirmation page for every action a person takes on pending exports in the
admin — approve, reject, retry, discard.

A bulk action of the changelist, or a button of a pending export's page, shows the
exports it applies to (each change as before → after, with the last error of a failed
export) and asks for a reason; confirming performs the action and says how many were
done and which of the selection were left alone, and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from console.approval_story import export_stories
from exports.models import PendingExport

TEMPLATE = "admin/exports/pendingexport/decide.html"
#: Exports left alone that a message names one by one; the rest are counted.
NAMED_REFUSALS = 10


@dataclass(frozen=True)
class ExportAction:
    """An action on pending exports, as its confirmation page presents it."""

    label: str  # "Approve": the page's title and button
    done: str  # "Approved": the message once done
    intro: str  # what confirming does
    eligible: Callable[[QuerySet], QuerySet]  # the exports it applies to
    perform: Callable[[list[PendingExport], Any, str], list[PendingExport]]
    not_eligible: str  # "awaiting approval": what the others are not
    reason_required: str = ""  # the error shown when a required reason is missing
    show_errors: bool = False  # show each export's status, attempts and last error
    #: Why one export of the selection was left alone (default: it is not eligible).
    refusal: Callable[[PendingExport], str] | None = None


def confirm(
    model_admin: Any, request: HttpRequest, queryset: QuerySet, action: ExportAction, via: str
) -> HttpResponse | None:
    """The confirmation page of ``action`` on ``queryset``, or None once it is done
    (or when nothing applies), with a message saying what happened.

    ``via`` is the changelist action's name ("" from a pending export's page).
    """
    exports = list(
        action.eligible(queryset)
        .select_related("connected_system", "cs_object")
        .prefetch_related("attribute_changes")
        .order_by("connected_system__name", "pk")
    )
    reason = request.POST.get("reason", "").strip()
    error = ""
    if request.method == "POST" and request.POST.get("confirm"):
        if action.reason_required and not reason:
            error = action.reason_required
        else:
            done = action.perform(exports, request.user, reason)
            _report(request, queryset, action, done)
            return None
    if not exports:
        messages.warning(request, f"None of the selected pending exports is {action.not_eligible}.")
        _report_refusals(request, queryset, action, set())
        return None
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{action.label} pending exports",
        "opts": PendingExport._meta,
        "exports": exports,
        "stories": export_stories(exports),
        "action": action,
        "reason": reason,
        "error": error,
        "via_action": via,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, TEMPLATE, context)


def _report(
    request: HttpRequest, queryset: QuerySet, action: ExportAction, done: list[PendingExport]
) -> None:
    skipped = len(queryset) - len(done)
    note = f" ({skipped} not {action.not_eligible}, left alone)" if skipped > 0 else ""
    messages.success(request, f"{action.done} {len(done)} pending export(s){note}.")
    _report_refusals(request, queryset, action, {pe.pk for pe in done})


def _report_refusals(
    request: HttpRequest, queryset: QuerySet, action: ExportAction, done: set[int]
) -> None:
    """Name the exports of the selection left alone, when the action says why."""
    if action.refusal is None:
        return
    left = [
        pe for pe in queryset.select_related("connected_system", "cs_object") if pe.pk not in done
    ]
    for pe in left[:NAMED_REFUSALS]:
        messages.warning(request, action.refusal(pe))
    if len(left) > NAMED_REFUSALS:
        messages.warning(request, f"… and {len(left) - NAMED_REFUSALS} more left alone.")
