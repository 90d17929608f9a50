"""The console pages about runs: the sync dashboard, a live activity, a run profile's history.

Pages sit inside the admin's look (they extend ``admin/base_site.html``) and are for
staff only. One check, ``request.htmx``, decides whether a view answers with the
whole page or with the partial that HTMX polls. Every page runs a fixed number of
queries, however many systems, objects or RPEIs there are.

The small helpers at the top (:func:`console_view`, :func:`page_context`) and the admin
URL builders (:mod:`console.links`, imported from here by the other pages) are shared
with the metaverse pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import (
    Count,
    ExpressionWrapper,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.fields import BooleanField
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from access.roles import CANCEL_PERMISSION, OVERRIDE_PERMISSION, RUN_PERMISSION
from connectors.choices import (
    COUNTED_CHANGE_TYPES,
    FINISHED_ACTIVITY_STATUSES,
    ActivityStatus,
    CsoStatus,
    JoinType,
    ObjectChangeType,
    RpeiErrorType,
)
from connectors.dead_runs import fail_dead
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectorSpaceObject,
    RunProfile,
    RunProfileExecutionItem,
    Schedule,
    ScheduleStep,
)
from console.changes import AttributeChange, item_changes
from console.links import admin_change_url, admin_changelist_url
from console.previews import PreviewedExportFilterForm, effect_counts, previewed_exports_page
from exports.choices import ApprovalState, PendingExportStatus
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from runs.preview import PREVIEWABLE, NotPreviewable
from runs.progress import (
    ActivityProgress,
    RunPoint,
    activity_progress,
    format_duration,
    history_chart,
    is_running,
)
from runs.schedules import next_runs
from runs.tasks import ScheduleHasNoSteps, queue_run, run_schedule_now
from runs.threshold_override import (
    audit_line,
    can_override,
    offered_override,
    rerun_overriding,
)

#: RPEIs per page on a finished activity's page.
ITEMS_PER_PAGE = 100
#: Failed pending exports listed on the dashboard, the most recent first.
RECENT_FAILED_EXPORTS = 10
#: Runs drawn on a run profile's history chart.
HISTORY_RUNS = 50
#: The query parameter of the page of a preview's pending exports.
EXPORTS_PAGE = "exports_page"
#: Error-type filter values that are not error types themselves.
ANY_ERROR = "any"
NO_ERROR = "none"

View = Callable[..., HttpResponseBase]


# -- shared console helpers ----------------------------------------------------------


def console_view(permission: str | None = None) -> Callable[[View], View]:
    """Restrict a console view to active staff users holding ``permission``.

    Anonymous and non-staff users are sent to the admin login (an HTMX poll gets an
    ``HX-Redirect`` so the whole page goes there, not just the polled fragment); a
    staff user without ``permission`` gets 403.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not (user.is_active and user.is_staff):
                login = redirect_to_login(request.get_full_path(), reverse("admin:login"))
                if request.htmx:
                    return HttpResponseClientRedirect(login.url)
                return login
            if permission and not user.has_perm(permission):
                raise PermissionDenied(f"This page needs the {permission!r} permission.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def page_context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    """The admin's own template context (header, sidebar) plus the page's."""
    return {**admin.site.each_context(request), "title": title, **extra}


# -- dashboard -----------------------------------------------------------------------


@dataclass
class RunProfileSummary:
    """A run profile and its last activity (None when it never ran)."""

    run_profile: RunProfile
    last_activity: Activity | None

    @property
    def duration(self) -> str:
        return format_duration(self.last_activity.duration_seconds if self.last_activity else None)

    @property
    def url(self) -> str:
        return admin_change_url(RunProfile, self.run_profile.pk)

    @property
    def previewable(self) -> bool:
        """Whether the profile can be previewed (not an export run)."""
        return self.run_profile.profile_type in PREVIEWABLE

    @property
    def errors_url(self) -> str:
        if self.last_activity is None:
            return ""
        url = reverse("console:activity", args=[self.last_activity.pk])
        return f"{url}?error_type={ANY_ERROR}"


@dataclass
class SystemSummary:
    """What the dashboard shows about one connected system."""

    system: ConnectedSystem
    cso_by_status: dict[str, int] = field(default_factory=dict)
    joined: int = 0
    not_joined: int = 0
    pending_exports_by_status: dict[str, int] = field(default_factory=dict)
    awaiting_approval: int = 0
    run_profiles: list[RunProfileSummary] = field(default_factory=list)

    @property
    def cso_total(self) -> int:
        return self.joined + self.not_joined

    @property
    def url(self) -> str:
        """The system's own page (its settings, run profiles and object types)."""
        return admin_change_url(ConnectedSystem, self.system.pk)

    def _cso_url(self, **filters: Any) -> str:
        return admin_changelist_url(
            ConnectorSpaceObject, connected_system__id__exact=self.system.pk, **filters
        )

    @property
    def joined_url(self) -> str:
        return self._cso_url(metaverse_object__isnull="False")

    @property
    def not_joined_url(self) -> str:
        return self._cso_url(join_type__exact=JoinType.NOT_JOINED)

    @property
    def cso_total_url(self) -> str:
        return self._cso_url()

    @property
    def last_run_errors(self) -> int:
        return sum(p.last_activity.error_count for p in self.run_profiles if p.last_activity)

    def cso_rows(self) -> list[tuple[str, int, str]]:
        """(status label, count, admin link) for every CSO status."""
        return [
            (
                status.label,
                self.cso_by_status.get(status.value, 0),
                self._cso_url(status__exact=status.value),
            )
            for status in CsoStatus
        ]

    def pending_export_rows(self) -> list[tuple[str, int, str, bool]]:
        """(status label, count, admin link, needs attention) for every pending-export
        status that occurs; failed exports need a person."""
        return [
            (
                status.label,
                self.pending_exports_by_status[status.value],
                admin_changelist_url(
                    PendingExport,
                    connected_system__id__exact=self.system.pk,
                    status__exact=status.value,
                ),
                status == PendingExportStatus.FAILED,
            )
            for status in PendingExportStatus
            if self.pending_exports_by_status.get(status.value)
        ]

    @property
    def failed_exports(self) -> int:
        return self.pending_exports_by_status.get(PendingExportStatus.FAILED, 0)

    @property
    def failed_exports_url(self) -> str:
        """The system's failed exports in the admin, where they are retried or discarded."""
        return admin_changelist_url(
            PendingExport,
            connected_system__id__exact=self.system.pk,
            status__exact=PendingExportStatus.FAILED,
        )

    @property
    def awaiting_approval_url(self) -> str:
        return admin_changelist_url(
            PendingExport,
            connected_system__id__exact=self.system.pk,
            approval__exact=ApprovalState.AWAITING_APPROVAL,
        )


@dataclass(frozen=True)
class FailedExport:
    """A failed pending export on the dashboard, with its admin page (Retry / Discard)."""

    export: PendingExport
    url: str


@dataclass
class FailedExports:
    """What the dashboard shows of the failed exports: the count of each system that
    has any, the most recent ones with their last error, a link to act on them all."""

    by_system: list[SystemSummary]
    recent: list[FailedExport]

    @property
    def total(self) -> int:
        return sum(summary.failed_exports for summary in self.by_system)

    @property
    def url(self) -> str:
        return admin_changelist_url(PendingExport, status__exact=PendingExportStatus.FAILED)


def failed_exports(summaries: list[SystemSummary]) -> FailedExports:
    """The failed exports of the systems summarised: one query, none when there are none."""
    by_system = [summary for summary in summaries if summary.failed_exports]
    if not by_system:
        return FailedExports([], [])
    recent = (
        PendingExport.objects.filter(status=PendingExportStatus.FAILED)
        .select_related("connected_system", "cs_object")
        .only(
            "change_type",
            "dn",
            "error_count",
            "last_error",
            "updated_at",
            "connected_system__name",
            "cs_object__external_id",
            "cs_object__secondary_external_id",
        )
        .order_by("-updated_at", "-pk")[:RECENT_FAILED_EXPORTS]
    )
    return FailedExports(
        by_system, [FailedExport(pe, admin_change_url(PendingExport, pe.pk)) for pe in recent]
    )


@dataclass
class AwaitingApproval:
    """The pending exports awaiting approval: the count of each system that has any and
    a link to them all (where approvers approve or reject them)."""

    by_system: list[SystemSummary]

    @property
    def total(self) -> int:
        return sum(summary.awaiting_approval for summary in self.by_system)

    @property
    def url(self) -> str:
        return admin_changelist_url(PendingExport, approval__exact=ApprovalState.AWAITING_APPROVAL)


def awaiting_approval(summaries: list[SystemSummary]) -> AwaitingApproval:
    return AwaitingApproval([summary for summary in summaries if summary.awaiting_approval])


@dataclass(frozen=True)
class ActiveRun:
    """A run going on or waiting its turn, with its progress."""

    activity: Activity
    progress: ActivityProgress

    @property
    def system_url(self) -> str:
        return admin_change_url(ConnectedSystem, self.activity.connected_system_id)

    @property
    def waiting(self) -> str:
        """How long a queued run has waited for its turn."""
        return format_duration((timezone.now() - self.activity.created_at).total_seconds())


def active_runs() -> list[ActiveRun]:
    """The runs in progress (first) and the queued ones, oldest first: one query."""
    now = timezone.now()
    activities = (
        Activity.objects.filter(status__in=(ActivityStatus.IN_PROGRESS, ActivityStatus.QUEUED))
        .select_related("connected_system", "schedule")
        .only(
            "pk",
            "status",
            "phase",
            "profile_name",
            "profile_type",
            "preview",
            "objects_processed",
            "objects_total",
            "error_count",
            "cancel_requested",
            "initiated_by_name",
            "created_at",
            "started_at",
            "finished_at",
            "connected_system__name",
            "schedule__name",
        )
        .order_by("created_at", "pk")
    )
    runs = [ActiveRun(activity, activity_progress(activity, now)) for activity in activities]
    return sorted(runs, key=lambda run: run.activity.status != ActivityStatus.IN_PROGRESS)


@dataclass(frozen=True)
class ScheduleSummary:
    """A schedule (a cycle of run profiles), its last run and its next one."""

    schedule: Schedule
    steps: list[RunProfile]
    last_activity: Activity | None
    next_run: datetime | None

    @property
    def url(self) -> str:
        return admin_change_url(Schedule, self.schedule.pk)


def schedule_summaries() -> list[ScheduleSummary]:
    """Every schedule with its steps, the latest activity it started and its next run
    time: four queries, whatever the number of schedules."""
    latest = Activity.objects.filter(schedule=OuterRef("pk")).order_by("-created_at", "-pk")
    schedules = list(
        Schedule.objects.annotate(
            last_activity_id=Subquery(latest.values("pk")[:1])
        ).prefetch_related(
            Prefetch(
                "steps",
                queryset=ScheduleStep.objects.select_related("run_profile__connected_system").only(
                    "schedule_id",
                    "order",
                    "run_profile__name",
                    "run_profile__connected_system__name",
                ),
            )
        )
    )
    activities = Activity.objects.only(
        "pk", "status", "profile_name", "created_at", "error_count"
    ).in_bulk([s.last_activity_id for s in schedules if s.last_activity_id])
    upcoming = next_runs(schedules)
    return [
        ScheduleSummary(
            schedule,
            [step.run_profile for step in schedule.steps.all()],
            activities.get(schedule.last_activity_id),
            upcoming.get(schedule.pk),
        )
        for schedule in schedules
    ]


def dashboard_summaries() -> list[SystemSummary]:
    """One summary per connected system, in five queries whatever the data size."""
    systems = ConnectedSystem.objects.only("id", "name", "connector", "description")
    summaries = {system.pk: SystemSummary(system) for system in systems}
    _add_cso_counts(summaries)
    _add_pending_export_counts(summaries)
    _add_last_runs(summaries)
    return list(summaries.values())


def _add_cso_counts(summaries: dict[int, SystemSummary]) -> None:
    """CSOs by system, status and joined or not: one aggregate query."""
    rows = (
        ConnectorSpaceObject.objects.annotate(
            is_joined=ExpressionWrapper(
                Q(metaverse_object__isnull=False), output_field=BooleanField()
            )
        )
        .values("connected_system_id", "status", "is_joined")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        summary = summaries.get(row["connected_system_id"])
        if summary is None:  # a system created since the systems were read
            continue
        summary.cso_by_status[row["status"]] = (
            summary.cso_by_status.get(row["status"], 0) + row["n"]
        )
        if row["is_joined"]:
            summary.joined += row["n"]
        else:
            summary.not_joined += row["n"]


def _add_pending_export_counts(summaries: dict[int, SystemSummary]) -> None:
    """Pending exports by system, status and approval: one aggregate query."""
    rows = (
        PendingExport.objects.values("connected_system_id", "status", "approval")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        summary = summaries.get(row["connected_system_id"])
        if summary is None:
            continue
        by_status = summary.pending_exports_by_status
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        if row["approval"] == ApprovalState.AWAITING_APPROVAL:
            summary.awaiting_approval += row["n"]


def _add_last_runs(summaries: dict[int, SystemSummary]) -> None:
    """Every run profile with its latest activity: two queries."""
    latest = Activity.objects.filter(run_profile=OuterRef("pk"), preview=False).order_by(
        "-created_at", "-pk"
    )
    profiles = list(
        RunProfile.objects.annotate(last_activity_id=Subquery(latest.values("pk")[:1])).order_by(
            "name"
        )
    )
    activity_ids = [p.last_activity_id for p in profiles if p.last_activity_id]
    activities = Activity.objects.in_bulk(activity_ids)
    for profile in profiles:
        if profile.connected_system_id in summaries:
            summaries[profile.connected_system_id].run_profiles.append(
                RunProfileSummary(profile, activities.get(profile.last_activity_id))
            )


#: What the dashboard's pages need to see: the systems (and so the dashboard itself).
DASHBOARD_PERMISSION = "connectors.view_connectedsystem"


@console_view(DASHBOARD_PERMISSION)
def dashboard(request: HttpRequest) -> HttpResponse:
    """The sync dashboard: what runs now, what needs a person, the schedules, and every
    connected system's objects, last runs and exports — with Run buttons for those
    who may run. The HTMX poll gets all but the runs (:func:`dashboard_runs` polls
    those, more often)."""
    summaries = dashboard_summaries()
    context = page_context(
        request,
        "Sync dashboard",
        summaries=summaries,
        failed=failed_exports(summaries),
        awaiting=awaiting_approval(summaries),
        schedules=schedule_summaries(),
        can_run=request.user.has_perm(RUN_PERMISSION),
    )
    if request.htmx:
        return render(request, "console/partials/dashboard_systems.html", context)
    context["active_runs"] = active_runs()
    return render(request, "console/dashboard.html", context)


@console_view(DASHBOARD_PERMISSION)
def dashboard_runs(request: HttpRequest) -> HttpResponse:
    """The dashboard's "Running and queued" panel, which HTMX polls every 2 seconds."""
    return render(request, "console/partials/dashboard_runs.html", {"active_runs": active_runs()})


@console_view(RUN_PERMISSION)
@require_POST
def run_profile_now(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a run of a run profile on the django-q2 cluster, as the admin's Run button
    does (the audit trail records who, through the console); back to the dashboard."""
    profile = get_object_or_404(RunProfile.objects.select_related("connected_system"), pk=pk)
    activity = queue_run(profile, user=request.user)
    messages.success(
        request,
        format_html(
            'Queued {} of {} as <a href="{}">activity #{}</a>; a worker (qcluster) runs it.',
            profile.name,
            profile.connected_system.name,
            reverse("console:activity", args=[activity.pk]),
            activity.pk,
        ),
    )
    return redirect("console:dashboard")


@console_view(RUN_PERMISSION)
@require_POST
def preview_run_profile(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a preview of a run profile (:mod:`runs.preview`): the run as it would go,
    changing nothing; to its activity's page, which shows what the run would do.

    An export run is not previewed (what it would send is its system's pending
    exports): refused with why, back to the dashboard."""
    profile = get_object_or_404(RunProfile.objects.select_related("connected_system"), pk=pk)
    try:
        activity = queue_run(profile, user=request.user, preview=True)
    except NotPreviewable as refusal:
        messages.error(request, str(refusal))
        return redirect("console:dashboard")
    messages.success(
        request,
        format_html(
            "Queued a preview of {} of {} as activity #{}: nothing will be changed. "
            "A worker (qcluster) runs it; this page then shows what the run would do.",
            profile.name,
            profile.connected_system.name,
            activity.pk,
        ),
    )
    return redirect("console:activity", pk=activity.pk)


@console_view(RUN_PERMISSION)
@require_POST
def run_schedule(request: HttpRequest, pk: int) -> HttpResponse:
    """Run a schedule (a cycle) now, enabled or not (:func:`runs.tasks.run_schedule_now`);
    back to the dashboard, where its first step shows queued."""
    schedule = get_object_or_404(Schedule, pk=pk)
    try:
        first = run_schedule_now(schedule, request.user)
    except ScheduleHasNoSteps as refusal:
        messages.error(request, str(refusal))
        return redirect("console:dashboard")
    messages.success(
        request,
        format_html(
            "Schedule {} handed to the workers: its first step, {}, is queued as "
            '<a href="{}">activity #{}</a>; the other steps follow in order.',
            schedule.name,
            first.profile_name,
            reverse("console:activity", args=[first.pk]),
            first.pk,
        ),
    )
    return redirect("console:dashboard")


# -- activity ------------------------------------------------------------------------


class ItemFilterForm(forms.Form):
    """The filters of a finished activity's RPEI list (query parameters)."""

    change_type = forms.ChoiceField(
        required=False, choices=[("", "All changes"), *ObjectChangeType.choices]
    )
    error_type = forms.ChoiceField(
        required=False,
        choices=[
            ("", "All"),
            (ANY_ERROR, "Any error"),
            (NO_ERROR, "No error"),
            *[(value, label) for value, label in RpeiErrorType.choices if value],
        ],
    )

    def filter(self, items: QuerySet[RunProfileExecutionItem]) -> QuerySet:
        """Apply the (valid) filters to ``items``."""
        change_type = self.cleaned_data.get("change_type")
        error_type = self.cleaned_data.get("error_type")
        if change_type:
            items = items.filter(change_type=change_type)
        if error_type == ANY_ERROR:
            items = items.exclude(error_type="")
        elif error_type == NO_ERROR:
            items = items.filter(error_type="")
        elif error_type:
            items = items.filter(error_type=error_type)
        return items


@dataclass(frozen=True)
class ItemRow:
    """One RPEI of the list with the links the page shows for it, and what changed."""

    item: RunProfileExecutionItem
    cso_url: str
    mvo_admin_url: str
    mvo_url: str
    changes: list[AttributeChange] = field(default_factory=list)
    #: Of a preview's RPEI: the object its run would have made, which has no page.
    would_create: str = ""


#: The columns of an RPEI that :func:`item_rows` reads.
ITEM_FIELDS = (
    "pk",
    "change_type",
    "error_type",
    "message",
    "external_id",
    "cs_object_id",
    "metaverse_object_id",
    "details",
)


def activity_items(activity: Activity, form: ItemFilterForm, page_number: str | None) -> Page:
    """One page of the activity's RPEIs, filtered; its ``object_list`` holds ItemRows."""
    items = form.filter(
        RunProfileExecutionItem.objects.filter(activity=activity).order_by("pk").only(*ITEM_FIELDS)
    )
    page = Paginator(items, ITEMS_PER_PAGE).get_page(page_number)
    on_page = list(page.object_list)
    page.object_list = item_rows(on_page, preview=activity.preview)
    return page


def item_rows(items: list[RunProfileExecutionItem], *, preview: bool = False) -> list[ItemRow]:
    """The rows of these RPEIs, their references named (one query per kind)."""
    changes = item_changes(items)
    return [_item_row(item, changes[item.pk], preview) for item in items]


#: What an RPEI of a preview made that the rollback took back: the object has no page.
_MADE_BY_A_PREVIEW = {
    ObjectChangeType.PROJECTED: ("metaverse_object_id", "new MVO (would be projected)"),
    ObjectChangeType.ADDED: ("cs_object_id", "new CSO (would be added)"),
    ObjectChangeType.PROVISIONED: ("cs_object_id", "new CSO (would be provisioned)"),
}


def _item_row(
    item: RunProfileExecutionItem, changes: list[AttributeChange], preview: bool
) -> ItemRow:
    mvo_id = item.metaverse_object_id
    made = _MADE_BY_A_PREVIEW.get(item.change_type) if preview else None
    return ItemRow(
        item=item,
        cso_url=admin_change_url(ConnectorSpaceObject, item.cs_object_id),
        mvo_admin_url=admin_change_url(MetaverseObject, mvo_id),
        mvo_url=reverse("console:mvo", args=[mvo_id]) if mvo_id else "",
        changes=changes,
        would_create=made[1] if made and getattr(item, made[0]) is None else "",
    )


def change_counts(activity: Activity) -> list[tuple[str, str, int]]:
    """(change type, label, count) for every counted change type, in the spec's order."""
    labels = dict(ObjectChangeType.choices)
    return [(key, labels[key], activity.counts.get(key, 0)) for key in COUNTED_CHANGE_TYPES]


def can_cancel(user: Any, activity: Activity) -> bool:
    """The Cancel button shows while the run goes on, to users who may change activities."""
    return is_running(activity) and user.has_perm(CANCEL_PERMISSION)


def activity_context(request: HttpRequest, activity: Activity) -> dict[str, Any]:
    """Everything the activity page and its polled partial show."""
    progress = activity_progress(activity, timezone.now())
    context = page_context(
        request,
        f"Activity #{activity.pk}" + (" (preview)" if activity.preview else ""),
        activity=activity,
        progress=progress,
        change_counts=change_counts(activity),
        can_cancel=can_cancel(request.user, activity),
        activity_admin_url=admin_change_url(Activity, activity.pk),
        audit_line=audit_line(activity),
        override=(
            offered_override(activity)
            if can_override(request.user) and not activity.preview
            else None
        ),
    )
    if not progress.running:
        form = ItemFilterForm(request.GET)
        context["filter_form"] = form
        if form.is_valid():
            context["items"] = activity_items(activity, form, request.GET.get("page"))
        if activity.preview:
            context.update(preview_exports_context(request, activity))
    return context


def preview_exports_context(request: HttpRequest, activity: Activity) -> dict[str, Any]:
    """What a finished preview's page shows of the pending exports its run would
    create, change or remove (:mod:`console.previews`), filtered, a page at a time."""
    form = PreviewedExportFilterForm(request.GET)
    context: dict[str, Any] = {
        "exports_form": form,
        "effect_counts": effect_counts(activity),
        # Each filter form keeps the other list's filters when it is submitted.
        "items_filters_kept": _kept(request, lambda key: key.startswith(f"{form.prefix}-")),
        "exports_filters_kept": _kept(request, lambda key: key in ItemFilterForm.base_fields),
    }
    if activity.run_profile_id is None:  # "What would a sync do?" of one object
        context["what_if_url"] = reverse("console:what-if", args=[activity.pk])
    if form.is_valid():
        context["previewed_exports"] = previewed_exports_page(
            activity, form, request.GET.get(EXPORTS_PAGE)
        )
    return context


def _kept(request: HttpRequest, wanted: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The query parameters ``wanted`` keeps (not the page numbers), as (name, value)."""
    return [
        (key, value)
        for key, value in request.GET.items()
        if wanted(key) and key not in ("page", EXPORTS_PAGE) and value
    ]


@console_view("connectors.view_activity")
def activity_page(request: HttpRequest, pk: int) -> HttpResponse:
    """An activity, live while it runs (HTMX polls the partial), its RPEIs when done.

    An invalid filter answers 400 with the form's errors on the page (the HTMX poll
    answers 200 so that the swap happens and polling stops).
    """
    activity = get_object_or_404(
        Activity.objects.select_related(
            "connected_system", "run_profile", "initiated_by", "schedule"
        ),
        pk=pk,
    )
    context = activity_context(request, activity)
    if request.htmx:
        return render(request, "console/partials/activity_poll.html", context)
    forms_shown = [context.get("filter_form"), context.get("exports_form")]
    status = 400 if any(f is not None and not f.is_valid() for f in forms_shown) else 200
    return render(request, "console/activity.html", context, status=status)


@console_view(CANCEL_PERMISSION)
@require_POST
def cancel_activity(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask a running activity to stop; the run stops at its next batch boundary.

    Only sets ``cancel_requested``; an activity already finished is left alone, and one
    whose process is gone (nothing holds its run lock) is recorded as failed at once.
    """
    activity = get_object_or_404(Activity.objects.select_related("connected_system"), pk=pk)
    if fail_dead([activity], found_by="its cancellation was asked"):
        messages.warning(
            request,
            f"Activity #{pk} had stopped: the process running it was gone. "
            "It is recorded as failed; its system can run again.",
        )
        return redirect("console:activity", pk=pk)
    asked = (
        Activity.objects.filter(pk=activity.pk)
        .exclude(status__in=FINISHED_ACTIVITY_STATUSES)
        .update(cancel_requested=True)
    )
    if asked:
        messages.success(
            request, f"Activity #{pk}: cancellation requested; it stops after the current batch."
        )
    else:
        messages.warning(request, f"Activity #{pk} has already finished; nothing to cancel.")
    return redirect("console:activity", pk=pk)


@console_view(OVERRIDE_PERMISSION)
@require_POST
def override_threshold(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a run that stopped at a threshold again, that threshold lifted, by this
    user (:mod:`runs.threshold_override`); go to the new activity's page."""
    activity = get_object_or_404(Activity.objects.select_related("run_profile"), pk=pk)
    if activity.preview:  # "run again" would run for real what only a preview tried
        messages.warning(
            request,
            f"Activity #{pk} is a preview, which changed nothing: run its profile to run it.",
        )
        return redirect("console:activity", pk=pk)
    override = offered_override(activity)
    if override is None:
        messages.warning(
            request,
            f"Activity #{pk} did not stop at a threshold, or its run profile ran since: "
            "nothing to run again.",
        )
        return redirect("console:activity", pk=pk)
    rerun = rerun_overriding(override, request.user)
    messages.success(request, f"Queued activity #{rerun.pk}: {audit_line(rerun)}.")
    return redirect("console:activity", pk=rerun.pk)


# -- run profile history -------------------------------------------------------------


def recent_runs(run_profile: RunProfile, limit: int = HISTORY_RUNS) -> list[RunPoint]:
    """The profile's last ``limit`` started runs, oldest first, as chart points
    (previews, which changed nothing, are not its runs)."""
    now = timezone.now()
    activities = (
        Activity.objects.filter(run_profile=run_profile, started_at__isnull=False, preview=False)
        .order_by("-started_at", "-pk")
        .only("pk", "status", "started_at", "finished_at", "objects_processed", "error_count")[
            :limit
        ]
    )
    return [
        RunPoint(
            activity_id=activity.pk,
            started_at=activity.started_at,
            status=activity.status,
            duration_seconds=((activity.finished_at or now) - activity.started_at).total_seconds(),
            objects_processed=activity.objects_processed,
            error_count=activity.error_count,
        )
        for activity in reversed(activities)
    ]


@console_view("connectors.view_activity")
def run_profile_history(request: HttpRequest, pk: int) -> HttpResponse:
    """Duration and objects processed of a run profile's last runs, as an inline SVG."""
    run_profile = get_object_or_404(RunProfile.objects.select_related("connected_system"), pk=pk)
    runs = recent_runs(run_profile)
    context = page_context(
        request,
        f"History of {run_profile}",
        run_profile=run_profile,
        chart=history_chart(runs),
        runs=list(reversed(runs)),
    )
    return render(request, "console/run_profile_history.html", context)
