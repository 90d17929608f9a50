"""The whole story of a pending export, for the person asked to approve it.

An approver decides whether an account is created, changed or deleted in a real
system. A DN and "Deletes the object" is not enough to decide on; the story says:

* **who** — the object's name and identifying values: from its MVO while there is
  one; for a delete whose MVO is gone, from the snapshot sync kept on the pending
  export when it staged the delete (``PendingExport.identity``: the MVO's id, name,
  object type, join-key values such as the employee id, and why it deletes), and the
  values the target system last held (the target CSO's ``cn``, ``uid``, ``mail``…).
  The snapshot is taken for deletes only, and holds a few values: a delete is the one
  change whose MVO may be deleted in the same run, and the values a careful approver
  checks (the person's name, employee id and account) are exactly the join keys;
* **what** — the full diff, one attribute once (:mod:`console.pending_changes`), or
  "Deletes <name> (<DN>) from <system>";
* **why** — the sync run that staged it, the export rule, and for a delete whether
  the MVO left the rule's scope or was deleted by its object type's deletion rule;
  then what that run recorded for the object (its RPEIs, and the import that brought
  the change in: "HR status: Active → Terminated" where the RPEI details carry old and
  new values as ``details["changes"]``, else the names of the changed attributes, or
  "removed from HR");
* **what happens after** — on approval and on rejection, the rule's deprovisioning
  action and the MVO's deletion rule and grace period.

Each part degrades to what is known: an export staged before snapshots existed, a
run since deleted, an RPEI without old and new values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils import timezone

from connectors.choices import IMPORT_PROFILE_TYPES, ObjectChangeType
from connectors.models import Activity, ConnectorSpaceObject, RunProfileExecutionItem
from console.changes import AttributeChange
from console.pending_changes import export_changes
from console.views import admin_change_url
from exports.choices import ApprovalState, PendingExportChangeType, PendingExportStatus
from exports.models import PendingExport
from metaverse.choices import DeletionRule, DeprovisionAction, MvoStatus, SyncRuleDirection
from metaverse.models import MetaverseObject, MetaverseObjectType, SyncRule, SyncRuleJoin

#: Attributes of the target object that name it or tell it apart, in the order shown
#: when the MVO is gone and no snapshot was kept.
LAST_KNOWN_NAMES = ("displayName", "cn", "name")
LAST_KNOWN_IDS = ("employeeId", "employeeID", "employeeNumber", "uid", "sAMAccountName", "mail")
#: Exports of one page whose runs' records are read (each costs a few queries).
DETAILED = 100
#: RPEIs of a run read to find the one of an object whose MVO is gone.
SCANNED = 5_000

#: Per run, the RPEIs of objects whose MVO the run deleted, by the exports they record.
Orphans = dict[int, dict[tuple[str, str, str], RunProfileExecutionItem]]

DELETION_RULES: dict[str, str] = {
    DeletionRule.LAST_CONNECTOR_REMOVED: "when its last connector is removed",
    DeletionRule.AUTHORITATIVE_CONNECTOR_REMOVED: "when an authoritative system's object leaves",
    DeletionRule.MANUAL: "only by hand",
}


@dataclass
class ExportStory:
    """Who, what, why and what happens after, for one pending export."""

    export: PendingExport
    name: str
    identifiers: list[tuple[str, str]]
    headline: str
    changes: list[AttributeChange]
    mvo_url: str = ""
    #: Why the name and identifiers are not the MVO's own, when they are not.
    mvo_note: str = ""
    reasons: list[str] = field(default_factory=list)
    source_changes: list[str] = field(default_factory=list)
    run_label: str = ""
    run_url: str = ""
    rule_label: str = ""
    rule_url: str = ""
    afterwards: list[str] = field(default_factory=list)


def export_stories(exports: Sequence[PendingExport]) -> list[ExportStory]:
    """The stories of these pending exports, in their order."""
    loaded = PendingExport.objects.select_related(
        "connected_system",
        "cs_object",
        "metaverse_object__object_type",
        "sync_rule__mv_object_type",
        "created_by_activity__connected_system",
    ).in_bulk([pe.pk for pe in exports])
    ordered = [loaded[pe.pk] for pe in exports if pe.pk in loaded]
    changes = export_changes(ordered)
    keys = _join_keys(ordered)
    orphans: Orphans = {}
    return [
        _story(pe, changes.get(pe.pk, []), keys, orphans, detailed=i < DETAILED)
        for i, pe in enumerate(ordered)
    ]


def _join_keys(exports: Sequence[PendingExport]) -> dict[int, list[str]]:
    """The metaverse attributes import rules join on (the ids people know an object
    by), per MV object type."""
    types = {pe.sync_rule.mv_object_type_id for pe in exports if pe.sync_rule is not None}
    types |= {pe.metaverse_object.object_type_id for pe in exports if pe.metaverse_object}
    keys: dict[int, list[str]] = {}
    rows = SyncRuleJoin.objects.filter(sync_rule__mv_object_type_id__in=types)
    for type_id, attribute in rows.values_list("sync_rule__mv_object_type_id", "mv_attribute"):
        if attribute not in keys.setdefault(type_id, []):
            keys[type_id].append(attribute)
    return keys


def _story(
    pe: PendingExport,
    changes: list[AttributeChange],
    keys: dict[int, list[str]],
    orphans: Orphans,
    *,
    detailed: bool,
) -> ExportStory:
    name, identifiers, note = _who(pe, keys)
    mvo = pe.metaverse_object
    story = ExportStory(
        export=pe,
        name=name,
        identifiers=identifiers,
        headline=_headline(pe, name),
        changes=changes,
        mvo_url=reverse("console:mvo", args=[mvo.pk]) if mvo is not None else "",
        mvo_note=note,
    )
    rule = pe.sync_rule
    if rule is not None:
        story.rule_label = f"{rule.name} (export rule for {pe.connected_system.name})"
        story.rule_url = admin_change_url(SyncRule, rule.pk)
    activity = pe.created_by_activity
    if activity is not None:
        story.run_label = _run_label(activity)
        story.run_url = reverse("console:activity", args=[activity.pk])
    story.reasons = _reasons(pe, name)
    if detailed and activity is not None:
        story.source_changes = _source_changes(pe, activity, orphans)
    story.afterwards = _afterwards(pe, name)
    return story


# --------------------------------------------------------------------------- who


def _who(pe: PendingExport, keys: dict[int, list[str]]) -> tuple[str, list[tuple[str, str]], str]:
    """The object's name, its identifying values, and a note when they are not the
    MVO's own (the MVO is gone)."""
    mvo, snapshot, cso = pe.metaverse_object, pe.identity or {}, pe.cs_object
    last_known = cso.attributes or {}
    identifiers: list[tuple[str, str]] = []
    note = ""
    if mvo is not None:
        name = str(mvo)
        for key in keys.get(mvo.object_type_id, []):
            if mvo.attributes.get(key):
                identifiers.append((key, _text(mvo.attributes[key])))
    elif snapshot:
        name = snapshot.get("name") or ""
        identifiers.extend((k, str(v)) for k, v in (snapshot.get("ids") or {}).items())
        note = (
            f"Its metaverse object ({snapshot.get('object_type', 'object')} "
            f"#{snapshot.get('metaverse_object')}) has been deleted: shown as it was when "
            "this delete was staged, and as "
            f"{pe.connected_system.name} last held it."
        )
    else:
        name = next((_text(last_known[a]) for a in LAST_KNOWN_NAMES if last_known.get(a)), "")
        note = (
            f"It is joined to no metaverse object any more: shown as "
            f"{pe.connected_system.name} last held it."
        )
    shown = {label.lower() for label, _ in identifiers}
    for attribute in LAST_KNOWN_IDS:
        if last_known.get(attribute) and attribute.lower() not in shown:
            identifiers.append(
                (f"{attribute} in {pe.connected_system.name}", _text(last_known[attribute]))
            )
    return name or str(cso), identifiers, note


def _headline(pe: PendingExport, name: str) -> str:
    system = pe.connected_system.name
    dn = pe.cs_object.secondary_external_id or pe.cs_object.external_id or ""
    if pe.change_type == PendingExportChangeType.DELETE:
        return f"Deletes {name} ({dn or pe.target}) from {system}"
    if pe.change_type == PendingExportChangeType.CREATE:
        return f"Creates {name} ({pe.target}) in {system}"
    moved = f", renamed to {pe.dn}" if pe.dn else ""
    return f"Updates {name} ({dn or pe.target}) in {system}{moved}"


# --------------------------------------------------------------------------- why


def _run_label(activity: Activity) -> str:
    when = timezone.localtime(activity.started_at or activity.created_at)
    return (
        f"#{activity.pk} {activity.connected_system.name} — {activity.profile_name}, "
        f"{when:%Y-%m-%d %H:%M}"
    )


def _delete_reason(pe: PendingExport) -> str:
    """Why a delete: its snapshot says; an older one is out of scope while its MVO lives."""
    reason = (pe.identity or {}).get("reason")
    if reason:
        return str(reason)
    return "out_of_scope" if pe.metaverse_object_id else "metaverse_object_deleted"


def _reasons(pe: PendingExport, name: str) -> list[str]:
    rule = pe.sync_rule
    if rule is None and not pe.identity:
        return []  # no rule staged it (an undo of an export run: the audit trail says why)
    if pe.change_type != PendingExportChangeType.DELETE and not pe.disables:
        if rule is None:
            return []
        system = pe.connected_system.name
        return [
            f"{name} is in the scope of the export rule “{rule}”, "
            f"and what {system} holds differs from what the rule flows to it."
        ]
    if _delete_reason(pe) == "out_of_scope":
        scope = f" ({rule.scope.strip()} is no longer true)" if rule and rule.scope.strip() else ""
        why = f"{name} left the scope of the export rule “{rule}”{scope}"
    else:
        mv_type = rule.mv_object_type if rule else None
        when = DELETION_RULES.get(mv_type.deletion_rule, "") if mv_type else ""
        rule_text = f" by the {mv_type.name} deletion rule ({when})" if mv_type else ""
        why = f"{name}'s metaverse object was deleted{rule_text}"
    action = "and the rule deletes the accounts it provisioned" if rule else ""
    if pe.disables:
        action = "and the rule disables the accounts it provisioned" + _deleted_after(rule)
    return [f"{why}, {action}." if action else f"{why}."]


def _source_changes(
    pe: PendingExport,
    activity: Activity,
    orphans: Orphans,
) -> list[str]:
    """What the run that staged the export recorded for the object, and the import that
    brought the change in."""
    items = _run_items(pe, activity, orphans)
    system = activity.connected_system.name
    lines: list[str] = []
    for item in items:
        source = _import_item(item, activity)
        if source is not None:
            run = f"import run #{source.activity_id}"
            lines.extend(_item_lines(source, system, system, run))
        if item.change_type == ObjectChangeType.DISCONNECTED and item.cs_object_id:
            lines.extend(_left_import_scope(item, system))
        run = f"sync run #{activity.pk} of {system}"
        lines.extend(_item_lines(item, "Metaverse", system, run))
    return list(dict.fromkeys(lines))


def _left_import_scope(item: RunProfileExecutionItem, system: str) -> list[str]:
    """A source object disconnected but still there left its import rule's scope: say
    which rule, and what the object holds now of the attributes the scope reads."""
    cso = ConnectorSpaceObject.objects.filter(pk=item.cs_object_id or 0).first()
    if cso is None:
        return []
    rules = SyncRule.objects.filter(
        direction=SyncRuleDirection.IMPORT, cs_object_type_id=cso.object_type_id
    ).exclude(scope="")
    lines = []
    for rule in rules:
        read = dict.fromkeys(re.findall(r"\bcs\.(\w+)", rule.scope))
        holds = "; ".join(
            f"{system} holds {name} = {_text(cso.attributes.get(name))}" for name in read
        )
        lines.append(
            f"{system} object {item.external_id or cso} left the scope of the import rule "
            f"“{rule}” "
            f"({rule.scope.strip()} is no longer true{'; ' + holds if holds else ''})"
        )
    return lines


def _run_items(
    pe: PendingExport,
    activity: Activity,
    orphans: Orphans,
) -> list[RunProfileExecutionItem]:
    """The run's RPEIs for the export's MVO; when the MVO is gone, the one whose
    recorded exports name this system and object."""
    mvo_id = pe.metaverse_object_id
    if mvo_id is not None:
        items = list(
            RunProfileExecutionItem.objects.filter(
                activity=activity, metaverse_object_id=mvo_id
            ).order_by("pk")[:10]
        )
        if items:
            return items
    dn = (pe.cs_object.secondary_external_id or "").lower()
    item = _orphan_items(activity, orphans).get((pe.connected_system.name, pe.change_type, dn))
    return [item] if item is not None else []


def _orphan_items(
    activity: Activity, orphans: Orphans
) -> dict[tuple[str, str, str], RunProfileExecutionItem]:
    """The run's RPEIs of objects whose MVO it deleted, by the exports they record
    (system, action, DN in lower case): read once per run for a whole page."""
    index = orphans.get(activity.pk)
    if index is None:
        index = orphans[activity.pk] = {}
        candidates = RunProfileExecutionItem.objects.filter(
            activity=activity,
            metaverse_object__isnull=True,
            change_type__in=[ObjectChangeType.DISCONNECTED, ObjectChangeType.DELETED],
        ).order_by("pk")[:SCANNED]
        for item in candidates:
            for effect in (item.details or {}).get("exports", []):
                if isinstance(effect, dict):
                    key = (
                        str(effect.get("system", "")),
                        str(effect.get("action", "")),
                        str(effect.get("dn", "")).lower(),
                    )
                    index.setdefault(key, item)
    return index


def _import_item(item: RunProfileExecutionItem, sync: Activity) -> RunProfileExecutionItem | None:
    """The latest import RPEI, before the sync, of the source object the sync RPEI names."""
    imports = RunProfileExecutionItem.objects.filter(
        activity__connected_system_id=sync.connected_system_id,
        activity__profile_type__in=IMPORT_PROFILE_TYPES,
        activity__preview=False,  # a preview imported nothing
        activity_id__lt=sync.pk,
    ).select_related("activity")
    if item.cs_object_id is not None:
        imports = imports.filter(cs_object_id=item.cs_object_id)
    elif item.external_id:
        imports = imports.filter(change_type=ObjectChangeType.DELETED, external_id=item.external_id)
    else:
        return None
    return imports.order_by("-pk").first()


def _item_lines(item: RunProfileExecutionItem, where: str, system: str, run: str) -> list[str]:
    """What one RPEI of ``system``'s run says changed; ``where`` names the values
    changed ("HR" for an import, "Metaverse" for a sync)."""
    details: dict[str, Any] = item.details or {}
    label = f"{system} object {item.external_id}" if item.external_id else f"The {system} object"
    if item.change_type == ObjectChangeType.DELETED and not details.get("metaverse_object_deleted"):
        reason = details.get("reason")
        return [f"{label} was removed{f' ({reason})' if reason else ''} ({run})"]
    changes = details.get("changes")
    lines = []
    if isinstance(changes, dict) and changes:
        lines += [
            f"{where} {attribute}: {_text(c.get('old'))} → {_text(c.get('new'))} ({run})"
            for attribute, c in sorted(changes.items())
            if isinstance(c, dict)
        ]
    elif details.get("attributes"):
        names = ", ".join(map(str, details["attributes"]))
        lines.append(f"{where} changed {names} ({run})")
    if item.change_type == ObjectChangeType.DISCONNECTED:
        lines.append(f"{label} was disconnected from its metaverse object ({run})")
    if details.get("metaverse_object_deleted"):
        lines.append(f"The metaverse object was deleted ({run})")
    return lines


# --------------------------------------------------------------------------- after


def _afterwards(pe: PendingExport, name: str) -> list[str]:
    """What approving or rejecting does (while it awaits approval), then what follows
    for the MVO (a delete) or should the object leave the rule's scope later."""
    system = pe.connected_system.name
    rule = pe.sync_rule
    deleting = pe.change_type == PendingExportChangeType.DELETE
    if deleting:
        what = (
            f"deletes {name}'s account ({pe.cs_object.secondary_external_id or pe.target}) "
            f"from {system}"
        )
    elif pe.change_type == PendingExportChangeType.CREATE:
        what = f"creates {name}'s account ({pe.target}) in {system}"
    elif pe.disables:
        what = f"disables {name}'s account in {system}{_deleted_after(rule)}"
    else:
        what = f"sends these changes to {system}"
    lines = []
    if pe.approval == ApprovalState.AWAITING_APPROVAL:
        kept = f"the account stays in {system} as it is" if deleting else "nothing changes there"
        lines += [
            f"On approval, the next export run {what}.",
            f"On rejection nothing is sent: {kept}, and the change stays rejected while "
            "JIM keeps wanting it.",
        ]
    elif pe.approval != ApprovalState.REJECTED and pe.status == PendingExportStatus.PENDING:
        lines.append(f"The next export run {what}.")
    if deleting:
        lines.append(_mvo_after(pe, rule.mv_object_type if rule else None))
    elif rule is not None and not pe.disables:
        action = (
            "deletes the account"
            if rule.deprovision_action == DeprovisionAction.DELETE
            else f"disables the account{_deleted_after(rule)}"
            if rule.deprovision_action == DeprovisionAction.DISABLE
            else "disconnects the account (it stays in the system)"
        )
        lines.append(f"Should {name} leave the rule's scope later, the rule {action}.")
    return [line for line in lines if line]


def _deleted_after(rule: SyncRule | None) -> str:
    """How long a disabled account waits before its delete (``deprovision: disable``)."""
    if rule is None or rule.delete_after_days is None:
        return " (it stays disabled until the person comes back)"
    return f" (deleted {rule.delete_after_days} days later unless the person comes back)"


def _mvo_after(pe: PendingExport, mv_type: MetaverseObjectType | None) -> str:
    mvo: MetaverseObject | None = pe.metaverse_object
    grace = mv_type.deletion_grace_period_days if mv_type else 0
    if mvo is not None and mvo.status == MvoStatus.DELETION_SCHEDULED and mvo.deletion_due_at:
        due = timezone.localtime(mvo.deletion_due_at)
        return (
            f"The metaverse object is deleted on {due:%Y-%m-%d} "
            f"(a {grace}-day grace period), unless a connector joins it again."
        )
    if mvo is not None:
        when = DELETION_RULES.get(mv_type.deletion_rule, "") if mv_type else ""
        later = f", and is deleted {when}" if when else ""
        after = f", after {grace} days' grace" if grace and when else ""
        return f"The metaverse object stays{later}{after}."
    if _delete_reason(pe) == "metaverse_object_deleted":
        return "The metaverse object has already been deleted" + (
            f" (after its {grace}-day grace period)." if grace else " (no grace period)."
        )
    return ""


def _text(values: Any) -> str:
    if isinstance(values, list):
        return ", ".join(str(v) for v in values) or "—"
    return "—" if values in (None, "") else str(values)
