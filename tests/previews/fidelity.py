"""Comparing a preview with the real run that follows it: what each did, with the
ids of objects the preview never made taken out."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from connectors.models import Activity
from exports.models import PendingExport
from runs import preview as preview_module
from runs.models import PreviewedExport, PreviewEffect

#: RPEI fields that name rows: a preview's projected MVO or provisioned CSO never
#: existed, so these differ (or are empty) by nature.
ID_FIELDS = ("cs_object_id", "metaverse_object_id", "pending_export_id")


def _named_references(details: dict[str, Any]) -> dict[str, Any]:
    """``details`` with reference ids replaced by the names of their objects (a
    preview's new objects are named by ``new_references``)."""
    details = dict(details)
    new = details.pop("new_references", {})
    changes = details.get("changes")
    if not isinstance(changes, dict):
        return details
    names = preview_module._reference_names([{"details": details}])
    named = {}
    for attribute, entry in changes.items():
        kind = entry.get("ref") if isinstance(entry, dict) else None
        if kind:
            entry = {
                side: [
                    names.get(f"{kind}:{v}") or new.get(f"{kind}:{v}", v)
                    if isinstance(v, int) and not isinstance(v, bool)
                    else v
                    for v in values
                ]
                if side in ("old", "new", "added", "removed")
                else values
                for side, values in entry.items()
            }
        named[attribute] = entry
    return {**details, "changes": named}


def _times_from(value: Any, start: dt.datetime) -> Any:
    """``value`` with every time in it (an ISO 8601 string) as its distance from
    ``start``, to the minute: a run stamps times from its own clock (a deletion due in
    7 days), and the preview ran a moment before the real run."""
    if isinstance(value, dict):
        return {key: _times_from(item, start) for key, item in value.items()}
    if isinstance(value, list):
        return [_times_from(item, start) for item in value]
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return f"start + {round((moment - start).total_seconds() / 60)} min"
    return value


def rpei_fingerprint(activity: Activity) -> Counter:
    """The activity's RPEIs, as a multiset, without ids; times as distances from the
    activity's start."""
    return Counter(
        json.dumps(
            {
                "external_id": rpei.external_id,
                "change_type": rpei.change_type,
                "error_type": rpei.error_type,
                "message": rpei.message,
                "details": _times_from(_named_references(rpei.details), activity.started_at),
            },
            sort_keys=True,
            default=str,
        )
        for rpei in activity.items.all()
    )


def _named_values(change: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {
        **change,
        "values": [names.get(str(v), v) for v in change["values"]],
        "previous_values": [names.get(str(v), v) for v in change["previous_values"]],
    }


def export_fingerprint(rows: list[dict[str, Any]]) -> Counter:
    """Pending exports as a multiset, reference values by the names of their objects."""
    return Counter(
        json.dumps(
            {
                "effect": row["effect"],
                "system": row["connected_system_id"],
                "target": row["target"],
                "change_type": row["change_type"],
                "status": row["status"],
                "approval": row["approval"],
                "changes": sorted(
                    (_named_values(c, row["reference_names"]) for c in row["changes"]),
                    key=lambda c: (c["attribute"], c["change_type"], str(c)),
                ),
            },
            sort_keys=True,
            default=str,
        )
        for row in rows
    )


def previewed_exports(activity: Activity) -> Counter:
    return export_fingerprint(
        list(
            PreviewedExport.objects.filter(activity=activity).values(
                "effect",
                "connected_system_id",
                "target",
                "change_type",
                "status",
                "approval",
                "changes",
                "reference_names",
            )
        )
    )


def real_exports(run: Callable[[], Activity]) -> tuple[Activity, Counter]:
    """Run ``run`` for real; returns its activity and the pending exports it created,
    changed and removed, read as a preview reads them."""
    before = {pk: at for pk, at in PendingExport.objects.values_list("pk", "updated_at")}
    removed_states = preview_module._export_states(list(before))
    activity = run()
    after = dict(PendingExport.objects.values_list("pk", "updated_at"))
    rows = []
    for effect, ids in (
        (PreviewEffect.CREATED, [pk for pk in after if pk not in before]),
        (
            PreviewEffect.CHANGED,
            [pk for pk, at in after.items() if pk in before and before[pk] != at],
        ),
    ):
        rows += [{**row, "effect": effect} for row in preview_module._export_states(ids)]
    rows += [
        {**row, "effect": PreviewEffect.REMOVED}
        for row in removed_states
        if row["pending_export_id"] not in after
    ]
    return activity, export_fingerprint(rows)


def assert_predicted(preview: Activity, real: Activity, real_export_effects: Counter) -> None:
    """The preview predicted the real run: status, counts, RPEIs, pending exports."""
    assert preview.preview and not real.preview
    assert (preview.status, preview.message) == (real.status, real.message)
    assert preview.counts == real.counts
    assert preview.error_count == real.error_count
    assert preview.objects_processed == real.objects_processed
    predicted, happened = rpei_fingerprint(preview), rpei_fingerprint(real)
    assert predicted == happened, (predicted - happened, happened - predicted)
    predicted = previewed_exports(preview)
    assert predicted == real_export_effects, (
        predicted - real_export_effects,
        real_export_effects - predicted,
    )


#: Apps whose tables a preview must leave as they were.
_WATCHED_APPS = ("connectors", "metaverse", "exports", "runs", "audit")


def database_state(*, but: Activity | None = None) -> dict[str, list[tuple]]:
    """Every row of every table of JIM's own apps, to compare before and after a
    preview: ``but`` is the preview, whose activity, RPEIs, previewed exports and
    ``run_started`` audit entry are what a preview is allowed to write."""
    from django.apps import apps

    from audit.models import AuditEntry

    state = {}
    for model in apps.get_models():
        if model._meta.app_label not in _WATCHED_APPS:
            continue
        rows = model.objects.all()
        if but is not None:
            if model is Activity:
                rows = rows.exclude(pk=but.pk)
            elif model is AuditEntry:
                rows = rows.exclude(object_type="connectors.activity", object_id=str(but.pk))
            elif any(f.attname == "activity_id" for f in model._meta.concrete_fields):
                rows = rows.exclude(activity_id=but.pk)
        state[model._meta.label] = sorted(
            (tuple(row) for row in rows.values_list()), key=lambda row: row[0]
        )
    return state


def assert_unchanged(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> None:
    """Table by table, so that a failure names the table and the rows."""
    for table, rows in before.items():
        if rows != after[table]:
            gone = [row for row in rows if row not in after[table]]
            new = [row for row in after[table] if row not in rows]
            raise AssertionError(f"the preview changed {table}: gone {gone}, new {new}")
