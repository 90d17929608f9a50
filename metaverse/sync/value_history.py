"""The value history of the MVOs a sync batch writes (see :mod:`history`).

The batch remembers each MVO's values as it loaded them; at commit each MVO whose
values differ gets one row: ``created`` with its first values, ``updated`` with what
changed, ``deleted`` with the values it had. Comparing before and after, rather than
adding up each flow, catches every way a batch changes values — flows, references
resolved, values recalled on a disconnect, manual actions — once per MVO, with the
sync rule that now contributes each changed attribute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from connectors.models import Activity
from connectors.value_changes import value_changes
from history import recording as history
from history.models import Event, ObjectKind
from metaverse.models import MetaverseObject
from metaverse.sync.rules import RuleSet

#: An MVO's values when the batch loaded it; None for an MVO the batch projected.
Before = dict[str, list[Any]] | None


def snapshot(mvo: MetaverseObject) -> dict[str, list[Any]]:
    """The MVO's values now (flows replace a value list, never change it in place)."""
    return dict(mvo.attributes)


def rows(
    ruleset: RuleSet,
    mvos: Iterable[tuple[MetaverseObject, Before]],
    deleted: set[int],
    activity_id: int,
    at: dt.datetime,
) -> list[dict[str, Any]]:
    """The history rows of these MVOs, each with its values before the batch."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    rule_names: dict[int, str] | None = None
    for mvo, before in mvos:
        if mvo.pk in deleted:
            if before is None:  # projected and deleted in one batch: nothing to tell
                continue
            event, old, new = Event.DELETED, before, {}
        else:
            event = Event.CREATED if before is None else Event.UPDATED
            old, new = before or {}, mvo.attributes
        mv_type = ruleset.mv_types[mvo.object_type_id]
        names = history.changed_names(old, new, mv_type.multivalued)
        if not names and event != Event.CREATED:
            continue
        if rule_names is None:
            rule_names = {r.id: r.name for rules in ruleset.import_rules.values() for r in rules}
        rules = {
            name: rule_names[source["rule"]]
            for name in names
            if (source := mvo.attribute_sources.get(name)) and source.get("rule") in rule_names
        }
        changes = value_changes(
            names,
            old,
            new,
            multivalued=mv_type.multivalued,
            references=mv_type.references,
            reference_kind="mvo",
            rules=rules if new else None,
        )
        found.append((mvo.pk, event, changes))
    if not found:
        return []
    source = source_of(activity_id)
    return [history.row(ObjectKind.MVO, pk, event, at, source, ch) for pk, event, ch in found]


def source_of(activity_id: int) -> history.Source:
    """The run (and who started it) behind a batch's changes: one query."""
    activity = (
        Activity.objects.select_related("connected_system", "initiated_by")
        .filter(pk=activity_id)
        .first()
    )
    return history.Source.of(activity) if activity else history.Source(activity_id)
