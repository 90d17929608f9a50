"""``enforce_state`` as seed 003 says, in full and delta syncs alike (issue 10, item 8).

Drift — a value changed in the target system itself — is corrected by a sync of that
system only when its export rule enforces state, and never for the attributes the
target itself contributes to the metaverse; a real change of the metaverse object
flows out either way.
"""

from __future__ import annotations

import pytest

from exports.models import PendingExport, PendingExportAttributeChange
from metaverse.models import SyncRule, SyncRuleFlow
from tests.sync.scenario import build_scenario, changes, provisioned, rpeis, second_source

pytestmark = pytest.mark.django_db

KINDS = pytest.mark.parametrize("delta", [False, True], ids=["full sync", "delta sync"])


@pytest.fixture
def scenario():
    return build_scenario()


def _enforce(scenario, value: bool) -> None:
    SyncRule.objects.filter(pk=scenario.dir_out.pk).update(enforce_state=value)


def _edit_in_target(target, **values) -> None:
    """As an import of the target leaves a value changed there."""
    for name, value in values.items():
        target.attributes[name] = [value]
    target.sync_pending = True
    target.save()


def _directory_contributes_phone(scenario) -> None:
    SyncRuleFlow.objects.create(
        sync_rule=scenario.dir_join, order=0, target="phone", source="telephoneNumber"
    )


@KINDS
def test_drift_is_corrected_when_the_rule_enforces_state(scenario, delta):
    target = provisioned(scenario)
    _edit_in_target(target, cn="Hacked Name")

    activity = scenario.sync(scenario.directory, delta=delta)

    pe = PendingExport.objects.get(cs_object=target)
    assert (pe.change_type, changes(pe)) == ("update", {("cn", "update"): ["John Smith"]})
    assert [i.change_type for i in rpeis(activity)] == ["drift_correction"]


@KINDS
def test_drift_is_left_alone_when_the_rule_does_not_enforce_state(scenario, delta):
    _enforce(scenario, False)
    target = provisioned(scenario)
    _edit_in_target(target, cn="Hacked Name")

    activity = scenario.sync(scenario.directory, delta=delta)
    scenario.sync(scenario.directory, delta=delta)

    assert not PendingExport.objects.exists()
    assert rpeis(activity) == []


@KINDS
def test_a_real_change_still_flows_out_without_enforce_state(scenario, delta):
    _enforce(scenario, False)
    target = provisioned(scenario)
    _edit_in_target(target, mail="mine@example.org")
    scenario.sync(scenario.directory, delta=delta)
    scenario.update_hr("1001", lastName="Jones")

    scenario.sync(delta=delta)

    pe = PendingExport.objects.get(cs_object=target)
    assert changes(pe)[("sn", "update")] == ["Jones"]
    assert changes(pe)[("cn", "update")] == ["John Jones"]


@KINDS
def test_a_change_the_target_contributes_does_not_revert_its_drift(scenario, delta):
    _enforce(scenario, False)
    _directory_contributes_phone(scenario)
    target = provisioned(scenario)
    _edit_in_target(target, cn="Hacked Name", telephoneNumber="+44 1")

    scenario.sync(scenario.directory, delta=delta)

    assert scenario.mvo_of("1001").attributes["phone"] == ["+44 1"]
    assert not PendingExport.objects.exists()


@KINDS
def test_a_change_the_target_contributes_comes_with_drift_correction(scenario, delta):
    _directory_contributes_phone(scenario)
    target = provisioned(scenario)
    _edit_in_target(target, cn="Hacked Name", telephoneNumber="+44 1")

    scenario.sync(scenario.directory, delta=delta)

    assert scenario.mvo_of("1001").attributes["phone"] == ["+44 1"]
    assert changes(PendingExport.objects.get(cs_object=target)) == {
        ("cn", "update"): ["John Smith"]
    }


@KINDS
def test_what_the_target_contributes_is_never_corrected(scenario, delta):
    # The Directory contributes sn (its import rule comes first); HR has another value.
    SyncRuleFlow.objects.create(sync_rule=scenario.dir_join, order=0, target="sn", source="sn")
    SyncRule.objects.filter(pk=scenario.dir_join.pk).update(precedence=0)
    SyncRule.objects.filter(pk=scenario.hr_in.pk).update(precedence=1)
    existing = scenario.directory_entry("jsmith", sn="Directory-Sn")
    scenario.hr_row("1001", accountName="jsmith", lastName="Hr-Sn")
    scenario.sync()
    scenario.sync(scenario.directory)
    PendingExport.objects.all().delete()  # as if the join's alignment was exported
    existing.refresh_from_db()
    existing.attributes.update(cn=["John Directory-Sn"], mail=["john.directory-sn@example.org"])
    _edit_in_target(existing, sn="Changed-In-Directory")

    scenario.sync(scenario.directory, delta=delta)

    assert scenario.mvo_of("1001").attributes["sn"] == ["Changed-In-Directory"]
    assert not PendingExportAttributeChange.objects.filter(attribute="sn").exists()


def test_a_full_sync_of_a_source_that_joins_evaluates_every_rule(scenario):
    # A source that joins rather than projects is no target: its full sync is how an
    # export rule's change (here: a value the Directory lacks) reaches its objects.
    _enforce(scenario, False)
    book, _ = second_source(scenario, precedence=5)
    target = provisioned(scenario)
    scenario.sync(book)  # joins
    PendingExport.objects.all().delete()
    target.attributes.pop("mail")
    target.save()

    scenario.sync(book)

    assert changes(PendingExport.objects.get(cs_object=target)) == {
        ("mail", "update"): ["john.smith@example.org"]
    }
