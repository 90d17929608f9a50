"""Rows of value history, as the processors that change values write them.

The import (CSOs), the sync and the manual actions (MVOs) already know, for the RPEIs
they record, what changed and its values before and after (:mod:`connectors.value_changes`);
they hand those ``changes`` here and write the rows with :func:`write`, with the
objects, inside the same transaction: a change is never kept without its history, nor
history of a change that was rolled back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.bulk import insert_rows
from history.models import ValueChange

Document = Mapping[str, list[Any]]


@dataclass(frozen=True)
class Source:
    """The run that makes a change, and who started it when a person did."""

    activity_id: int | None
    run: str = ""
    person: str = ""

    @classmethod
    def of(cls, activity: Any) -> Source:
        """The source of an :class:`~connectors.models.Activity` (named without importing
        it: the connectors are above history)."""
        user = activity.initiated_by
        person = user.get_username() if user is not None else activity.initiated_by_name
        run = f"{activity.connected_system.name}: {activity.profile_name}"
        return cls(activity.pk, run[:300], person[:200])


def row(
    kind: str,
    object_id: int,
    event: str,
    at: dt.datetime,
    source: Source,
    changes: Mapping[str, Any],
) -> dict[str, Any]:
    """One object's change, as a row for :func:`write`."""
    return {
        "object_kind": kind,
        "object_id": object_id,
        "event": event,
        "at": at,
        "activity_id": source.activity_id,
        "run": source.run,
        "person": source.person,
        "changes": changes,
    }


def write(rows: list[dict[str, Any]]) -> None:
    """Write the rows (COPY on PostgreSQL), in the caller's transaction."""
    insert_rows(ValueChange, rows, returning=False)


def changed_names(before: Document, after: Document, multivalued: Collection[str]) -> list[str]:
    """The attributes whose values differ (a multi-valued attribute's order means nothing)."""
    names: Iterable[str] = before.keys() | after.keys()
    return sorted(
        name
        for name in names
        if _differ(before.get(name) or [], after.get(name) or [], name in multivalued)
    )


def _differ(old: list[Any], new: list[Any], multivalued: bool) -> bool:
    if multivalued:
        return sorted(map(str, old)) != sorted(map(str, new))
    return old != new
