"""Pending exports — read, and approved, rejected, retried or discarded one by one or
in bulk — and the audit trail of those decisions.

The acts are the admin's (:func:`exports.approval.decide`,
:func:`exports.intervention.retry` and :func:`~exports.intervention.discard`), with the
same permissions; each records the user, the time and the reason on the audit trail.
Acting on one export that the act does not apply to (approving one that awaits no
approval, retrying one that has not failed) is a 409 naming it; a bulk act leaves those
alone and lists them as skipped, each with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet
from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.response import Response

from access.roles import APPROVE_PERMISSION, INTERVENE_PERMISSION
from api.errors import Conflict
from api.filters import ApprovalAuditEntryFilter, PendingExportFilter
from api.pagination import NewestFirstCursorPagination
from api.permissions import requires
from api.serializers.exports import (
    ActionResultSerializer,
    ApprovalAuditEntrySerializer,
    BulkDecisionSerializer,
    DecisionSerializer,
    PendingExportSerializer,
)
from api.views.base import ReadOnlyViewSet
from exports.approval import decide
from exports.choices import ApprovalAction, ApprovalState, PendingExportStatus
from exports.intervention import discard, retry
from exports.models import ApprovalAuditEntry, PendingExport

DOING = {
    "approve": "Approving",
    "reject": "Rejecting",
    "retry": "Retrying",
    "discard": "Discarding",
}
#: Skipped exports a bulk answer names one by one; the rest are counted.
NAMED_SKIPS = 1000


def describe(pe: Any) -> str:
    """ "pending export 7 (Directory delete uid=ann,…)" from an annotated export."""
    target = pe.dn or pe.cso_secondary_external_id or pe.cso_external_id or f"CSO {pe.cs_object_id}"
    return f"pending export {pe.pk} ({pe.connected_system_name} {pe.change_type} {target})"


@dataclass(frozen=True)
class Act:
    """One of the four acts on pending exports."""

    name: str  # "approve": the URL
    done: str  # ApprovalAction: what the audit trail records
    permission: str
    reason_required: bool
    applies: Callable[[Any], bool]  # to one (annotated) export
    why_not: Callable[[Any], str]  # why it does not apply to that one
    perform: Callable[[list[PendingExport], Any, str], list[PendingExport]]

    @property
    def doing(self) -> str:
        """ "Approving pending exports", for a refusal."""
        return f"{DOING[self.name]} pending exports"


def _awaiting(pe: Any) -> bool:
    return pe.approval == ApprovalState.AWAITING_APPROVAL


def _not_awaiting(pe: Any) -> str:
    return (
        f"{describe(pe)} is {pe.approval.replace('_', ' ')}, not awaiting approval: only "
        "exports awaiting approval can be approved or rejected"
    )


def _failed(pe: Any) -> bool:
    return pe.status == PendingExportStatus.FAILED


def _not_failed(pe: Any) -> str:
    return (
        f"{describe(pe)} is {pe.status.replace('_', ' ')}, not failed: only failed exports "
        "can be retried or discarded"
    )


ACTS = {
    act.name: act
    for act in (
        Act(
            "approve",
            ApprovalAction.APPROVED,
            APPROVE_PERMISSION,
            False,
            _awaiting,
            _not_awaiting,
            lambda pes, user, reason: decide(pes, user, approve=True, reason=reason),
        ),
        Act(
            "reject",
            ApprovalAction.REJECTED,
            APPROVE_PERMISSION,
            True,
            _awaiting,
            _not_awaiting,
            lambda pes, user, reason: decide(pes, user, approve=False, reason=reason),
        ),
        Act(
            "retry",
            ApprovalAction.RETRIED,
            INTERVENE_PERMISSION,
            False,
            _failed,
            _not_failed,
            lambda pes, user, reason: retry(pes, user, reason=reason),
        ),
        Act(
            "discard",
            ApprovalAction.DISCARDED,
            INTERVENE_PERMISSION,
            True,
            _failed,
            _not_failed,
            lambda pes, user, reason: discard(pes, user, reason=reason),
        ),
    )
}


def pending_exports() -> QuerySet:
    """Pending exports with the names their representation shows, without loading the
    connected system (its secrets) or the CSO (its attributes)."""
    return PendingExport.objects.annotate(
        connected_system_name=F("connected_system__name"),
        cso_external_id=F("cs_object__external_id"),
        cso_secondary_external_id=F("cs_object__secondary_external_id"),
        approved_by_name=F("approved_by__username"),
    )


def _one(act: Act) -> Callable[..., Response]:
    def view(self: PendingExportViewSet, request: Any, pk: str | None = None) -> Response:
        pe = self.get_object()
        reason = self.body(DecisionSerializer, act)["reason"]
        if not act.applies(pe):
            raise Conflict(left_alone(act, pe))
        done = act.perform([pe], request.user, reason)
        if not done:  # changed since it was read
            raise Conflict(left_alone(act, pending_exports().filter(pk=pe.pk).first() or pe))
        return Response({"action": act.done, "done": [pe.pk], "skipped": []})

    view.__name__ = act.name
    view.__doc__ = f"{act.name.capitalize()} one pending export."
    return view


def _many(act: Act) -> Callable[..., Response]:
    def view(self: PendingExportViewSet, request: Any) -> Response:
        body = self.body(BulkDecisionSerializer, act)
        selected = list(self.selection(body).order_by("pk"))
        applying = [pe for pe in selected if act.applies(pe)]
        done = {pe.pk for pe in act.perform(applying, request.user, body["reason"])}
        skipped = [
            {"id": pe.pk, "reason": left_alone(act, pe)} for pe in selected if pe.pk not in done
        ]
        found = {pe.pk for pe in selected}
        skipped += [
            {"id": pk, "reason": f"No pending export has id {pk}."}
            for pk in body.get("ids", [])
            if pk not in found
        ]
        return Response(
            {"action": act.done, "done": sorted(done), "skipped": skipped[:NAMED_SKIPS]}
        )

    view.__name__ = f"{act.name}_many"
    view.__doc__ = f"{act.name.capitalize()} pending exports chosen by ids or by a filter."
    return view


def left_alone(act: Act, pe: Any) -> str:
    """Why ``act`` left ``pe`` alone: it does not apply, or it changed meanwhile."""
    if not act.applies(pe):
        return _sentence(act.why_not(pe))
    return _sentence(
        f"{describe(pe)} was not {act.done}: it changed while the request was made; read it again"
    )


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _one_action(act: Act) -> Any:
    return extend_schema(
        summary=f"{act.name.capitalize()} a pending export",
        operation_id=f"pending_exports_{act.name}",
        description=_description(act),
        request=DecisionSerializer,
        responses={200: ActionResultSerializer},
    )(
        action(
            detail=True,
            methods=["post"],
            url_path=act.name,
            url_name=act.name,
            permission_classes=[requires(act.permission, act.doing)],
        )(_one(act))
    )


def _many_action(act: Act) -> Any:
    return extend_schema(
        summary=f"{act.name.capitalize()} pending exports in bulk",
        operation_id=f"pending_exports_{act.name}_many",
        description=_description(act)
        + " Exports of the selection the act does not apply to are left alone and "
        "listed in 'skipped', each with the reason.",
        request=BulkDecisionSerializer,
        responses={200: ActionResultSerializer},
    )(
        action(
            detail=False,
            methods=["post"],
            url_path=act.name,
            url_name=f"{act.name}-many",
            permission_classes=[requires(act.permission, act.doing)],
        )(_many(act))
    )


def _description(act: Act) -> str:
    applies = "awaiting approval" if act.applies is _awaiting else "failed"
    reason = "required" if act.reason_required else "optional"
    return (
        f"Applies to exports {applies}; needs {act.permission}. The reason ({reason}) is "
        "recorded with the user and the time on the audit trail (/api/v1/approval-audit/)."
    )


class PendingExportViewSet(ReadOnlyViewSet):
    """Pending exports: the changes JIM wants to make in connected systems, with their
    attribute changes (before → after), status and approval."""

    queryset = pending_exports().prefetch_related("attribute_changes")
    serializer_class = PendingExportSerializer
    filterset_class = PendingExportFilter
    pagination_class = NewestFirstCursorPagination

    approve = _one_action(ACTS["approve"])
    reject = _one_action(ACTS["reject"])
    retry = _one_action(ACTS["retry"])
    discard = _one_action(ACTS["discard"])
    approve_many = _many_action(ACTS["approve"])
    reject_many = _many_action(ACTS["reject"])
    retry_many = _many_action(ACTS["retry"])
    discard_many = _many_action(ACTS["discard"])

    def get_queryset(self) -> QuerySet:
        if self.action in ACTS or (self.action or "").endswith("_many"):
            return pending_exports()  # no attribute changes: the act loads its own
        return super().get_queryset()

    def body(self, serializer_class: type, act: Act) -> dict[str, Any]:
        body = serializer_class(data=self.request.data, reason_required=act.reason_required)
        body.is_valid(raise_exception=True)
        return body.validated_data

    def selection(self, body: dict[str, Any]) -> QuerySet:
        """The exports a bulk body names, by ids or by the list's filters."""
        if "ids" in body:
            return pending_exports().filter(pk__in=body["ids"])
        data = QueryDict(mutable=True)
        for name, value in body["filter"].items():
            data.setlist(name, [str(v) for v in value] if isinstance(value, list) else [str(value)])
        filterset = PendingExportFilter(data=data, queryset=pending_exports())
        unknown = set(data) - set(filterset.filters)
        if unknown or not filterset.is_valid():
            errors = dict(filterset.errors)
            errors.update({name: ["Not a filter of pending exports."] for name in unknown})
            raise exceptions.ValidationError({"filter": errors})
        return filterset.qs


class ApprovalAuditViewSet(ReadOnlyViewSet):
    """The audit trail of pending exports: who approved, rejected, retried or discarded
    which export, when and why (kept after the export is gone)."""

    queryset = ApprovalAuditEntry.objects.all()
    serializer_class = ApprovalAuditEntrySerializer
    filterset_class = ApprovalAuditEntryFilter
    pagination_class = NewestFirstCursorPagination
