"""A preview activity's pending exports: what its run would create, change or remove.

A preview (:mod:`runs.preview`) records the pending exports its run would leave as
:class:`~runs.models.PreviewedExport` rows. The activity page of a preview lists them
beside its RPEIs, filtered by effect and change type and a page at a time — a first
sync of 100,000 people previews 100,000 creates — and the "What would a sync do?"
outcome (:mod:`console.what_if`) lists those of one object.

Each row reads like a pending export on the MVO page (:mod:`console.pending_changes`):
each attribute once, what the target holds → what it would hold; for a pending export
the run would change or remove, also what is pending now. Reference values (CSO ids)
are shown by the names the preview recorded (``reference_names``), with "(would be
created)" for a CSO the run would provision, else by the name of the CSO now. A page
runs a fixed number of queries: its rows, which attributes are references, the
referenced CSOs that exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from connectors.choices import AttributeDataType
from connectors.models import Activity, ConnectedSystemAttribute, ConnectorSpaceObject
from console.changes import WOULD_BE_CREATED, AttributeChange
from console.links import admin_change_url
from console.pending_changes import grouped_changes, named
from exports.changes import reference_names
from exports.choices import PendingExportChangeType
from exports.models import PendingExport
from runs.models import PreviewedExport, PreviewEffect
from runs.preview import previewed_export_counts

#: Previewed exports per page of a preview activity.
EXPORTS_PER_PAGE = 50
#: The prefix of the previewed exports' query parameters (``exports-effect`` …), apart
#: from those of the RPEI list on the same page.
PREFIX = "exports"


class PreviewedExportFilterForm(forms.Form):
    """The filters of a preview's pending exports (query parameters ``exports-…``)."""

    effect = forms.ChoiceField(
        required=False, label="Effect", choices=[("", "All effects"), *PreviewEffect.choices]
    )
    change_type = forms.ChoiceField(
        required=False,
        label="Export",
        choices=[("", "All changes"), *PendingExportChangeType.choices],
    )

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(data, prefix=PREFIX)

    def filter(self, exports: QuerySet[PreviewedExport]) -> QuerySet[PreviewedExport]:
        """Apply the (valid) filters to ``exports``."""
        if effect := self.cleaned_data.get("effect"):
            exports = exports.filter(effect=effect)
        if change_type := self.cleaned_data.get("change_type"):
            exports = exports.filter(change_type=change_type)
        return exports


@dataclass(frozen=True)
class PreviewedExportRow:
    """One previewed export as the page shows it."""

    export: PreviewedExport
    #: The CSO's admin page; '' for a CSO the run would provision.
    cso_url: str
    #: The stored pending export's admin page, for one the run would change or remove.
    pending_export_url: str
    #: Each attribute: what the target holds → what it would hold once exported.
    changes: list[AttributeChange] = field(default_factory=list)
    #: The same of the pending export as it is now (one the run would change).
    before: list[AttributeChange] = field(default_factory=list)

    @property
    def was(self) -> str:
        """What the pending export is now, when the run would change its kind."""
        before = self.export.before or {}
        if before.get("change_type") and before["change_type"] != self.export.change_type:
            return f"{before['change_type']} ({before.get('status', '')})"
        return ""


@dataclass(frozen=True)
class EffectCount:
    effect: str
    label: str
    count: int


def effect_counts(activity: Activity) -> list[EffectCount]:
    """How many pending exports the preview would create, change and remove."""
    counts = previewed_export_counts(activity)
    return [EffectCount(e.value, e.label, counts[e.value]) for e in PreviewEffect]


def previewed_exports_page(
    activity: Activity, form: PreviewedExportFilterForm, page_number: str | None
) -> Page:
    """One page of the preview's pending exports, filtered; its ``object_list`` holds
    :class:`PreviewedExportRow` items."""
    exports = form.filter(
        PreviewedExport.objects.filter(activity=activity)
        .select_related("connected_system")
        .defer(*_SYSTEM_DETAIL_FIELDS)
        .order_by("pk")
    )
    page = Paginator(exports, EXPORTS_PER_PAGE).get_page(page_number)
    page.object_list = previewed_export_rows(list(page.object_list))
    return page


def previewed_export_rows(exports: Sequence[PreviewedExport]) -> list[PreviewedExportRow]:
    """The rows of these previewed exports (two queries, whatever their number)."""
    references = _reference_attributes({export.connected_system_id for export in exports})
    grouped = {
        export.pk: (
            _grouped(export.changes, export.connected_system_id, references),
            _grouped((export.before or {}).get("changes"), export.connected_system_id, references)
            if export.effect == PreviewEffect.CHANGED
            else [],
        )
        for export in exports
    }
    current = reference_names(  # of the CSOs that exist: what is pending now names them
        value
        for after, before in grouped.values()
        for change, is_reference in (*after, *before)
        if is_reference
        for value in (*change.old, *change.new)
    )
    rows = []
    for export in exports:
        names = {**current, **_names(export.reference_names or {}, set(current))}
        after, before = grouped[export.pk]
        rows.append(
            PreviewedExportRow(
                export=export,
                cso_url=admin_change_url(ConnectorSpaceObject, export.cs_object_id),
                pending_export_url=admin_change_url(PendingExport, export.pending_export_id),
                changes=_named_all(after, names),
                before=_named_all(before, names),
            )
        )
    return rows


class _ChangeRow(NamedTuple):
    """An attribute change as a previewed export keeps it (a dict in ``changes``)."""

    attribute: str
    change_type: str
    values: list[Any]
    previous_values: list[Any]


def _grouped(
    changes: Any, system_id: int, references: set[tuple[int, str]]
) -> list[tuple[AttributeChange, bool]]:
    rows = [
        _ChangeRow(
            str(change.get("attribute", "")),
            str(change.get("change_type", "")),
            list(change.get("values") or []),
            list(change.get("previous_values") or []),
        )
        for change in (changes if isinstance(changes, list) else [])
        if isinstance(change, dict)
    ]
    return grouped_changes(rows, lambda attribute: (system_id, attribute) in references)


def _reference_attributes(system_ids: set[int]) -> set[tuple[int, str]]:
    """(system id, attribute) of every reference attribute of these systems' object
    types: a previewed export of a CSO the run would provision names no object type."""
    if not system_ids:
        return set()
    return set(
        ConnectedSystemAttribute.objects.filter(
            object_type__connected_system_id__in=system_ids,
            data_type=AttributeDataType.REFERENCE,
        ).values_list("object_type__connected_system_id", "name")
    )


def _names(recorded: Mapping[str, str], existing: set[str]) -> dict[str, str]:
    """The names the preview recorded (what the run would name them), marked for the
    CSOs it would have made."""
    return {
        value: name if value in existing else WOULD_BE_CREATED.format(name)
        for value, name in recorded.items()
    }


def _named_all(
    changes: list[tuple[AttributeChange, bool]], names: Mapping[str, str]
) -> list[AttributeChange]:
    return [named(change, names) if is_reference else change for change, is_reference in changes]


#: The connected system's columns a row does not show (its settings can be large).
_SYSTEM_DETAIL_FIELDS = tuple(
    f"connected_system__{name}"
    for name in ("settings", "secret_settings", "persisted_connector_data", "description")
)
