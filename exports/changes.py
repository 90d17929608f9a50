"""Applying pending-export attribute changes to a set of attribute values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from exports.choices import AttributeChangeType


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
