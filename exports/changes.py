"""Pending-export attribute changes: loading them, applying them to attribute values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from connectors.choices import AttributeDataType
from connectors.models import ConnectedSystemAttribute, ConnectorSpaceObject
from core.bulk import one_of
from exports.choices import AttributeChangeType
from exports.models import PendingExport, PendingExportAttributeChange


class Change(Protocol):
    attribute: str
    change_type: str
    values: list[Any]


def apply_changes(
    attributes: dict[str, list[Any]], changes: Iterable[Change]
) -> dict[str, list[Any]]:
    """The attributes after the changes (a new dictionary; the input is not modified).

    Used to apply a successful export to its CSO optimistically, so the next sync sees
    what the target now holds rather than drift.
    """
    result = {name: list(values) for name, values in attributes.items()}
    for change in changes:
        current = result.get(change.attribute, [])
        if change.change_type == AttributeChangeType.UPDATE:
            current = list(change.values)
        elif change.change_type == AttributeChangeType.ADD:
            texts = {str(v) for v in current}
            current = current + [v for v in change.values if str(v) not in texts]
        elif change.change_type == AttributeChangeType.REMOVE:
            gone = {str(v) for v in change.values}
            current = [v for v in current if str(v) not in gone]
        else:  # remove_all
            current = []
        if current:
            result[change.attribute] = current
        else:
            result.pop(change.attribute, None)
    return result


def changes_by_export(
    pes: Iterable[PendingExport],
) -> dict[int, list[PendingExportAttributeChange]]:
    """The attribute changes of these pending exports, by pending export id (one query).

    Not ``prefetch_related``: it caches each pending export on its changes and the
    changes on their pending export, a reference cycle per pending export. Runs go
    with the cycle collector paused (:mod:`core.collector`), so such cycles
    stayed in memory to the end of the run (about 6 KB per object).
    """
    changes: dict[int, list[PendingExportAttributeChange]] = {}
    rows = PendingExportAttributeChange.objects.filter(
        one_of("pending_export_id", [pe.pk for pe in pes])
    ).order_by("pending_export_id", "attribute", "change_type", "pk")
    for row in rows:
        changes.setdefault(row.pending_export_id, []).append(row)
    return changes


def reference_names(values: Iterable[Any]) -> dict[str, str]:
    """What each reference value (a CSO id) names: its MVO's display name, else its DN
    or external id, by the value's text. Values that name no CSO are left out."""
    ids = {int(value) for value in values if str(value).isdigit()}
    if not ids:
        return {}
    csos = ConnectorSpaceObject.objects.filter(pk__in=ids).select_related("metaverse_object")
    names = {}
    for cso in csos.only(
        "pk", "external_id", "secondary_external_id", "metaverse_object__display_name"
    ):
        mvo = cso.metaverse_object
        names[str(cso.pk)] = (mvo.display_name if mvo is not None else "") or str(cso)
    return names


def reference_attributes(object_type_ids: set[int]) -> set[tuple[int, str]]:
    """The reference attributes of these CS object types, as (object type id, name)."""
    rows = ConnectedSystemAttribute.objects.filter(
        object_type_id__in=object_type_ids, data_type=AttributeDataType.REFERENCE
    )
    return set(rows.values_list("object_type_id", "name"))
