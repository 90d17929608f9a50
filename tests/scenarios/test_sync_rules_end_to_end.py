"""Sync rules end to end: import real files and a real slapd, then sync — drift
correction, an expression that fails on one person, an ambiguous join."""

from __future__ import annotations

import pytest

from exports.models import PendingExport
from metaverse.models import MetaverseObject, SyncRuleFlow
from tests.builders import errors, rpeis
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db


def _provision(estate, people):
    estate.write_people(people)
    assert estate.run("HR", "Full Import").status == "complete"
    assert estate.run("HR", "Full Sync").status == "complete"
    assert estate.run("Directory", "Export").status == "complete"
    assert estate.run("Directory", "Full Import").status == "complete"
    assert PendingExport.objects.count() == 0


def test_a_value_changed_in_the_directory_is_put_back(estate):
    _provision(estate, [person("1001", "Ada", "Lovelace", "alovelace")])
    dn = f"uid=alovelace,ou=people,{estate.base}"
    estate.modify(dn, {"cn": [("MODIFY_REPLACE", ["Someone Else"])]})

    assert estate.run("Directory", "Delta Import").counts == {"updated": 1}
    synced = estate.run("Directory", "Delta Sync")

    [item] = rpeis(synced)
    assert item.change_type == "drift_correction"
    pe = PendingExport.objects.get()
    # cn is multi-valued in the directory's schema: the intruder goes, the name comes back.
    assert {(c.attribute, c.change_type): c.values for c in pe.attribute_changes.all()} == {
        ("cn", "add"): ["Ada Lovelace"],
        ("cn", "remove"): ["Someone Else"],
    }
    assert estate.run("Directory", "Export").counts == {"exported": 1}
    assert estate.entry(dn)["cn"] == ["Ada Lovelace"]


def test_an_expression_that_fails_on_one_person_is_an_error_on_that_person_only(estate):
    SyncRuleFlow.objects.filter(sync_rule__name="HR people in", target="displayName").update(
        expression="cs.firstName ~ ' ' ~ (100 // (0 if cs.lastName == 'Turing' else 1))"
    )
    estate.write_people(
        [
            person("1001", "Ada", "Lovelace", "alovelace"),
            person("1003", "Alan", "Turing", "aturing"),
        ]
    )
    estate.run("HR", "Full Import")

    synced = estate.run("HR", "Full Sync")

    assert synced.status == "complete_with_errors"
    assert errors(synced) == [("expression_error", "1003")]
    [error] = [i for i in rpeis(synced) if i.error_type]
    assert "HR people in" in error.message and "displayName" in error.message
    assert MetaverseObject.objects.count() == 1  # nothing of the failing person is kept
    assert PendingExport.objects.get().dn == f"uid=alovelace,ou=people,{estate.base}"


def test_a_directory_entry_two_people_would_join_is_an_ambiguous_match(estate):
    # Two people on leave (not provisioned) who were given the same account name.
    estate.write_people(
        [
            person("1001", "John", "Smith", "jsmith", status="Leave"),
            person("1002", "Jane", "Smith", "jsmith", status="Leave"),
        ]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    connection = estate.ldap.connection()
    try:
        assert connection.add(
            f"uid=jsmith,ou=people,{estate.base}",
            ["inetOrgPerson"],
            {"uid": "jsmith", "cn": "J Smith", "sn": "Smith"},
        )
    finally:
        connection.unbind()
    estate.run("Directory", "Full Import")

    synced = estate.run("Directory", "Full Sync")

    [entry] = estate.directory_csos()
    assert errors(synced) == [("ambiguous_match", entry.external_id)]
    assert "matches 2 metaverse objects" in rpeis(synced)[0].message
    assert entry.metaverse_object_id is None
