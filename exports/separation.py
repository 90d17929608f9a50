"""Separation of duties: nobody approves an export that their own run or their own
configuration change produced — for the connected systems that ask for it
(``ConnectedSystem.separate_duties``, ``export.separate_duties`` in the file).

With it on for an export's target system, a user may not approve that export when

* **they started the run that staged it**: the export's ``created_by_activity`` was
  initiated by them (the admin's Run button, the API, a ``jim`` command for a
  ``--user``); or
* **they staged it by hand**: an undo of an export run (``staged_by``); or
* **they changed the configuration that produces it**: the audit trail holds a
  configuration entry (created, changed or deleted) by them on the export's sync rule
  (its joins and flows are part of it), on the import sync rules of the same metaverse
  object type (they compute the values the export rule sends), or on the target
  system, its object types and their attributes.

The configuration rule has no time window, on purpose: a rule changed today reaches
an object the next time that object changes — a delta sync weeks later — so no
window after a change is one its author could safely approve in. Whoever configures a
system's export path, and whoever starts its runs, leaves its approvals to someone
else. Changes recorded without a JIM user (``jim apply`` run without one, by an OS
user) name nobody and refuse nobody.

Rejecting stays allowed: a rejected export is never sent, so refusing one's own change
is always safe, and the issue asks only that such exports cannot be *approved*.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.recording import configuration_changes_by
from connectors.models import (
    Activity,
    ConnectedSystem,
    ConnectedSystemAttribute,
    ConnectedSystemObjectType,
)
from exports.models import PendingExport

#: Refused exports a refusal's message names one by one; the rest are counted.
NAMED = 5
#: The sync rule model, reached through the export's own relation (the metaverse
#: layer sits above this one).
SyncRule = PendingExport._meta.get_field("sync_rule").related_model
#: ``metaverse.choices.SyncRuleDirection.IMPORT``.
IMPORT = "import"


@dataclass(frozen=True)
class Conflict:
    """Why ``user`` may not approve ``export``."""

    export: PendingExport
    why: str

    def __str__(self) -> str:
        pe = self.export
        return (
            f"pending export {pe.pk} ({pe.connected_system.name} {pe.change_type} "
            f"{pe.target}): {self.why}"
        )


def conflicts(exports: Sequence[PendingExport], user: Any) -> list[Conflict]:
    """The exports of ``exports`` that ``user`` may not approve, each with why.

    ``exports`` come with their connected system and CSO loaded. A few queries per
    (sync rule, system) pair, whatever the number of exports.
    """
    guarded = [pe for pe in exports if pe.connected_system.separate_duties]
    if not guarded:
        return []
    started = _runs_started_by(user, guarded)
    changed = _configuration_changed_by(user, guarded)
    found = []
    for pe in guarded:
        if pe.staged_by_id is not None and pe.staged_by_id == user.pk:
            found.append(Conflict(pe, f"{user} staged it by undoing an export run"))
        elif pe.created_by_activity_id in started:
            found.append(Conflict(pe, started[pe.created_by_activity_id]))
        elif (pe.connected_system_id, pe.sync_rule_id) in changed:
            found.append(Conflict(pe, changed[(pe.connected_system_id, pe.sync_rule_id)]))
    return found


def refusal_message(found: list[Conflict], user: Any, *, total: int) -> str:
    """One message naming the conflicts, what they mean, and what to do."""
    systems = sorted({c.export.connected_system.name for c in found})
    listed = "; ".join(str(c) for c in found[:NAMED])
    more = f"; and {len(found) - NAMED} more" if len(found) > NAMED else ""
    return (
        f"separation of duties ({', '.join(systems)}): {user} may not approve "
        f"{len(found)} of the {total} pending export(s) chosen — {listed}{more}. "
        "Another approver must approve these; nothing was approved (leave them out to "
        "approve the others)."
    )


def _runs_started_by(user: Any, exports: list[PendingExport]) -> dict[int, str]:
    """Activity id → why, for the runs among the exports' that ``user`` started."""
    ids = {pe.created_by_activity_id for pe in exports} - {None}
    runs = Activity.objects.filter(pk__in=ids, initiated_by=user).select_related("connected_system")
    return {
        run.pk: f"{user} started the run that staged it (activity {run.pk}, "
        f"{run.connected_system.name} — {run.profile_name})"
        for run in runs
    }


def _configuration_changed_by(
    user: Any, exports: list[PendingExport]
) -> dict[tuple[int, int | None], str]:
    """(system id, sync rule id) → why, for the pairs whose configuration ``user``
    changed (see the module docstring)."""
    pairs = {(pe.connected_system_id, pe.sync_rule_id) for pe in exports}
    rules = SyncRule.objects.in_bulk({rule for _, rule in pairs} - {None})
    importing: dict[int, list[int]] = defaultdict(list)
    feeding = SyncRule.objects.filter(
        direction=IMPORT, mv_object_type_id__in={r.mv_object_type_id for r in rules.values()}
    ).values_list("mv_object_type_id", "pk")
    for mv_type, rule_id in feeding:
        importing[mv_type].append(rule_id)
    found = {}
    for system_id, rule_id in pairs:
        rule = rules.get(rule_id)
        rule_ids = {rule_id} | set(importing[rule.mv_object_type_id]) if rule else set()
        type_ids = list(
            ConnectedSystemObjectType.objects.filter(connected_system_id=system_id).values_list(
                "pk", flat=True
            )
        )
        attribute_ids = ConnectedSystemAttribute.objects.filter(
            object_type_id__in=type_ids
        ).values_list("pk", flat=True)
        change = (
            configuration_changes_by(
                user,
                [
                    (SyncRule, rule_ids - {None}),
                    (ConnectedSystem, [system_id]),
                    (ConnectedSystemObjectType, type_ids),
                    (ConnectedSystemAttribute, attribute_ids),
                ],
            )
            .order_by("-at")
            .first()
        )
        if change is not None:
            found[(system_id, rule_id)] = (
                f"{user} changed its configuration ({change.get_action_display().lower()} "
                f"{change.object_repr or change.object_type} on "
                f"{change.at:%Y-%m-%d %H:%M} UTC, audit entry {change.pk})"
            )
    return found
