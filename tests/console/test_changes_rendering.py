"""What a run changed, value by value, on the activity page, the RPEI admin and the MVO
history: each attribute once, old → new (multi-valued: added and removed), reference
values as names (never ids), the system and sync rule behind each, and older RPEIs that
recorded names only still shown."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connectors.models import RunProfileExecutionItem
from console.changes import GONE
from tests.builders import add_run_profile, make_connected_system
from tests.console.builders import make_activity, make_cso, make_mvo

pytestmark = pytest.mark.django_db

RULE = "HR people in"
#: What the partial marks a removed value with.
MINUS = "\N{MINUS SIGN}"


@pytest.fixture
def world():
    hr = make_connected_system("HR", profiles=())
    directory = make_connected_system("Directory", "ldap", profiles=())
    bob = make_mvo("Bob Boss")
    alice = make_mvo("Alice Chief")
    heidi = make_mvo("Heidi Jones-Okafor")
    boss_entry = make_cso(
        directory, "uuid-bob", secondary_external_id="uid=bob,ou=people,dc=example,dc=org"
    )
    heidi_cso = make_cso(hr, "E7", mvo=heidi)
    return {
        "hr": hr,
        "directory": directory,
        "bob": bob,
        "alice": alice,
        "heidi": heidi,
        "boss_entry": boss_entry,
        "heidi_cso": heidi_cso,
        "sync": make_activity(add_run_profile(hr, "full_sync", name="Full Sync")),
        "import": make_activity(add_run_profile(directory, "full_import", name="Full Import")),
    }


def sync_item(world, changes, **fields):
    return RunProfileExecutionItem.objects.create(
        activity=world["sync"],
        change_type="attribute_flow",
        metaverse_object=world["heidi"],
        message=", ".join(changes) + " changed",
        details={"attributes": sorted(changes), "changes": changes},
        **fields,
    )


def renamed(bob, alice):
    return {
        "sn": {"old": ["Jones"], "new": ["Jones-Okafor"], "rule": RULE},
        "manager": {"old": [bob.pk], "new": [alice.pk], "ref": "mvo", "rule": RULE},
        "groups": {"multivalued": True, "added": ["managers"], "removed": ["sales"]},
    }


def change_tables(page: str) -> list[str]:
    """The changes tables of a page (console/partials/changes.html)."""
    return re.findall(r'<table class="jim-changes">.*?</table>', page, re.S)


def rows(table: str) -> dict[str, str]:
    """attribute → the text of its change, whitespace collapsed."""
    found = {}
    for head, cell in re.findall(r'<th scope="row">(.*?)</th>\s*<td>(.*?)</td>', table, re.S):
        name = re.sub(r"<div.*", "", head, flags=re.S).strip()
        found[name] = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", cell)).split())
    return found


def sources(table: str) -> list[str]:
    return [html.unescape(s) for s in re.findall(r'class="jim-change-source">(.*?)<', table)]


def activity_url(activity) -> str:
    return reverse("console:activity", args=[activity.pk])


def admin_url(item) -> str:
    return reverse("admin:connectors_runprofileexecutionitem_change", args=[item.pk])


def mvo_url(mvo) -> str:
    return reverse("console:mvo", args=[mvo.pk])


# -- the activity page -------------------------------------------------------------------


def test_activity_items_show_each_attribute_once_old_to_new(viewer_client, world):
    sync_item(world, renamed(world["bob"], world["alice"]))

    [table] = change_tables(viewer_client.get(activity_url(world["sync"])).text)

    assert rows(table) == {
        "sn": "Jones → Jones-Okafor",
        "manager": "Bob Boss → Alice Chief",
        "groups": f"+ managers {MINUS} sales",
    }
    assert sources(table) == [f"rule: {RULE}", f"rule: {RULE}"]


def test_reference_values_are_names_never_ids(viewer_client, world):
    bob, alice = world["bob"], world["alice"]
    sync_item(
        world,
        {"manager": {"old": [bob.pk], "new": [alice.pk], "ref": "mvo"}},
        external_id="E7",
    )
    entry = world["boss_entry"]
    RunProfileExecutionItem.objects.create(
        activity=world["import"],
        change_type="updated",
        details={
            "attributes": ["manager", "member"],
            "changes": {
                "manager": {"old": ["uid=bob,dc=x"], "new": [entry.pk], "ref": "cso"},
                "member": {"multivalued": True, "added": [entry.pk], "removed": [], "ref": "cso"},
            },
        },
    )

    [sync_table] = change_tables(viewer_client.get(activity_url(world["sync"])).text)
    [import_table] = change_tables(viewer_client.get(activity_url(world["import"])).text)

    assert rows(sync_table) == {"manager": "Bob Boss → Alice Chief"}
    assert rows(import_table) == {
        "manager": "uid=bob,dc=x (unresolved) → uid=bob,ou=people,dc=example,dc=org",
        "member": "+ uid=bob,ou=people,dc=example,dc=org",
    }
    for table in (sync_table, import_table):
        cells = " ".join(rows(table).values())
        assert not {str(bob.pk), str(alice.pk), str(entry.pk)} & set(cells.split())


def test_a_reference_to_an_object_since_deleted_says_so(viewer_client, world):
    gone = make_mvo("Gone Person")
    sync_item(world, {"manager": {"old": [gone.pk], "new": [], "ref": "mvo"}})
    gone.delete()

    [table] = change_tables(viewer_client.get(activity_url(world["sync"])).text)

    assert rows(table) == {"manager": f"{GONE} → —"}


def test_a_long_multi_valued_change_says_how_many_values_are_not_shown(viewer_client, world):
    added = [f"group {n}" for n in range(20)]
    sync_item(
        world,
        {"groups": {"multivalued": True, "added": added, "removed": [], "more_added": 7}},
    )

    [table] = change_tables(viewer_client.get(activity_url(world["sync"])).text)

    assert rows(table)["groups"].endswith("+ group 19 and more (7 values not shown)")


def test_an_older_item_that_recorded_names_only_still_shows_them(viewer_client, world):
    RunProfileExecutionItem.objects.create(
        activity=world["sync"], change_type="attribute_flow", details={"attributes": ["sn"]}
    )

    [table] = change_tables(viewer_client.get(activity_url(world["sync"])).text)

    assert rows(table) == {"sn": "changed (its values were not recorded)"}


def test_the_activity_page_resolves_references_in_a_fixed_number_of_queries(viewer_client, world):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert viewer_client.get(activity_url(world["sync"])).status_code == 200
        return len(captured)

    sync_item(world, renamed(world["bob"], world["alice"]))
    one = queries()
    for n in range(30):
        other = make_mvo(f"Manager {n}")
        sync_item(world, {"manager": {"old": [], "new": [other.pk], "ref": "mvo"}})

    assert queries() == one


# -- the RPEI admin ----------------------------------------------------------------------


def test_the_rpei_admin_shows_the_changes_table_not_raw_json(operator_client, world):
    changes = renamed(world["bob"], world["alice"])
    item = sync_item(world, changes)
    item.details["exports"] = [{"system": "Directory", "action": "update"}]
    item.save()

    page = operator_client.get(admin_url(item)).text

    [table] = change_tables(page)
    assert rows(table)["manager"] == "Bob Boss → Alice Chief"
    assert rows(table)["sn"] == "Jones → Jones-Okafor"
    assert "&quot;changes&quot;" not in page and '"changes"' not in page
    assert "&quot;exports&quot;" in page  # what else the run recorded, as recorded


def test_the_rpei_admin_shows_an_older_item_and_a_rename(operator_client, world):
    item = RunProfileExecutionItem.objects.create(
        activity=world["import"],
        change_type="updated",
        details={"attributes": ["title"], "dn": ["uid=a,dc=x", "uid=b,dc=x"]},
    )

    [table] = change_tables(operator_client.get(admin_url(item)).text)

    assert rows(table) == {
        "title": "changed (its values were not recorded)",
        "DN": "uid=a,dc=x → uid=b,dc=x",
    }


# -- the MVO's history -------------------------------------------------------------------


def test_the_mvo_history_shows_values_with_the_system_and_rule(viewer_client, world):
    sync_item(world, renamed(world["bob"], world["alice"]))
    RunProfileExecutionItem.objects.create(
        activity=world["import"],
        change_type="updated",
        cs_object=world["heidi_cso"],
        details={"attributes": ["sn"]},  # recorded before values were
    )

    response = viewer_client.get(mvo_url(world["heidi"]))

    imported, synced = change_tables(response.text)  # newest first
    assert rows(synced) == {
        "sn": "Jones → Jones-Okafor",
        "manager": "Bob Boss → Alice Chief",
        "groups": f"+ managers {MINUS} sales",
    }
    assert sources(synced) == ["HR", f"HR (rule: {RULE})", f"HR (rule: {RULE})"]  # by name
    assert rows(imported) == {"sn": "changed (its values were not recorded)"}
    assert sources(imported) == ["Directory"]
    assert "sn, manager, groups changed" in response.text
