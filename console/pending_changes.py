"""A pending export's changes as people read them: each attribute once, old → new.

On the wire a pending export changes a multi-valued attribute value by value
(``add`` and ``remove`` rows, :mod:`exports.models`), so a renamed person's ``cn``
is two rows, "add Heidi Jones-Okafor" and "remove Heidi Jones". Here the rows of one
attribute become one :class:`~console.changes.AttributeChange`: ``old`` is what the CSO
held when the change was staged (``previous_values``), ``new`` what it holds once the
rows are applied (:func:`exports.changes.apply_changes`).

An attribute reads as added and removed values when it holds more than one value
before or after (a group's members: only a multi-valued attribute of the target's
schema can); one that holds at most one value reads as a replacement, old → new, even
when the schema makes it multi-valued — ``cn`` is multi-valued in LDAP but names a
person once, and a rename is one ``cn`` going from the old name to the new. Of a large multi-valued
change (tens of thousands of members) only the first :data:`VALUES_SHOWN` added and
removed values are listed, and the rest counted.

Reference values are ids of CSOs of the same system; they are shown as the name of
the object they point at (its MVO's display name, else its DN or external id), with
one query for all the changes of a page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from console.changes import AttributeChange
from exports.changes import (
    apply_changes,
    changes_by_export,
    reference_attributes,
    reference_names,
)
from exports.models import PendingExport

#: Added (and removed) values listed per attribute; the rest are counted.
VALUES_SHOWN = 50


def export_changes(exports: Sequence[PendingExport]) -> dict[int, list[AttributeChange]]:
    """Every export's changes, one :class:`AttributeChange` per attribute, by export id.

    A fixed number of queries for any number of exports: their rows, which attributes
    are references, the names of the objects those point at.
    """
    rows = changes_by_export(exports)
    references_of = reference_attributes({pe.cs_object.object_type_id for pe in exports})
    grouped = {
        pe.pk: grouped_changes(
            rows.get(pe.pk, []),
            lambda attribute, type_id=pe.cs_object.object_type_id: (
                (type_id, attribute) in references_of
            ),
        )
        for pe in exports
    }
    references = [
        value
        for changes in grouped.values()
        for change, is_reference in changes
        if is_reference
        for value in (*change.old, *change.new)
    ]
    names = reference_names(references)
    return {
        pk: [named(change, names) if is_reference else change for change, is_reference in changes]
        for pk, changes in grouped.items()
    }


def grouped_changes(
    rows: Sequence[Any], is_reference: Callable[[str], bool]
) -> list[tuple[AttributeChange, bool]]:
    """The attribute-change rows of one export (anything with ``attribute``,
    ``change_type``, ``values`` and ``previous_values``), one change per attribute,
    with whether the attribute is a reference."""
    by_attribute: dict[str, list[Any]] = {}
    for row in rows:
        by_attribute.setdefault(row.attribute, []).append(row)
    changes = []
    for attribute in sorted(by_attribute, key=str.lower):
        group = by_attribute[attribute]
        old = list(group[0].previous_values or [])
        new = apply_changes({attribute: old}, group).get(attribute, [])
        changes.append((_change(attribute, old, new), is_reference(attribute)))
    return changes


def _change(attribute: str, old: list[Any], new: list[Any]) -> AttributeChange:
    old_texts, new_texts = [str(v) for v in old], [str(v) for v in new]
    if len(old_texts) <= 1 and len(new_texts) <= 1:
        return AttributeChange(attribute, old_texts, new_texts)
    # Only what changed is shown of a multi-valued attribute: keep the added values
    # as "new" and the removed ones as "old", the first VALUES_SHOWN of each.
    kept_old, kept_new = set(old_texts), set(new_texts)
    added = [v for v in new_texts if v not in kept_old]
    removed = [v for v in old_texts if v not in kept_new]
    return AttributeChange(
        attribute,
        removed[:VALUES_SHOWN],
        added[:VALUES_SHOWN],
        multi_valued=True,
        more_old=max(0, len(removed) - VALUES_SHOWN),
        more_new=max(0, len(added) - VALUES_SHOWN),
    )


def named(change: AttributeChange, names: Mapping[str, str]) -> AttributeChange:
    """``change`` with its values (reference ids) replaced by the names given."""

    def name(value: str) -> str:
        return names.get(value, value)

    return AttributeChange(
        change.attribute,
        [name(v) for v in change.old],
        [name(v) for v in change.new],
        multi_valued=change.multi_valued,
        source=change.source,
        more_old=change.more_old,
        more_new=change.more_new,
    )
