"""A delete keeps whom it deletes: sync snapshots the MVO's name and join-key values on
the pending export when it stages the delete, so the approver can be told even once
the MVO is gone; the snapshot goes when the delete is superseded."""

from __future__ import annotations

import pytest

from exports.models import PendingExport
from tests.sync.scenario import build_scenario, provisioned

pytestmark = pytest.mark.django_db


def test_a_delete_staged_for_a_leaver_keeps_who_and_why_and_loses_it_when_superseded():
    scenario = build_scenario(approval_mode="deletes")
    target = provisioned(scenario, "1001", "jsmith")
    mvo = scenario.mvo_of("1001")

    scenario.update_hr("1001", status="Terminated")
    scenario.sync()
    pe = PendingExport.objects.get(cs_object=target)
    assert pe.change_type == "delete"
    assert pe.identity == {
        "metaverse_object": mvo.pk,
        "name": "John Smith",
        "object_type": "person",
        "ids": {"accountName": "jsmith", "employeeId": "1001"},
        "reason": "out_of_scope",
    }

    scenario.update_hr("1001", status="Active", lastName="Smythe")  # back, renamed
    scenario.sync()
    pe.refresh_from_db()
    assert (pe.change_type, pe.identity) == ("update", {})


def test_creates_and_updates_keep_no_snapshot():
    scenario = build_scenario()
    scenario.hr_row("1001", accountName="jsmith")
    scenario.sync()
    assert list(PendingExport.objects.values_list("change_type", "identity")) == [("create", {})]
