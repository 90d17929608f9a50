"""What export flows may write, by the target attribute's ``writability`` (seed 001,
edge case 2: some attributes are only writable at creation time).

* ``read_only`` — never exported. ``jim apply`` rejects an export flow to an attribute
  it knows is read-only; one that became read-only since (a schema refresh) is skipped
  at run time, with an error on each object naming the rule and the attribute.
* ``write_once`` — sent in the create, or later while the target object has no value
  for it; never updated afterwards, drift correction (``enforce_state``) included.
"""

from __future__ import annotations

from typing import Any

from connectors.choices import RpeiErrorType
from metaverse.sync.inbound import ObjectError, values_of
from metaverse.sync.rules import CompiledRule

#: The target value of a flow to a read-only attribute: never sent.
READ_ONLY = object()


def read_only_errors(rule: CompiledRule, system: str, desired: dict[str, Any]) -> list[ObjectError]:
    """An error per flow of ``rule`` to a read-only attribute (skipped)."""
    return [
        ObjectError(
            RpeiErrorType.INVALID_DATA,
            f"sync rule {rule.name!r}: {attribute} is read-only in {system} "
            "(writability: read_only): its export flow is skipped; remove the flow",
        )
        for attribute, want in desired.items()
        if want is READ_ONLY
    ]


def written_once(
    desired: dict[str, Any],
    write_once: frozenset[str],
    current: dict[str, list[Any]],
    keep: object,
) -> dict[str, Any]:
    """``desired`` for an object that exists in the target: each write-once attribute
    it already has a value for becomes ``keep`` (not evaluated: neither changed nor
    removed, whatever the metaverse says now)."""
    held = [a for a in write_once if a in desired and values_of(current.get(a))]
    if not held:
        return desired
    return {**desired, **dict.fromkeys(held, keep)}
