"""Join keys: finding the MVOs an import join rule matches, without a query per object.

MVO join-attribute values are copied, normalised, into ``MetaverseObjectKey`` rows.
:class:`JoinIndex` answers "which MVOs of type T have attribute A = v" for a whole
batch of CSOs with one query per join attribute, and remembers what this run wrote so
that an MVO projected earlier in the run is found by a later object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from metaverse.models import MetaverseObjectKey


def normalise_key(value: Any) -> str:
    """The form join values are compared in: text, trimmed, case-folded."""
    return str(value).strip().casefold()[:500]


class JoinIndex:
    """MVO ids by (object type, attribute, normalised value), filled batch by batch."""

    def __init__(self) -> None:
        self._index: dict[tuple[int, str, str], set[int]] = defaultdict(set)
        self._loaded: set[tuple[int, str, str]] = set()

    def prefetch(self, wanted: Iterable[tuple[int, str, Any]]) -> None:
        """Load from the database the keys a batch will look up (one query per attribute)."""
        by_attribute: dict[tuple[int, str], set[str]] = defaultdict(set)
        for type_id, attribute, value in wanted:
            key = normalise_key(value)
            if (type_id, attribute, key) not in self._loaded:
                by_attribute[(type_id, attribute)].add(key)
        for (type_id, attribute), values in by_attribute.items():
            rows = MetaverseObjectKey.objects.filter(
                attribute=attribute,
                value__in=values,
                metaverse_object__object_type_id=type_id,
            ).values_list("value", "metaverse_object_id")
            for value, mvo_id in rows:
                self._index[(type_id, attribute, value)].add(mvo_id)
            self._loaded.update((type_id, attribute, value) for value in values)

    def forget(self) -> None:
        """Drop what earlier batches loaded and wrote. Their keys are committed with
        their batch, so a later batch's :meth:`prefetch` reads them back: the index holds
        one batch's keys, not the run's (about 600 bytes per MVO of a full sync)."""
        self._index.clear()
        self._loaded.clear()

    def find(self, type_id: int, attribute: str, values: Iterable[Any]) -> set[int]:
        """MVO ids of ``type_id`` whose ``attribute`` holds any of ``values``."""
        found: set[int] = set()
        for value in values:
            found |= self._index.get((type_id, attribute, normalise_key(value)), set())
        return found

    def replace(
        self, type_id: int, mvo_id: int, old: dict[str, list[Any]], new: dict[str, list[Any]]
    ) -> None:
        """Record in memory that an MVO's join values changed from ``old`` to ``new``."""
        for attribute, values in old.items():
            for value in values:
                self._index[(type_id, attribute, normalise_key(value))].discard(mvo_id)
        for attribute, values in new.items():
            for value in values:
                self._index[(type_id, attribute, normalise_key(value))].add(mvo_id)


def key_rows(mvo_id: int, join_values: dict[str, list[Any]]) -> list[tuple[int, str, str]]:
    """The ``(mvo id, attribute, normalised value)`` key rows of one MVO."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for attribute, values in join_values.items():
        for value in values:
            key = (attribute, normalise_key(value))
            if value in (None, "") or key in seen:
                continue
            seen.add(key)
            rows.append((mvo_id, *key))
    return rows
