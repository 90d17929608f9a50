"""What would a sync do? (runs/what_if.py): one object's sync, previewed — the same
RPEIs and pending exports as the real sync of that object, and nothing changed."""

from __future__ import annotations

import pytest

from connectors.models import ConnectorSpaceObject
from metaverse.models import MetaverseObject
from runs import mvo_actions
from runs.models import PreviewedExport
from runs.what_if import what_if_cso, what_if_mvo
from tests.previews.fidelity import (
    assert_predicted,
    assert_unchanged,
    database_state,
    real_exports,
)
from tests.previews.test_preview_runs import PEOPLE
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db


def synced(estate) -> None:
    estate.write_people(PEOPLE)
    for system, profile in [
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        assert estate.run(system, profile).status == "complete"


def test_what_if_of_an_mvo_shows_its_changes_value_by_value_and_predicts_re_evaluate(estate):
    synced(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    ada = MetaverseObject.objects.get(attributes__employeeId=["1001"])
    before = database_state()

    preview = what_if_mvo(ada, "tester")

    assert preview.preview and preview.status == "complete", preview.message
    assert_unchanged(before, database_state(but=preview))
    flow = preview.items.get(external_id="1001")
    sn = flow.details["changes"]["sn"]
    assert (sn["old"], sn["new"]) == (["Lovelace"], ["King"])
    update = PreviewedExport.objects.get(activity=preview)
    assert update.change_type == "update" and update.cs_object is not None

    real, exports = real_exports(lambda: mvo_actions.re_evaluate(ada, "tester"))
    assert_predicted(preview, real, exports)


def test_what_if_of_an_unjoined_cso_predicts_its_projection(estate):
    estate.write_people(PEOPLE)
    estate.run("HR", "Full Import")
    grace = ConnectorSpaceObject.objects.get(external_id="1002")
    before = database_state()

    preview = what_if_cso(grace, "tester")

    assert preview.status == "complete", preview.message
    assert_unchanged(before, database_state(but=preview))
    assert preview.counts.get("projected") == 1
    created = PreviewedExport.objects.get(activity=preview)
    assert created.change_type == "create"
    assert created.target == f"uid=ghopper,ou=people,{estate.base}"
