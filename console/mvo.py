"""The console page of one MVO: its attributes and their sources, joins, exports, history.

Staff only, inside the admin's look (see :mod:`console.views`). The page runs a
fixed number of queries: reference values, contributing systems and sync rules are
each looked up once for the whole page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from access.roles import MANAGE_MVO_PERMISSION, RUN_PERMISSION
from connectors.choices import AttributeDataType
from connectors.models import ConnectedSystem, ConnectorSpaceObject, RunProfileExecutionItem
from console.changes import item_changes
from console.pending_changes import export_changes
from console.value_history import timeline
from console.views import admin_change_url, console_view, page_context
from exports.models import PendingExport
from history.models import ObjectKind
from metaverse.models import MetaverseAttribute, MetaverseObject, SyncRule
from metaverse.sync.disabling import disabled_text, with_delete_after_days
from runs import mvo_actions
from runs.runner import AlreadyRunning

#: RPEIs shown in the MVO's recent history.
HISTORY_ITEMS = 50


@dataclass(frozen=True)
class ReferenceLink:
    """A reference value: the referenced MVO's console page and display name.

    ``url`` is '' when the value names no existing MVO (shown as the raw value).
    """

    value: Any
    label: str
    url: str


@dataclass(frozen=True)
class AttributeRow:
    """One MVO attribute with the system and sync rule that contributed its values."""

    name: str
    values: list[Any]
    references: list[ReferenceLink] | None
    system: ConnectedSystem | None
    system_url: str
    rule: SyncRule | None
    rule_url: str


def reference_attribute_names(mvo: MetaverseObject) -> set[str]:
    """Names of the reference-typed attributes of the MVO's object type."""
    return set(
        MetaverseAttribute.objects.filter(
            object_type_id=mvo.object_type_id, data_type=AttributeDataType.REFERENCE
        ).values_list("name", flat=True)
    )


def reference_links(values: list[Any]) -> dict[Any, ReferenceLink]:
    """Links for every reference value (an MVO id), with one query for all of them."""
    ids = {reference_id(value) for value in values} - {None}
    targets = (
        MetaverseObject.objects.filter(pk__in=ids).select_related("object_type").in_bulk()
        if ids
        else {}
    )
    links = {}
    for value in values:
        target = targets.get(reference_id(value))
        links[value] = (
            ReferenceLink(value, str(target), reverse("console:mvo", args=[target.pk]))
            if target
            else ReferenceLink(value, str(value), "")
        )
    return links


def _reference_link(links: dict[Any, ReferenceLink], value: Any) -> ReferenceLink:
    """The link of one reference value; a value of an unexpected shape stays raw."""
    if isinstance(value, int | str) and value in links:
        return links[value]
    return ReferenceLink(value, str(value), "")


def reference_id(value: Any) -> int | None:
    """An object id from a stored reference value (an int, or digits as text); None
    otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def attribute_rows(mvo: MetaverseObject) -> list[AttributeRow]:
    """The MVO's attributes, sorted by name, with their sources and reference links."""
    reference_names = reference_attribute_names(mvo)
    reference_values = [
        value
        for name in reference_names
        for value in mvo.attributes.get(name, [])
        if isinstance(value, int | str)
    ]
    links = reference_links(reference_values)
    sources = mvo.attribute_sources or {}
    system_ids = {s.get("system") for s in sources.values() if isinstance(s, dict)} - {None}
    rule_ids = {s.get("rule") for s in sources.values() if isinstance(s, dict)} - {None}
    systems = ConnectedSystem.objects.only("id", "name").in_bulk(system_ids) if system_ids else {}
    rules = SyncRule.objects.only("id", "name").in_bulk(rule_ids) if rule_ids else {}
    rows = []
    for name in sorted(mvo.attributes, key=str.lower):
        values = mvo.attributes[name]
        source = sources.get(name) if isinstance(sources.get(name), dict) else {}
        system = systems.get(source.get("system"))
        rule = rules.get(source.get("rule"))
        rows.append(
            AttributeRow(
                name=name,
                values=values,
                references=(
                    [_reference_link(links, v) for v in values] if name in reference_names else None
                ),
                system=system,
                system_url=admin_change_url(ConnectedSystem, system.pk if system else None),
                rule=rule,
                rule_url=admin_change_url(SyncRule, rule.pk if rule else None),
            )
        )
    return rows


def joined_cs_objects(mvo: MetaverseObject) -> list[ConnectorSpaceObject]:
    """The MVO's CSOs in every connected system, with an admin link each (``admin_url``)."""
    csos = list(
        with_delete_after_days(mvo.cs_objects.all())
        .select_related("connected_system", "object_type")
        .order_by("connected_system__name", "pk")
    )
    for cso in csos:
        cso.admin_url = admin_change_url(ConnectorSpaceObject, cso.pk)
        cso.disabled_text = disabled_text(cso)
    return csos


def pending_exports(mvo: MetaverseObject, cso_ids: list[int]) -> list[PendingExport]:
    """Pending exports for the MVO or its CSOs, each with its changes read as people
    read them (``changes``: one attribute once, old → new; see
    :mod:`console.pending_changes`) and its admin link (a fixed number of queries)."""
    exports = list(
        PendingExport.objects.filter(Q(metaverse_object=mvo) | Q(cs_object_id__in=cso_ids))
        .select_related("connected_system", "cs_object")
        .order_by("connected_system__name", "pk")
    )
    changes = export_changes(exports)
    for export in exports:
        export.changes = changes.get(export.pk, [])
        export.admin_url = admin_change_url(PendingExport, export.pk)
    return exports


def recent_history(
    mvo: MetaverseObject, cso_ids: list[int], limit: int = HISTORY_ITEMS
) -> list[RunProfileExecutionItem]:
    """The RPEIs that name the MVO or one of its CSOs, newest first (a preview's are
    what did not happen: left out), with their activity
    and what each changed (``changes``: :class:`~console.changes.AttributeChange` rows
    naming the system, and the sync rule when the run recorded it; reference values
    resolved to names for the whole history at once)."""
    items = list(
        RunProfileExecutionItem.objects.filter(
            Q(metaverse_object=mvo) | Q(cs_object_id__in=cso_ids), activity__preview=False
        )
        .select_related("activity", "activity__connected_system")
        .order_by("-pk")[:limit]
    )
    system_of = {item.pk: item.activity.connected_system.name for item in items}
    changes = item_changes(items, system_of=system_of)
    for item in items:
        item.changes = changes[item.pk]
    return items


def disconnected_by_hand(mvo: MetaverseObject) -> list[ConnectorSpaceObject]:
    """The CSOs an administrator disconnected from this MVO and nobody re-joined or
    released since (one query), each with its admin link."""
    csos = list(
        ConnectorSpaceObject.objects.filter(disconnected_by_hand=True, disconnected_from_mvo=mvo.pk)
        .select_related("connected_system", "object_type")
        .order_by("connected_system__name", "pk")
    )
    for cso in csos:
        cso.admin_url = admin_change_url(ConnectorSpaceObject, cso.pk)
    return csos


@console_view("metaverse.view_metaverseobject")
def mvo_page(request: HttpRequest, pk: int) -> HttpResponse:
    """One MVO across every connected system: what it holds, where from, what is pending."""
    mvo = get_object_or_404(MetaverseObject.objects.select_related("object_type"), pk=pk)
    csos = joined_cs_objects(mvo)
    cso_ids = [cso.pk for cso in csos]
    may_manage = request.user.has_perm(MANAGE_MVO_PERMISSION)
    context = page_context(
        request,
        str(mvo),
        mvo=mvo,
        mvo_admin_url=admin_change_url(MetaverseObject, mvo.pk),
        attributes=attribute_rows(mvo),
        cs_objects=csos,
        pending_exports=pending_exports(mvo, cso_ids),
        history=recent_history(mvo, cso_ids),
        value_history=timeline(
            ObjectKind.MVO, mvo.pk, reverse("console:mvo-value-history", args=[mvo.pk])
        ),
        may_manage=may_manage,
        can_run=request.user.has_perm(RUN_PERMISSION),  # "What would a sync do?"
        disconnected=disconnected_by_hand(mvo) if may_manage else [],
    )
    return render(request, "console/mvo.html", context)


@console_view(MANAGE_MVO_PERMISSION)
@require_POST
def mvo_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Delete the MVO now, disconnect one of its CSOs, re-evaluate it, re-join a CSO
    disconnected by hand to it, or release such a CSO to sync (:mod:`runs.mvo_actions`),
    once the form's confirmation box is ticked; then the activity that did it, or the
    MVO page with why not."""
    mvo = get_object_or_404(MetaverseObject, pk=pk)
    if request.POST.get("confirm") != "yes":
        messages.error(request, f"Tick the confirmation box to {action} {mvo}.")
        return redirect("console:mvo", pk=pk)
    reason = request.POST.get("reason", "").strip()[:1000]
    try:
        if action == mvo_actions.DELETE:
            activity = mvo_actions.delete_now(mvo, request.user, reason)
        elif action == mvo_actions.DISCONNECT:
            cso = get_object_or_404(ConnectorSpaceObject, pk=request.POST.get("cso") or 0)
            activity = mvo_actions.disconnect(mvo, cso, request.user, reason)
        elif action == mvo_actions.RE_EVALUATE:
            activity = mvo_actions.re_evaluate(mvo, request.user, reason)
        elif action == mvo_actions.REJOIN:
            activity = mvo_actions.rejoin(_posted_cso(request), mvo, request.user, reason)
        elif action == mvo_actions.RELEASE:
            activity = mvo_actions.release(_posted_cso(request), request.user, reason)
        else:
            raise Http404(f"no action {action!r} on a metaverse object")
    except (AlreadyRunning, ValueError) as exc:
        messages.error(request, f"Could not {action} {mvo}: {exc}")
        return redirect("console:mvo", pk=pk)
    messages.success(request, f"{activity.profile_name}: {activity.get_status_display()}.")
    return redirect("console:activity", pk=activity.pk)


def _posted_cso(request: HttpRequest) -> ConnectorSpaceObject:
    """The CSO the form names by id (``cso``); ValueError naming what is wrong."""
    posted = request.POST.get("cso", "").strip()
    if not posted.isdigit():
        raise ValueError(f"{posted or 'nothing'!r} is not a connector space object id")
    cso = (
        ConnectorSpaceObject.objects.select_related("connected_system", "object_type")
        .filter(pk=int(posted))
        .first()
    )
    if cso is None:
        raise ValueError(f"there is no connector space object {posted}")
    return cso
