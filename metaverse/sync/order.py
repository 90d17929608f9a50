"""The order a sync takes a system's CSOs in: referenced objects first.

A reference (a manager, a group member) can only flow, and be exported, once the
object it points at is in the metaverse and has its account in the target system.
In file order about half the people of an HR file refer to a manager further down:
each of them was synced twice, once without the manager and once more at the end of
the run. Syncing every object in a batch after the batches of the objects it
references (among those being synced) flows each reference the first time; only
reference cycles still wait for the end of the run.

The objects are put in levels: level 0 references nothing being synced, level n+1
references objects of level n at most. A batch holds objects of one level, so what
they reference was committed by an earlier batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from django.db.models import QuerySet
from django.db.models.fields.json import KeyTransform


def referenced_first(references: Mapping[int, list[int]]) -> list[list[int]]:
    """The ids in levels, each level after the levels of the ids it references
    (among these), each level by id.

    ``references`` maps each id to the ids it references; ids outside the mapping are
    ignored. A cycle is broken where the walk closes it.
    """
    depth: dict[int, int] = {}
    for start in sorted(references):
        if start not in depth:
            _walk(start, references, depth)
    levels: dict[int, list[int]] = defaultdict(list)
    for i in sorted(references):
        levels[depth[i]].append(i)
    return [levels[d] for d in sorted(levels)]


def _walk(start: int, references: Mapping[int, list[int]], depth: dict[int, int]) -> None:
    """Depth-first from ``start``, without recursion (chains can be long)."""
    stack: list[tuple[int, Iterator[int]]] = [(start, iter(references[start]))]
    on_stack = {start}
    while stack:
        node, children = stack[-1]
        for child in children:
            if child in references and child not in depth and child not in on_stack:
                stack.append((child, iter(references[child])))
                on_stack.add(child)
                break
        else:
            stack.pop()
            on_stack.discard(node)
            depth[node] = 1 + max(
                (depth[c] for c in references[node] if c in depth and c != node), default=-1
            )


def sync_order(csos: QuerySet, reference_attributes: Iterable[str]) -> list[list[int]]:
    """The ids of ``csos`` in levels (one query; one level when nothing references)."""
    attributes = sorted(reference_attributes)
    if not attributes:
        return [list(csos.order_by("pk").values_list("pk", flat=True))]
    rows = csos.values_list("pk", *(KeyTransform(a, "attributes") for a in attributes))
    references: dict[int, list[int]] = {}
    for pk, *values in rows:
        references[pk] = [
            v for value in values if isinstance(value, list) for v in value if isinstance(v, int)
        ]
    return referenced_first(references)
