"""A configuration change in preview (runs/config_preview.py): ``jim apply FILE
--preview`` reports what the new configuration would do to the current data — scopes,
values, pending exports, deprovisionings — and changes nothing, in the database or in
the directory; what it announces is what the real apply and syncs then stage."""

from __future__ import annotations

import io
import json
import os
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors import run_lock
from connectors.choices import ActivityStatus, RunProfileType
from connectors.models import Activity, ConnectedSystem
from demo.data import write_hr_csv
from exports.changes import apply_changes
from exports.models import PendingExport
from metaverse.models import MetaverseObject
from tests.builders import run
from tests.previews.fidelity import assert_unchanged, database_state
from tests.scenarios.estate import person
from tests.support.held_runs import (
    CONFIG,
    environment,
    hr_system,
    kill,
    start,
    table_locked,
    wait_for,
)
from tests.support.held_runs import jim as jim_process

pytestmark = pytest.mark.django_db

PEOPLE = [
    person("1001", "Ada", "Lovelace", "alovelace"),
    person("1002", "Grace", "Hopper", "ghopper", manager="1001", department="Sales"),
    person("1003", "Alan", "Turing", "aturing", manager="1001"),
]
ACTIVE = "scope: \"mv.employeeStatus == 'Active'\""
ACTIVE_NOT_SALES = "scope: \"mv.employeeStatus == 'Active' and mv.department != 'Sales'\""
#: The syncs of the estate, in the order the preview runs them (sources first).
SYNCS = [("HR", "Full Sync"), ("Groups", "Full Sync"), ("Directory", "Full Sync")]


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def settled(estate) -> None:
    """Everyone imported, synced, exported and confirmed: nothing is waiting."""
    estate.write_people(PEOPLE)
    for system, profile in [
        ("HR", "Full Import"),
        ("Groups", "Full Import"),
        ("HR", "Full Sync"),
        ("Groups", "Full Sync"),
        ("Directory", "Export"),
        ("Directory", "Full Import"),
        ("Directory", "Full Sync"),
    ]:
        assert estate.run(system, profile).status == "complete", (system, profile)
    assert not PendingExport.objects.exists()


def changed_config(estate, old: str, new: str, name: str = "new.yaml") -> str:
    """A copy of the estate's configuration with ``old`` replaced by ``new``."""
    text = (estate.folder / "jim.yaml").read_text()
    assert old in text, old
    path = estate.folder / name
    path.write_text(text.replace(old, new))
    return str(path)


def directory(estate) -> dict:
    """Every entry under the estate's base, with its attributes."""
    connection = estate.ldap.connection()
    try:
        connection.search(estate.base, "(objectClass=*)", attributes=["*", "entryUUID"])
        return {entry.entry_dn: entry.entry_attributes_as_dict for entry in connection.entries}
    finally:
        connection.unbind()


def preview(estate, path: str, *extra: str) -> dict:
    """``jim apply PATH --preview --json``, checking it changed nothing anywhere."""
    db, ldap = database_state(), directory(estate)
    code, out, err = jim("apply", path, "--preview", "--json", *extra)
    assert code == 0, err
    assert_unchanged(db, database_state())
    assert directory(estate) == ldap
    return json.loads(out)


def dn(estate, account: str) -> str:
    return f"uid={account},ou=people,{estate.base}"


def test_a_narrower_scope_reports_who_leaves_and_the_deletes(estate):
    settled(estate)
    path = changed_config(estate, ACTIVE, ACTIVE_NOT_SALES)
    report = preview(estate, path)

    assert report["configuration"]["changes"] == [
        {"action": "update", "kind": "sync rule", "name": "Directory people out", "keys": ["scope"]}
    ]
    assert report["systems"] == ["HR", "Groups", "Directory"]
    (scope,) = report["scope"]
    assert scope["rule"] == "Directory people out"
    assert (scope["direction"], scope["system"]) == ("export", "Directory")
    assert scope["entering"] == {"count": 0, "samples": []}
    assert scope["leaving"] == {"count": 1, "samples": ["Grace Hopper"]}
    assert report["exports"]["created"]["count"] == 1
    assert report["exports"]["created"]["by_system"] == {
        "Directory": {"create": 0, "update": 0, "delete": 1}
    }
    delete = {
        "system": "Directory",
        "target": dn(estate, "ghopper"),
        "object": "Grace Hopper",
        "change_type": "delete",
        "attributes": [],
    }
    assert report["exports"]["created"]["samples"] == [delete]
    assert report["deprovisionings"]["count"] == 1
    assert report["deprovisionings"]["deletes"] == {"count": 1, "samples": [delete]}
    assert report["metaverse"]["attributes"] == []
    assert report["errors"]["new"]["count"] == 0

    code, out, _ = jim("apply", path, "--preview")
    assert code == 0
    assert "would update sync rule 'Directory people out': scope" in out
    assert "Directory people out (export to Directory):" in out
    assert "(export to Directory): 0 entering, 1 leaving\n    - Grace Hopper\n" in out
    assert "Deprovisionings: 1" in out
    assert f"delete Directory {dn(estate, 'ghopper')} — Grace Hopper" in out
    assert out.rstrip().endswith("Nothing was changed: this was a preview.")


def test_a_changed_flow_reports_the_values_and_the_updates(estate):
    settled(estate)
    path = changed_config(
        estate,
        "{mv: displayName, expression: \"cs.firstName ~ ' ' ~ cs.lastName\"}",
        "{mv: displayName, expression: \"cs.lastName ~ ', ' ~ cs.firstName\"}",
    )
    report = preview(estate, path, "--samples", "2")

    (display,) = report["metaverse"]["attributes"]
    assert (display["object_type"], display["attribute"], display["count"]) == (
        "person",
        "displayName",
        3,
    )
    assert display["samples"] == [
        {"object": "Lovelace, Ada", "before": ["Ada Lovelace"], "after": ["Lovelace, Ada"]},
        {"object": "Hopper, Grace", "before": ["Grace Hopper"], "after": ["Hopper, Grace"]},
    ]
    created = report["exports"]["created"]
    assert created["count"] == 3
    assert created["by_system"] == {"Directory": {"create": 0, "update": 3, "delete": 0}}
    (cn,) = report["exports"]["attributes"]
    assert (cn["system"], cn["object_type"], cn["attribute"], cn["count"]) == (
        "Directory",
        "inetOrgPerson",
        "cn",
        3,
    )
    assert cn["samples"][0] == {
        "target": dn(estate, "alovelace"),
        "object": "Lovelace, Ada",
        "before": ["Ada Lovelace"],
        "after": ["Lovelace, Ada"],
    }
    # Managers are the same people under new names: no reference changed.
    assert report["scope"] == []
    assert report["deprovisionings"]["count"] == 0

    code, out, _ = jim("apply", path, "--preview", "--samples", "1")
    assert code == 0
    assert "person.displayName changes: 3" in out
    assert "Lovelace, Ada: 'Ada Lovelace' → 'Lovelace, Ada'" in out
    assert "… and 2 more" in out
    assert "created (Directory: 3 update): 3" in out
    assert "Directory inetOrgPerson.cn changes: 3" in out
    assert "Deprovisionings: 0" in out


def test_a_new_export_rule_reports_who_enters_and_the_creates(estate):
    settled(estate)
    full = str(estate.folder / "jim.yaml")
    text = (estate.folder / "jim.yaml").read_text()
    without = estate.folder / "without-groups.yaml"
    without.write_text(text.replace(text[text.index("  - name: Directory groups out") :], ""))
    assert jim("apply", str(without), "--prune")[0] == 0
    # Groups come, with no rule to export them; the preview brings the rule back.
    estate.write_groups([{"name": "Staff"}, {"name": "Admins"}])
    estate.run("Groups", "Full Import")
    estate.run("Groups", "Full Sync")
    assert not PendingExport.objects.exists()

    report = preview(estate, full)

    assert report["configuration"]["summary"] == {"created": 1, "updated": 0, "removed": 0}
    (scope,) = report["scope"]
    assert scope["rule"] == "Directory groups out"
    assert scope["entering"] == {"count": 2, "samples": ["Staff", "Admins"]}  # MVO order
    assert scope["leaving"]["count"] == 0
    created = report["exports"]["created"]
    assert created["by_system"] == {"Directory": {"create": 2, "update": 0, "delete": 0}}
    assert sorted(s["target"] for s in created["samples"]) == [
        f"cn=Admins,ou=groups,{estate.base}",
        f"cn=Staff,ou=groups,{estate.base}",
    ]
    assert report["deprovisionings"]["count"] == 0


def test_an_account_that_existed_before_is_only_disconnected(estate):
    connection = estate.ldap.connection()
    try:
        assert connection.add(
            dn(estate, "ghopper"),
            ["inetOrgPerson"],
            {"cn": "Grace Hopper", "sn": "Hopper", "uid": "ghopper"},
        )
    finally:
        connection.unbind()
    estate.run("Directory", "Full Import")
    settled(estate)  # Grace's account is joined, not provisioned
    path = changed_config(estate, ACTIVE, ACTIVE_NOT_SALES)

    report = preview(estate, path)

    deprovisionings = report["deprovisionings"]
    assert deprovisionings["count"] == 1
    assert deprovisionings["deletes"]["count"] == 0
    assert deprovisionings["disconnections"] == {
        "count": 1,
        "samples": [
            {"system": "Directory", "target": dn(estate, "ghopper"), "object": "Grace Hopper"}
        ],
    }
    assert report["exports"]["created"]["count"] == 0
    assert {s["rule"]: s["leaving"]["samples"] for s in report["scope"]} == {
        "Directory people join": ["Grace Hopper"],
        "Directory people out": ["Grace Hopper"],
    }


def test_a_narrower_import_scope_reports_the_metaverse_objects_deleted(estate):
    settled(estate)
    path = changed_config(
        estate,
        "scope: \"cs.status != 'Terminated'\"",
        "scope: \"cs.status != 'Terminated' and cs.department != 'Sales'\"",
    )

    report = preview(estate, path)

    assert {s["rule"]: s["leaving"]["samples"] for s in report["scope"]} == {
        "HR people in": ["Grace Hopper"],
        "Directory people out": ["Grace Hopper"],
    }
    deprovisionings = report["deprovisionings"]
    assert deprovisionings["metaverse_objects_deleted"] == {
        "count": 1,
        "samples": [{"object": "Grace Hopper", "object_type": "person"}],
    }
    assert [s["target"] for s in deprovisionings["deletes"]["samples"]] == [dn(estate, "ghopper")]
    assert deprovisionings["count"] == 2


def test_an_invalid_file_changes_nothing_and_says_why_as_apply_does(estate):
    settled(estate)
    path = changed_config(estate, "{mv: sn, from: lastName}", "{mv: sm, from: lastName}")
    before = database_state()
    code, out, err = jim("apply", path, "--preview")
    assert code == 2 and out == ""
    assert f"jim apply: {path} is invalid (1 problem); nothing was changed." in err
    assert "no metaverse attribute 'sm' on person" in err
    assert err == jim("apply", path)[2]
    code, _, err = jim("apply", str(estate.folder / "missing.yaml"), "--preview")
    assert code == 2 and "no such file" in err
    assert_unchanged(before, database_state())


def test_check_and_preview_together_are_refused_and_json_needs_preview(estate):
    path = str(estate.folder / "jim.yaml")
    code, out, err = jim("apply", path, "--check", "--preview")
    assert code == 2 and out == "" and "--check and --preview go alone" in err
    code, out, err = jim("apply", path, "--json")
    assert code == 2 and "--json goes with --preview" in err


def test_the_preview_refuses_to_start_while_a_sync_runs(estate):
    settled(estate)
    running = Activity.objects.create(
        connected_system=ConnectedSystem.objects.get(name="Groups"),
        profile_type=RunProfileType.FULL_SYNC,
        profile_name="Full Sync",
        status=ActivityStatus.IN_PROGRESS,
    )
    lock = run_lock.hold(running.pk)
    try:
        code, out, err = jim("apply", str(estate.folder / "jim.yaml"), "--preview")
    finally:
        lock.release()
    assert code == 2 and out == ""
    assert f"activity #{running.pk} is running (Groups — Full Sync)" in err
    running.refresh_from_db()
    assert running.status == ActivityStatus.IN_PROGRESS


def test_json_has_every_documented_key(estate):
    settled(estate)
    report = preview(estate, str(estate.folder / "jim.yaml"))
    assert set(report) == {
        "file",
        "preview",
        "prune",
        "configuration",
        "systems",
        "scope",
        "metaverse",
        "exports",
        "deprovisionings",
        "errors",
    }
    assert report["preview"] is True and report["prune"] is False
    assert set(report["configuration"]) == {"changes", "summary", "notes"}
    assert report["configuration"]["changes"] == []
    assert set(report["metaverse"]) == {"created", "attributes"}
    assert set(report["exports"]) == {"created", "changed", "removed", "attributes"}
    assert set(report["exports"]["created"]) == {"count", "samples", "by_system"}
    assert set(report["deprovisionings"]) == {
        "count",
        "deletes",
        "disables",
        "disconnections",
        "metaverse_objects_deleted",
        "metaverse_objects_scheduled_for_deletion",
    }
    assert set(report["errors"]) == {"new", "resolved"}
    # The same file: nothing would change.
    assert report["scope"] == [] and report["deprovisionings"]["count"] == 0
    assert all(report["exports"][e]["count"] == 0 for e in ("created", "changed", "removed"))


def test_the_baseline_keeps_waiting_changes_out_of_the_answer(estate):
    """A change in HR not synced yet is what the next sync does anyway, under either
    configuration: the preview reports only what the configuration change adds."""
    settled(estate)
    estate.write_people([person("1001", "Ada", "King", "alovelace"), *PEOPLE[1:]])
    estate.run("HR", "Full Import")
    path = changed_config(estate, ACTIVE, ACTIVE_NOT_SALES)
    report = preview(estate, path)
    assert report["metaverse"]["attributes"] == []  # Ada's new surname is not the file's
    assert report["exports"]["created"]["by_system"] == {
        "Directory": {"create": 0, "update": 0, "delete": 1}
    }


def _staged(estate) -> Counter:
    """The pending exports in the database, as the preview's samples name them."""
    return Counter(
        (pe.connected_system.name, pe.target, pe.change_type)
        for pe in PendingExport.objects.select_related("connected_system", "cs_object")
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (ACTIVE, ACTIVE_NOT_SALES),
        (
            "{mv: displayName, expression: \"cs.firstName ~ ' ' ~ cs.lastName\"}",
            "{mv: displayName, expression: \"cs.lastName ~ ', ' ~ cs.firstName\"}",
        ),
    ],
    ids=["scope", "flow"],
)
def test_what_the_preview_announces_is_what_the_real_syncs_stage(estate, old, new):
    settled(estate)
    path = changed_config(estate, old, new)
    report = preview(estate, path, "--samples", "1000")
    announced = Counter(
        (s["system"], s["target"], s["change_type"])
        for s in report["exports"]["created"]["samples"]
    )

    assert jim("apply", path)[0] == 0
    for system, profile in SYNCS:
        assert estate.run(system, profile).status == "complete"

    assert announced == _staged(estate)
    # The values the staged updates would leave in the directory are the announced ones.
    announced_values = {
        (sample["target"], attribute["attribute"]): sorted(sample["after"])
        for attribute in report["exports"]["attributes"]
        for sample in attribute["samples"]
    }
    staged_values = {}
    for pe in PendingExport.objects.filter(change_type="update").select_related("cs_object"):
        changes = list(pe.attribute_changes.all())
        after = apply_changes(pe.cs_object.attributes, changes)
        for attribute in {c.attribute for c in changes}:
            staged_values[(pe.target, attribute)] = sorted(after.get(attribute, []))
    assert announced_values == staged_values


def _queries_of_a_preview(estate, path: str, people: int) -> int:
    estate.write_people(
        [
            person(str(2000 + n), f"P{n}", "Person", f"p{n}", department=("Sales", "IT")[n % 2])
            for n in range(people)
        ]
    )
    for system, profile in [("HR", "Full Import"), ("HR", "Full Sync")]:
        estate.run(system, profile)
    with CaptureQueriesContext(connection) as queries:
        assert jim("apply", path, "--preview")[0] == 0
    return len(queries)


def test_the_queries_do_not_grow_with_the_objects(estate):
    path = changed_config(estate, ACTIVE, ACTIVE_NOT_SALES)
    few = _queries_of_a_preview(estate, path, 4)
    many = _queries_of_a_preview(estate, path, 40)
    assert many == few


# --------------------------------------------------------------------------- real processes


def _waiting(table: str) -> bool:
    """A session of this database waits on a lock in a statement that names ``table``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        queries = [row[0] for row in cursor.fetchall()]
    return any(f'"{table}"' in query for query in queries)


def _preview_held_in_its_baseline(env: dict[str, str]):
    """Start ``jim apply --preview`` of the demo's configuration; return the process
    once its baseline sync waits on the metaverse table (locked by the caller)."""
    process = start(env, "jim", "apply", str(CONFIG), "--preview", "--json")
    wait_for(
        lambda: _waiting("metaverse_metaverseobject"),
        "the preview's baseline sync to wait",
        process,
    )
    return process


@pytest.mark.django_db(transaction=True)
def test_a_sync_started_during_the_preview_waits_for_it(demo_config):
    assert run(hr_system(), "Full Import").status == "complete_with_errors"
    env = environment()
    with table_locked("metaverse_metaverseobject"):
        preview_process = _preview_held_in_its_baseline(env)
        sync = start(env, "jim", "run", "HR", "Full Sync", "--json")
        wait_for(lambda: _waiting("connectors_activity"), "the sync to wait", sync)
        assert not Activity.objects.filter(status="in_progress").exists()  # none committed
    out, err = preview_process.communicate(timeout=300)
    assert preview_process.returncode == 0, err
    assert json.loads(out)["systems"] == ["HR", "Directory"]
    out, err = sync.communicate(timeout=300)
    assert sync.returncode in (0, 1), err
    # It ran after the preview, on the data as it was: every MVO is its own.
    projected = json.loads(out)["counts"]["projected"]
    assert projected > 0 and MetaverseObject.objects.count() == projected


@pytest.mark.django_db(transaction=True)
def test_kill_9_of_the_preview_leaves_nothing_at_all(demo_config):
    assert run(hr_system(), "Full Import").status == "complete_with_errors"
    before = database_state()
    env = environment()
    with table_locked("metaverse_metaverseobject"):
        kill(_preview_held_in_its_baseline(env))
    assert_unchanged(before, database_state())
    status, out, err = jim_process(env, "run", "HR", "Full Sync", "--json")
    assert status in (0, 1), err
    assert json.loads(out)["counts"]["projected"] > 0


def test_a_configuration_preview_on_sqlite_changes_nothing(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jim.sqlite3'}",
        "JIM_DEMO_DATA": str(tmp_path),
    }
    migrated = start(env, "migrate", "--verbosity", "0")
    assert migrated.wait(timeout=300) == 0, migrated.communicate()[1]
    assert jim_process(env, "apply", str(CONFIG))[0] == 0
    write_hr_csv(tmp_path / "hr.csv", 300)
    assert jim_process(env, "run", "HR", "Full Import")[0] == 1  # the demo file's bad rows
    assert jim_process(env, "run", "HR", "Full Sync")[0] == 0
    staged = jim_process(env, "pending-exports", "--json")[1]
    changed = tmp_path / "new.yaml"
    changed.write_text(CONFIG.read_text().replace(ACTIVE, ACTIVE_NOT_SALES))

    status, out, err = jim_process(env, "apply", str(changed), "--preview", "--json")

    assert status == 0, err
    report = json.loads(out)
    removed = report["exports"]["removed"]  # creates not sent yet are cancelled
    assert removed["count"] > 0
    assert removed["by_system"]["Directory"]["create"] == removed["count"]
    # Nothing that exists in the directory is touched: no deprovisioning.
    assert report["deprovisionings"]["count"] == 0
    assert jim_process(env, "pending-exports", "--json")[1] == staged
    status, out, _ = jim_process(env, "apply", str(changed), "--check")
    assert "would update sync rule 'Directory people out': scope" in out
