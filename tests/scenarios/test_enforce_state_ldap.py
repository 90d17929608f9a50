"""``enforce_state`` end to end (issue 10, item 8): an edit made in slapd itself is
reverted by the Directory's own sync — full or delta — only when the export rule
enforces state; a change in HR reaches the directory either way."""

from __future__ import annotations

import pytest

from exports.models import PendingExport
from metaverse.models import SyncRule
from tests.scenarios.estate import person

pytestmark = pytest.mark.django_db

FIRST_CYCLE = [
    ("HR", "Full Import"),
    ("HR", "Full Sync"),
    ("Directory", "Export"),
    ("Directory", "Full Import"),
]
SYNCS = {"full": ("Full Import", "Full Sync"), "delta": ("Delta Import", "Delta Sync")}


@pytest.mark.parametrize("kind", SYNCS)
@pytest.mark.parametrize("enforce", [True, False], ids=["enforce_state", "no enforce_state"])
def test_an_edit_in_the_directory(estate, kind, enforce):
    SyncRule.objects.filter(name="Directory people out").update(enforce_state=enforce)
    estate.write_people([person("1001", "Ada", "Lovelace", "alovelace")])
    for system, profile in FIRST_CYCLE:
        estate.run(system, profile)
    dn = f"uid=alovelace,ou=people,{estate.base}"
    estate.modify(dn, {"cn": [("MODIFY_REPLACE", ["Countess of Lovelace"])]})
    import_profile, sync_profile = SYNCS[kind]

    estate.run("Directory", import_profile)
    estate.run("Directory", sync_profile)
    estate.run("Directory", "Export")
    estate.run("Directory", "Delta Import")

    expected = "Ada Lovelace" if enforce else "Countess of Lovelace"
    assert estate.entry(dn)["cn"] == [expected]
    assert PendingExport.objects.count() == 0
    # A change in HR reaches the directory either way.
    estate.write_people([person("1001", "Ada", "King", "alovelace")])
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    estate.run("Directory", "Export")
    assert estate.entry(dn)["sn"] == ["King"]
    assert estate.entry(dn)["cn"] == ["Ada King"]
