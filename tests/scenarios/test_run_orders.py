"""Any order of runs converges (issue 10, item 9): real CSV source, real slapd target.

A sync between an export and its confirming import, two syncs in a row, an import in
the middle, an export twice: the next confirming import confirms what was exported
and nothing stays pending once the directory matches the metaverse.
"""

from __future__ import annotations

import pytest

from exports.models import PendingExport, PendingExportAttributeChange
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db

PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper", manager="1001"),
    person("1003", "Alan", "Turing", "aturing", manager="1001"),
]

STEPS = {
    "hr import": ("HR", "Full Import"),
    "hr full sync": ("HR", "Full Sync"),
    "hr delta sync": ("HR", "Delta Sync"),
    "export": ("Directory", "Export"),
    "dir full import": ("Directory", "Full Import"),
    "dir delta import": ("Directory", "Delta Import"),
    "dir full sync": ("Directory", "Full Sync"),
    "dir delta sync": ("Directory", "Delta Sync"),
}

ORDERS = {
    "a full sync between export and confirming import": [
        "export", "hr full sync", "dir full import",
    ],
    "two syncs in a row": ["export", "hr full sync", "hr full sync", "dir full import"],
    "a delta sync in between": ["export", "hr import", "hr delta sync", "dir full import"],
    "a sync of the target in between": [
        "export", "dir full sync", "dir delta sync", "dir full import",
    ],
    "an export twice": ["export", "hr full sync", "export", "export", "dir full import"],
    "an import of the target before the export": [
        "dir full import", "dir full sync", "export", "hr full sync", "dir full import",
    ],
    "a sync after the confirming import": [
        "export", "hr full sync", "dir full import", "dir delta sync", "hr full sync",
    ],
    "a delta import confirms": [
        "dir full import", "export", "hr full sync", "hr delta sync", "dir delta import",
    ],
}  # fmt: skip


def _run(estate, step: str) -> None:
    activity = estate.run(*STEPS[step])
    assert activity.status == "complete", f"{step}: {activity.status} {activity.message}"


def _settled(estate) -> None:
    """Nothing pending, the directory as the metaverse says, and no run stages more."""
    left = list(PendingExport.objects.values_list("change_type", "status", "cs_object_id"))
    assert left == []
    assert {c.status for c in estate.directory_csos()} == {"normal"}
    grace = estate.entry(f"uid=ghopper,ou=people,{estate.base}")
    assert grace["cn"] == ["Grace Hopper"]
    assert grace["manager"] == [f"uid=alovelace,ou=people,{estate.base}"]
    for step in ("hr full sync", "dir full sync", "dir delta sync", "export"):
        _run(estate, step)
        assert PendingExport.objects.count() == 0, step


@pytest.mark.parametrize("order", ORDERS)
def test_every_order_of_runs_converges(estate, order):
    estate.write_people(PEOPLE)
    _run(estate, "hr import")
    _run(estate, "hr full sync")

    for step in ORDERS[order]:
        _run(estate, step)

    _settled(estate)


def test_a_change_between_export_and_confirming_import(estate):
    estate.write_people(PEOPLE)
    _run(estate, "hr import")
    _run(estate, "hr full sync")
    _run(estate, "export")
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    _run(estate, "hr import")
    _run(estate, "hr delta sync")

    _run(estate, "dir full import")  # confirms what was exported; the new change waits

    ada = PendingExport.objects.get()
    assert ada.status == "pending" and ada.change_type == "update"
    assert set(PendingExportAttributeChange.objects.values_list("attribute", "status")) == {
        ("cn", "pending"),
        ("sn", "pending"),
        ("mail", "pending"),
    }
    _run(estate, "export")
    _run(estate, "dir delta import")
    assert estate.entry(f"uid=alovelace,ou=people,{estate.base}")["sn"] == ["King"]
    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace"), *PEOPLE[1:]])
    _run(estate, "hr import")
    _run(estate, "hr delta sync")
    _run(estate, "export")
    _run(estate, "dir full import")
    _settled(estate)
