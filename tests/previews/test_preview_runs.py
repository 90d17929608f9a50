"""Preview runs (runs/preview.py): a run that changes nothing anywhere and records
what it would have done — the same counts, RPEIs and pending exports as the real run
that follows it."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from connectors.models import Activity, ConnectorSpaceObject
from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import MetaverseObject
from runs.housekeeping import run_housekeeping
from runs.models import PreviewedExport
from runs.preview import NotPreviewable
from tests.previews.fidelity import assert_predicted, real_exports
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db

PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper", manager="1001"),
    person("1003", "Alan", "Turing", "aturing", manager="1001"),
]


def state() -> tuple:
    """Everything a preview must leave as it was."""
    return (
        sorted(
            ConnectorSpaceObject.objects.values_list(
                "pk", "attributes", "status", "metaverse_object_id", "sync_pending"
            )
        ),
        sorted(MetaverseObject.objects.values_list("pk", "attributes", "status")),
        sorted(PendingExport.objects.values_list("pk", "change_type", "status", "updated_at")),
        sorted(PendingExportAttributeChange.objects.values_list("pk", "attribute", "values")),
    )


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_a_preview_of_an_import_changes_nothing_and_predicts_it(estate):
    estate.write_people(PEOPLE)
    before = state()
    preview = estate.run("HR", "Full Import", preview=True)
    assert preview.status == "complete", preview.message
    assert preview.counts == {"added": 3}
    assert state() == before
    assert not ConnectorSpaceObject.objects.exists()
    # The preview's RPEIs are kept and browsable, their CSOs (never made) unlinked.
    items = list(preview.items.order_by("pk"))
    assert [i.external_id for i in items] == ["1001", "1002", "1003"]
    assert all(i.cs_object_id is None for i in items)

    real, exports = real_exports(lambda: estate.run("HR", "Full Import"))
    assert_predicted(preview, real, exports)


def test_a_preview_of_a_sync_predicts_projection_and_provisioning(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    before = state()
    preview = estate.run("HR", "Full Sync", preview=True)
    assert preview.status == "complete", preview.message
    assert preview.counts["projected"] == 3
    assert state() == before
    created = PreviewedExport.objects.filter(activity=preview, effect="created")
    assert created.count() == 3
    ada = created.get(target=f"uid=alovelace,ou=people,{estate.base}")
    assert ada.change_type == "create" and ada.cs_object_id is None
    cn = next(c for c in ada.changes if c["attribute"] == "cn")
    assert (cn["change_type"], cn["values"]) == ("update", ["Ada Lovelace"]), ada.changes

    real, exports = real_exports(lambda: estate.run("HR", "Full Sync"))
    assert_predicted(preview, real, exports)


def test_a_preview_of_a_change_shows_before_and_after(estate):
    estate.write_people(PEOPLE)
    for system, profile in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        assert estate.run(system, profile).status == "complete"
    estate.write_people(
        [person("1001", "Ada", "King", "alovelace", department="Maths"), *PEOPLE[1:]]
    )
    estate.run("HR", "Full Import")
    before = state()
    preview = estate.run("HR", "Delta Sync", preview=True)
    assert state() == before
    flow = preview.items.get(external_id="1001")
    assert flow.details["changes"]["sn"]["old"] == ["Lovelace"]
    assert flow.details["changes"]["sn"]["new"] == ["King"]
    update = PreviewedExport.objects.get(activity=preview)
    assert update.effect == "created" and update.change_type == "update"
    assert update.cs_object is not None  # an existing directory account

    real, exports = real_exports(lambda: estate.run("HR", "Delta Sync"))
    assert_predicted(preview, real, exports)


def test_an_export_run_cannot_be_previewed(estate):
    with pytest.raises(NotPreviewable, match="export run"):
        estate.run("Directory", "Export", preview=True)
    code, _, err = jim("run", "Directory", "Export", "--preview")
    assert code == 2 and "cannot be previewed" in err
    assert not Activity.objects.exists()


def test_jim_run_preview_prints_the_same_json_marked_preview(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    code, out, err = jim("run", "HR", "Full Sync", "--preview", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["preview"] is True
    assert summary["counts"]["projected"] == 3
    assert summary["pending_exports"] == {"created": 3, "changed": 0, "removed": 0}
    assert not MetaverseObject.objects.exists()
    code, out, err = jim("run", "HR", "Full Sync", "--preview")
    assert "Nothing was changed: this was a preview." in out
    assert "3 would be created" in out
    real = json.loads(jim("run", "HR", "Full Sync", "--json")[1])
    assert real["preview"] is False and "pending_exports" not in real


def test_housekeeping_removes_old_previews_only(estate, settings):
    estate.write_people(PEOPLE)
    old_preview = estate.run("HR", "Full Import", preview=True)
    new_preview = estate.run("HR", "Full Import", preview=True)
    real = estate.run("HR", "Full Import")
    long_ago = timezone.now() - dt.timedelta(days=settings.JIM_PREVIEW_RETENTION_DAYS + 1)
    Activity.objects.filter(pk__in=[old_preview.pk, real.pk]).update(finished_at=long_ago)
    assert run_housekeeping()["previews"] == 1
    assert set(Activity.objects.values_list("pk", flat=True)) == {new_preview.pk, real.pk}


def test_jim_queue_preview_queues_a_preview_the_worker_runs_changing_nothing(estate):
    from runs.tasks import execute_activity

    estate.write_people(PEOPLE)
    before = state()
    code, out, err = jim("queue", "HR", "Full Import", "--preview")
    assert code == 0, err
    queued = Activity.objects.get(pk=int(out.strip()))
    assert (queued.preview, queued.status) == (True, "queued")

    execute_activity(queued.pk)  # what the django-q2 worker calls

    queued.refresh_from_db()
    assert (queued.status, queued.counts) == ("complete", {"added": 3}), queued.message
    assert state() == before

    code, _, err = jim("queue", "Directory", "Export", "--preview")
    assert code == 2 and "cannot be previewed" in err
    assert not Activity.objects.filter(profile_name="Export").exists()
