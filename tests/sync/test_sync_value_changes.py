"""A sync's RPEIs record the values that flowed, old and new, and the sync rule behind each.

Beside the names (``details["attributes"]``) an RPEI records each changed metaverse
attribute's values (``details["changes"]``, :mod:`connectors.value_changes`): old → new,
multi-valued as values added and removed, references as MVO ids, with the sync rule
that made the change; its message says what changed.
"""

from __future__ import annotations

import pytest

from metaverse.models import MetaverseAttribute, SyncRuleFlow
from metaverse.sync import processor
from tests.builders import add_attribute
from tests.sync.scenario import build_scenario, provisioned, rpeis

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("rpei_writes")]


@pytest.fixture
def scenario():
    return build_scenario()


def flow_item(activity):
    [item] = [i for i in rpeis(activity) if i.change_type == "attribute_flow"]
    return item


def test_a_changed_value_records_old_new_and_the_rule(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", lastName="Jones")

    item = flow_item(scenario.sync(delta=True))

    rule = scenario.hr_in.name
    assert item.details["attributes"] == ["displayName", "sn"]
    assert item.details["changes"] == {
        "displayName": {"old": ["John Smith"], "new": ["John Jones"], "rule": rule},
        "sn": {"old": ["Smith"], "new": ["Jones"], "rule": rule},
    }
    assert item.message == "displayName, sn changed"


def test_a_projection_records_every_value_from_none(scenario):
    scenario.hr_row("1001", firstName="John", lastName="Smith", accountName="jsmith")

    [item] = rpeis(scenario.sync())

    assert item.change_type == "projected"
    assert item.details["changes"]["sn"] == {"old": [], "new": ["Smith"], "rule": "HR people in"}
    assert set(item.details["changes"]) == set(item.details["attributes"])
    assert item.message.startswith(f"{len(item.details['attributes'])} attributes changed: ")


def test_a_value_removed_records_none_as_new(scenario):
    provisioned(scenario)
    scenario.update_hr("1001", department="Sales")
    scenario.sync(delta=True)
    scenario.update_hr("1001", department=None)

    item = flow_item(scenario.sync(delta=True))

    assert item.details["changes"] == {
        "department": {"old": ["Sales"], "new": [], "rule": "HR people in"}
    }


def test_a_changed_manager_records_the_referenced_mvos_ids(scenario):
    boss = scenario.hr_row("1", accountName="boss")
    other = scenario.hr_row("2", accountName="other")
    scenario.hr_row("3", accountName="report", managerId=[boss.pk])
    scenario.sync()
    scenario.update_hr("3", managerId=[other.pk])

    item = flow_item(scenario.sync(delta=True))

    assert item.details["changes"] == {
        "manager": {
            "old": [scenario.mvo_of("1").pk],
            "new": [scenario.mvo_of("2").pk],
            "ref": "mvo",
            "rule": "HR people in",
        }
    }
    assert item.message == "manager changed"


def test_a_multi_valued_attribute_records_the_values_added_and_removed(scenario):
    MetaverseAttribute.objects.create(
        object_type=scenario.person, name="groups", data_type="text", multivalued=True
    )
    add_attribute(scenario.hr_person, "groups", {"multivalued": True})
    SyncRuleFlow.objects.create(
        sync_rule=scenario.hr_in, order=20, target="groups", source="groups"
    )
    scenario.hr_row("1001", groups=["staff", "sales", "london"])
    scenario.sync()
    scenario.update_hr("1001", groups=["london", "staff", "managers"])

    item = flow_item(scenario.sync(delta=True))

    assert item.details["changes"] == {
        "groups": {
            "multivalued": True,
            "added": ["managers"],
            "removed": ["sales"],
            "rule": "HR people in",
        }
    }


def test_a_reference_resolved_in_the_last_pass_records_its_value_too(scenario, monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 1)
    first = scenario.hr_row("1", accountName="first")
    second = scenario.hr_row("2", accountName="second")
    scenario.update_hr("1", managerId=[second.pk])
    scenario.update_hr("2", managerId=[first.pk])  # a cycle: one waits for the last pass

    activity = scenario.sync()

    [item] = [i for i in rpeis(activity) if i.details.get("deferred_references")]
    waited = "1" if item.metaverse_object_id == scenario.mvo_of("1").pk else "2"
    manager = scenario.mvo_of("2" if waited == "1" else "1")
    assert item.details["changes"] == {
        "manager": {"old": [], "new": [manager.pk], "ref": "mvo", "rule": "HR people in"}
    }
    assert item.message == "manager changed"
