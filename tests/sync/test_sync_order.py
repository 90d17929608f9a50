"""Sync order: every CSO after the CSOs it references, so references flow at once."""

from __future__ import annotations

import pytest

from metaverse.sync import processor
from metaverse.sync.order import referenced_first
from tests.sync.scenario import build_scenario, changes, rpeis


def test_without_references_there_is_one_level_by_id():
    assert referenced_first({3: [], 1: [], 2: []}) == [[1, 2, 3]]


def test_each_level_references_earlier_levels_only():
    # 1 → 3 → 5 (a manager chain in file order, the managers further down)
    assert referenced_first({1: [3], 2: [], 3: [5], 4: [3], 5: []}) == [[2, 5], [3], [1, 4]]


def test_references_outside_the_set_and_to_itself_are_ignored():
    assert referenced_first({1: [99], 2: [2]}) == [[1, 2]]


def test_a_cycle_is_broken_and_every_id_kept_once():
    levels = referenced_first({1: [2], 2: [3], 3: [1], 4: [1]})
    order = [i for level in levels for i in level]
    assert sorted(order) == [1, 2, 3, 4]
    assert order.index(1) < order.index(4)


def test_a_long_chain_does_not_recurse():
    chain = {i: [i + 1] for i in range(50_000)}
    chain[50_000] = []
    assert referenced_first(chain) == [[i] for i in range(50_000, -1, -1)]


def test_multi_valued_references_come_first():
    assert referenced_first({1: [5, 6], 5: [], 6: []}) == [[5, 6], [1]]


def test_batches_are_full_and_keep_their_levels_apart(monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 2)
    assert list(processor._batches([[1, 2, 3], [4], [5, 6]])) == [
        [[1, 2]],
        [[3], [4]],
        [[5, 6]],
    ]


# --------------------------------------------------------------------------- in a sync


@pytest.fixture
def one_per_batch(monkeypatch):
    monkeypatch.setattr(processor, "BATCH_SIZE", 1)


@pytest.mark.django_db
def test_a_manager_further_down_is_synced_first_and_flows_at_once(one_per_batch):
    scenario = build_scenario()
    report = scenario.hr_row("2", accountName="report")
    manager = scenario.hr_row("1", accountName="boss")
    report.attributes["managerId"] = [manager.pk]
    report.save()

    activity = scenario.sync()

    assert scenario.mvo_of("2").attributes["manager"] == [scenario.mvo_of("1").pk]
    assert changes(scenario.export_of("2"))[("manager", "update")] == [scenario.dir_cso_of("1").pk]
    assert [(i.external_id, i.change_type) for i in rpeis(activity)] == [
        ("1", "projected"),
        ("2", "projected"),
    ]


@pytest.mark.django_db
def test_a_reference_cycle_across_batches_is_resolved_at_the_end_of_the_run(one_per_batch):
    scenario = build_scenario()
    first = scenario.hr_row("1", accountName="first")
    second = scenario.hr_row("2", accountName="second")
    first.attributes["managerId"] = [second.pk]
    second.attributes["managerId"] = [first.pk]
    first.save()
    second.save()

    activity = scenario.sync()

    one, two = scenario.mvo_of("1"), scenario.mvo_of("2")
    assert one.attributes["manager"] == [two.pk]
    assert two.attributes["manager"] == [one.pk]
    assert changes(scenario.export_of("1"))[("manager", "update")] == [scenario.dir_cso_of("2").pk]
    assert changes(scenario.export_of("2"))[("manager", "update")] == [scenario.dir_cso_of("1").pk]
    assert any(i.details.get("deferred_references") for i in rpeis(activity))


@pytest.mark.django_db
def test_a_manager_in_the_same_batch_is_provisioned_before_the_report_is_evaluated():
    scenario = build_scenario()
    report = scenario.hr_row("2", accountName="report")
    manager = scenario.hr_row("1", accountName="boss")
    report.attributes["managerId"] = [manager.pk]
    report.save()

    activity = scenario.sync()

    assert activity.counts == {"projected": 2}
    assert not any(i.details.get("deferred_references") for i in rpeis(activity))
    assert changes(scenario.export_of("2"))[("manager", "update")] == [scenario.dir_cso_of("1").pk]
