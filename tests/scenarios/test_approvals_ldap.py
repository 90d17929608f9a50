"""Approval policy `deletes` against real slapd: creates flow, a delete waits for a person."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from exports.approval import decide
from exports.models import PendingExport
from tests.scenarios.estate import make_estate, person

pytestmark = pytest.mark.django_db


def test_deletes_wait_for_approval_and_a_rejection_keeps_the_account(
    tmp_path, slapd, ldap_ou, monkeypatch
):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch, approval="deletes")
    approver = User.objects.create_user("alice")
    approver.groups.add(Group.objects.get(name="Approvers"))
    approver = User.objects.get(pk=approver.pk)
    estate.write_people(
        [person("1", "Ada", "Lovelace", "ada"), person("2", "Alan", "Turing", "alan")]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    assert estate.run("Directory", "Export").counts == {"provisioned": 2}  # creates flow
    estate.run("Directory", "Full Import")

    estate.write_people(
        [
            person("1", "Ada", "Lovelace", "ada", status="Terminated"),
            person("2", "Alan", "Turing", "alan", status="Terminated"),
        ]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    exports = {pe.cs_object.secondary_external_id: pe for pe in PendingExport.objects.all()}
    ada = exports[f"uid=ada,ou=people,{estate.base}"]
    alan = exports[f"uid=alan,ou=people,{estate.base}"]
    assert {ada.approval, alan.approval} == {"awaiting_approval"}
    assert estate.run("Directory", "Export").counts == {}  # deletes wait

    decide([ada], approver, approve=True, reason="left")
    decide([alan], approver, approve=False, reason="contractor stays")
    estate.run("Directory", "Export")

    assert estate.entry(f"uid=ada,ou=people,{estate.base}") is None
    assert estate.entry(f"uid=alan,ou=people,{estate.base}") is not None
    alan.refresh_from_db()
    assert alan.approval == "rejected"
