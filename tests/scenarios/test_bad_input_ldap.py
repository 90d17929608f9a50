"""Bad input never becomes a mass change in the directory (issue 11), end to end: real
HR files, a real slapd, real PostgreSQL.

Twenty people go through a full cycle; then the HR file loses a column, or changes one
attribute for everyone, or the directory loses an attribute on every entry. Each time
the import is refused, and the rest of the cycle run anyway changes nothing in the
directory."""

from __future__ import annotations

import pytest

from connectors.models import ConnectedSystemAttribute, ConnectorSpaceObject
from exports.models import PendingExport
from tests.builders import errors, write_csv
from tests.scenarios.estate import PEOPLE_HEADER, person

pytestmark = pytest.mark.django_db

PEOPLE = 20


def staff(**extra) -> list[dict]:
    return [
        person(str(1001 + n), f"First{n}", f"Last{n}", f"user{n}", **extra) for n in range(PEOPLE)
    ]


def full_cycle(estate) -> None:
    for system, profile in (
        ("HR", "Full Import"),
        ("HR", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ):
        activity = estate.run(system, profile)
        assert activity.status == "complete", (system, profile, activity.message)


def directory(estate) -> dict[str, dict]:
    """Every person entry as slapd holds it, by DN."""
    connection = estate.ldap.connection()
    try:
        connection.search(
            f"ou=people,{estate.base}",
            "(objectClass=inetOrgPerson)",
            attributes=["*", "modifyTimestamp"],
        )
        return {
            entry.entry_dn: dict(entry.entry_attributes_as_dict) for entry in connection.entries
        }
    finally:
        connection.unbind()


def the_rest_of_the_cycle_changes_nothing(estate, before: dict) -> None:
    estate.run("HR", "Full Sync")
    assert PendingExport.objects.count() == 0
    estate.run("Directory", "Export")
    assert directory(estate) == before


@pytest.fixture
def cycled(estate):
    estate.write_people(staff())
    full_cycle(estate)
    assert len(directory(estate)) == PEOPLE
    return estate


def test_an_hr_file_without_its_last_name_column_changes_nothing(cycled):
    before = directory(cycled)
    header = [name for name in PEOPLE_HEADER if name != "lastName"]
    write_csv(cycled.folder / "hr.csv", staff(), header=header)

    imported = cycled.run("HR", "Full Import")

    assert imported.status == "failed"
    assert "no column 'lastName' any more" in imported.message
    assert errors(imported) == [("attribute_lost", "")]
    the_rest_of_the_cycle_changes_nothing(cycled, before)


def test_an_optional_column_lost_is_still_held_by_the_change_threshold(cycled):
    ConnectedSystemAttribute.objects.filter(
        object_type__connected_system__name="HR", name="department"
    ).update(optional=True)
    before = directory(cycled)
    write_csv(
        cycled.folder / "hr.csv",
        staff(),
        header=[name for name in PEOPLE_HEADER if name != "department"],
    )

    imported = cycled.run("HR", "Full Import")

    assert errors(imported) == [("change_threshold_exceeded", "")]
    assert "department on 20 of 20 person objects" in imported.message
    the_rest_of_the_cycle_changes_nothing(cycled, before)


def test_one_department_for_everyone_is_refused(cycled):
    before = directory(cycled)
    cycled.write_people(staff(department="Nowhere"))

    imported = cycled.run("HR", "Full Import")

    assert imported.status == "failed"
    assert "department on 20 of 20 person objects" in imported.message
    assert "'Engineering' → 'Nowhere'" in imported.message
    the_rest_of_the_cycle_changes_nothing(cycled, before)


def test_a_directory_that_lost_an_attribute_on_every_entry_is_refused(cycled):
    for dn in directory(cycled):
        cycled.modify(dn, {"mail": [("MODIFY_DELETE", [])]})
    held = {
        cso.external_id: cso.attributes["mail"]
        for cso in ConnectorSpaceObject.objects.filter(connected_system__name="Directory")
    }

    imported = cycled.run("Directory", "Full Import")

    assert imported.status == "failed"
    assert "no inetOrgPerson object has 'mail' any more, though all 20 had it" in (imported.message)
    assert errors(imported) == [("attribute_lost", "")]
    assert {
        cso.external_id: cso.attributes["mail"]
        for cso in ConnectorSpaceObject.objects.filter(connected_system__name="Directory")
    } == held
