"""Undo an export run against real slapd: a wrong run — a changed department, a user
created, a user deleted — is rolled back with `jim undo`, through the approval
policy, and the directory is as it was before, attribute for attribute."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from audit.models import Action, AuditEntry
from exports.approval import decide
from exports.models import ExportedChange, PendingExport
from tests.scenarios.estate import make_estate, person

pytestmark = pytest.mark.django_db


def jim(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jim", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def people_entries(estate) -> dict[str, dict[str, list[str]]]:
    """Every entry under ou=people, by DN (lower case), with its user attributes."""
    connection = estate.ldap.connection()
    try:
        connection.search(f"ou=people,{estate.base}", "(uid=*)", attributes=["*"])
        return {
            entry.entry_dn.lower(): {
                name.lower(): sorted(str(v) for v in values)
                for name, values in entry.entry_attributes_as_dict.items()
            }
            for entry in connection.entries
        }
    finally:
        connection.unbind()


def user_in(name: str, group: str) -> User:
    user = User.objects.create_user(name)
    user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)


def test_a_wrong_export_run_is_undone_and_the_directory_is_as_it_was(
    tmp_path, slapd, ldap_ou, monkeypatch
):
    estate = make_estate(tmp_path, slapd, ldap_ou, monkeypatch, approval="deletes")
    admin = user_in("root", "Administrators")
    approver = user_in("alice", "Approvers")
    ada = person("1", "Ada", "Lovelace", "ada")
    estate.write_people(
        [ada, person("2", "Alan", "Turing", "alan", manager="1"), person("3", "Grace", "H", "gh")]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Full Sync")
    estate.run("Directory", "Export")
    estate.run("Directory", "Full Import")
    before = people_entries(estate)
    assert len(before) == 3

    # The wrong run: Ada's department, a user created, a user deleted.
    estate.write_people(
        [
            person("1", "Ada", "Lovelace", "ada", department="Sales"),
            person("2", "Alan", "Turing", "alan", manager="1", status="Terminated"),
            person("3", "Grace", "H", "gh"),
            person("4", "Bob", "Wrong", "bob"),
        ]
    )
    estate.run("HR", "Full Import")
    estate.run("HR", "Delta Sync")
    decide(PendingExport.objects.filter(change_type="delete"), approver, approve=True)
    wrong = estate.run("Directory", "Export")
    assert wrong.counts == {"exported": 1, "provisioned": 1, "deprovisioned": 1}
    estate.run("Directory", "Full Import")  # confirms what was sent
    assert people_entries(estate) != before
    assert ExportedChange.objects.filter(activity=wrong).count() == 3

    # The preview changes nothing.
    code, out, err = jim("undo", str(wrong.pk), "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["conflicts"] == []
    assert {(i["change_type"], i["undoes"]) for i in plan["inverse"]} == {
        ("delete", "create"),
        ("update", "update"),
        ("create", "delete"),
    }
    update = next(i for i in plan["inverse"] if i["change_type"] == "update")
    # departmentNumber is multi-valued in the directory: the run added one value and
    # removed the other, the undo puts the removed one back and takes the added out.
    assert update["changes"] == [
        {
            "attribute": "departmentNumber",
            "change_type": "add",
            "values": ["Engineering"],
            "previous_values": ["Sales"],
        },
        {
            "attribute": "departmentNumber",
            "change_type": "remove",
            "values": ["Sales"],
            "previous_values": ["Sales"],
        },
    ]
    assert not PendingExport.objects.exists()

    code, out, err = jim(
        "undo", str(wrong.pk), "--confirm", "--user", "root", "--reason", "wrong HR file"
    )
    assert code == 0, err
    assert "Staged 3 pending export(s)" in out
    staged = {pe.change_type: pe for pe in PendingExport.objects.all()}
    assert staged["delete"].approval == "awaiting_approval"  # the system's policy
    assert staged["create"].approval == "not_required"
    entry = AuditEntry.objects.get(action=Action.EXPORT_UNDONE)
    assert (entry.actor, entry.reason, entry.object_id) == (admin, "wrong HR file", str(wrong.pk))

    first = estate.run("Directory", "Export")
    assert first.counts == {"exported": 1, "provisioned": 1}
    decide([staged["delete"]], approver, approve=True, reason="undo of a wrong run")
    undo_run = estate.run("Directory", "Export")
    assert undo_run.counts == {"deprovisioned": 1}

    assert people_entries(estate) == before

    code, _, err = jim("undo", str(wrong.pk), "--confirm", "--user", "root")
    assert code == 2
    assert "already undone" in err and "by root" in err
