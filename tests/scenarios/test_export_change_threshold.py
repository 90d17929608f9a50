"""An export run's change threshold, against real slapd: a scope change that would
deprovision most of the directory, or one attribute changed on every entry, is refused
before anything is sent — nothing in the directory changes, the exports stay pending —
and goes through with ``--allow-changes``; a change under the threshold goes through."""

from __future__ import annotations

import json

import pytest
from django.db.models import Sum

from connectors.models import ConnectedSystem
from exports.models import PendingExport
from metaverse.models import SyncRule
from tests.scenarios.estate import person
from tests.support.cli import jim

pytestmark = pytest.mark.django_db

#: 20 people: the default limit is 10 (10% of 20 is 2, raised to the floor of 10).
PEOPLE = 20


def people(department=lambda i: "Sales" if i < 2 else "Engineering") -> list[dict]:
    return [
        person(str(1000 + i), f"First{i}", f"Last{i}", f"user{i}", department=department(i))
        for i in range(PEOPLE)
    ]


def dn(estate, i: int) -> str:
    return f"uid=user{i},ou=people,{estate.base}"


def departments(estate) -> dict[int, list[str] | None]:
    """Each person's departmentNumber as slapd holds it (None: no entry)."""
    entries = {i: estate.entry(dn(estate, i)) for i in range(PEOPLE)}
    return {i: entry and entry.get("departmentNumber") for i, entry in entries.items()}


@pytest.fixture
def provisioned(estate):
    """Twenty people provisioned to the directory and confirmed (20 creates: creates
    do not count against the threshold)."""
    estate.write_people(people())
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    exported = estate.run("Directory", "Export")
    assert exported.status == "complete", exported.message
    assert exported.counts == {"provisioned": PEOPLE}
    assert estate.run("Directory", "Full Import").status == "complete"
    assert PendingExport.objects.count() == 0
    return estate


def export(*flags: str) -> tuple[int, dict, str]:
    status, out, err = jim("run", "Directory", "Export", "--json", *flags)
    return status, json.loads(out), err


def assert_refused(summary: dict, pending: int) -> None:
    """The run failed at its threshold, and no export was claimed or attempted."""
    assert summary["status"] == "failed"
    assert [e["error_type"] for e in summary["errors"]] == ["change_threshold_exceeded"]
    assert summary["counts"]["exported"] == summary["counts"]["deprovisioned"] == 0
    exports = PendingExport.objects.all()
    assert exports.count() == pending
    assert set(exports.values_list("status", flat=True)) == {"pending"}
    assert exports.aggregate(n=Sum("error_count"))["n"] == 0


def test_a_scope_change_that_would_deprovision_most_of_the_directory_is_refused(provisioned):
    estate = provisioned
    # The export rule now (wrongly) covers Sales only: 18 of 20 entries fall out of it.
    SyncRule.objects.filter(name="Directory people out").update(scope="mv.department == 'Sales'")
    estate.run("HR", "Full Sync")
    assert PendingExport.objects.filter(change_type="delete").count() == 18

    status, summary, err = export()

    assert status == 2
    assert_refused(summary, pending=18)
    message = summary["errors"][0]["message"]
    assert message.startswith(
        "Directory: this export run would deprovision (delete) 18 of 20 objects, more than "
        "the change threshold 10 (the default: 500 objects or 10% of 20, whichever is "
        "smaller, but at least 10); nothing was sent. For example: "
        f"{dn(estate, 2)}, {dn(estate, 3)}, {dn(estate, 4)}."
    )
    assert "--allow-changes" in message and "change_threshold" in message
    assert "jim: Export of Directory failed: Directory: this export run" in err
    assert all(entry is not None for entry in departments(estate).values())

    status, summary, _ = export("--allow-changes")

    assert status == 0, summary
    assert summary["counts"]["deprovisioned"] == 18
    remaining = {i for i, entry in departments(estate).items() if entry is not None}
    assert remaining == {0, 1}


def test_one_attribute_changed_on_every_entry_is_refused(provisioned):
    estate = provisioned
    estate.write_people(people(department=lambda i: ""))  # the column arrived empty
    # The import's own change threshold would stop it; let it through to show the
    # export run's threshold is a second, independent gate.
    assert estate.run("HR", "Full Import", allow_changes=True).status == "complete"
    estate.run("HR", "Full Sync")
    before = departments(estate)

    status, summary, _ = export()

    assert status == 2
    assert_refused(summary, pending=PEOPLE)
    message = summary["errors"][0]["message"]
    assert "would change departmentNumber on 20 of 20 objects, more than the change " in message
    assert f"For example: {dn(estate, 0)}, {dn(estate, 1)}, {dn(estate, 2)}." in message
    assert departments(estate) == before  # read back: nothing changed in slapd

    # A threshold that allows it, set on the system, lets the next run through.
    ConnectedSystem.objects.filter(name="Directory").update(change_threshold="100%")
    status, summary, _ = export()

    assert status == 0, summary
    assert summary["counts"]["exported"] == PEOPLE
    assert all(value is None for value in departments(estate).values())


def test_a_change_under_the_threshold_goes_through(provisioned):
    estate = provisioned
    moved = set(range(2, 12))  # 10 people: as many as the limit, not more
    estate.write_people(
        people(
            department=lambda i: "Research" if i in moved else "Sales" if i < 2 else "Engineering"
        )
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")

    status, summary, _ = export()

    assert status == 0, summary
    assert summary["counts"]["exported"] == len(moved)
    assert {i for i, value in departments(estate).items() if value == ["Research"]} == moved
