"""The console page that undoes an export run (:mod:`exports.undo`): the plan first —
the inverse changes and the objects left out — then, on confirmation with a reason,
the inverse pending exports staged through the system's approval policy.

Reached from the export activity's page ("Undo this run…"), shown to the users who may
undo (``exports.undo_exportedchange``: Administrators).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from access.roles import UNDO_EXPORT_PERMISSION
from connectors.models import Activity
from console.views import console_view, page_context
from exports.undo import UndoDenied, UndoRefused, plan_undo, stage_undo


@console_view(UNDO_EXPORT_PERMISSION)
def undo_page(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the plan (nothing changes). POST, with the confirmation ticked: stage it,
    then the activity's page with what was staged, or this page with why not."""
    activity = get_object_or_404(Activity.objects.select_related("connected_system"), pk=pk)
    title = f"Undo export run #{activity.pk}"
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            messages.error(request, "Tick the confirmation box to stage the undo.")
            return redirect("console:activity-undo", pk=pk)
        try:
            plan = stage_undo(activity, request.user, request.POST.get("reason", "").strip()[:1000])
        except (UndoRefused, UndoDenied) as exc:
            messages.error(request, f"Could not undo export run #{pk}: {exc}.")
            return redirect("console:activity-undo", pk=pk)
        waiting = sum(1 for pe in plan.staged if pe.approval == "awaiting_approval")
        messages.success(
            request,
            f"Staged {len(plan.staged)} pending export(s) undoing run #{pk}"
            + (f", {waiting} awaiting approval" if waiting else "")
            + "; the next export run sends them.",
        )
        return redirect("console:activity", pk=pk)
    try:
        plan = plan_undo(activity)
    except UndoRefused as exc:
        context = page_context(request, title, activity=activity, refused=str(exc))
        return render(request, "console/undo.html", context, status=409)
    return render(
        request, "console/undo.html", page_context(request, title, activity=activity, plan=plan)
    )
