"""Confirming pending-export attribute changes against a CSO's current values.

Seed 003: an attribute change is confirmed when the connected system's values (as
last imported) show it took effect. Multi-valued changes confirm value by value: a
partly confirmed ``add`` of members keeps only the members still missing. Used by
sync (for ``export_not_confirmed`` exports) and by confirming imports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from exports.choices import AttributeChangeType


def _texts(values: Iterable[Any]) -> set[str]:
    return {str(v) for v in values}


def unconfirmed_values(
    change_type: str, values: list[Any], current: list[Any], *, multivalued: bool
) -> list[Any] | None:
    """What of one attribute change is not yet visible in ``current``.

    Returns ``None`` when the change is wholly confirmed, otherwise the values still to
    confirm (for single-valued changes, all of them).
    """
    have = _texts(current)
    if change_type == AttributeChangeType.REMOVE_ALL:
        return None if not current else []
    if change_type == AttributeChangeType.UPDATE and not multivalued:
        return None if [str(v) for v in values[:1]] == [str(v) for v in current[:1]] else values
    if change_type == AttributeChangeType.REMOVE:
        left = [v for v in values if str(v) in have]
    elif change_type == AttributeChangeType.UPDATE:
        return None if _texts(values) == have else values
    else:  # add
        left = [v for v in values if str(v) not in have]
    return left or None


def reconcile_changes(
    rows: list[Any], attributes: dict[str, list[Any]], multivalued: frozenset[str]
) -> tuple[list[Any], bool]:
    """Split a pending export's changes into those still unconfirmed.

    ``rows`` have ``attribute``, ``change_type`` and ``values``. Returns the rows
    left (with ``values`` narrowed to the unconfirmed ones) and whether anything was
    confirmed.
    """
    left = []
    confirmed_any = False
    for row in rows:
        remaining = unconfirmed_values(
            row.change_type,
            row.values,
            attributes.get(row.attribute, []),
            multivalued=row.attribute in multivalued,
        )
        if remaining is None:
            confirmed_any = True
            continue
        if remaining != row.values and row.change_type in (
            AttributeChangeType.ADD,
            AttributeChangeType.REMOVE,
        ):
            confirmed_any = True
            row.values = remaining
        left.append(row)
    return left, confirmed_any
