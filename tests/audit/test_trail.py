"""The audit trail: append-only, browsable only by Administrators, secrets masked, and
one entry, with the right actor and before → after, for every change it records."""

from __future__ import annotations

import getpass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django_q.conf import Conf

from audit.models import AppendOnly, AuditEntry
from audit.recording import MASK, diff, record
from connectors.models import ConnectedSystem, RunProfile, Schedule
from metaverse.models import MetaverseObjectType
from tests.builders import make_connected_system, make_csv_system, people
from tests.support.cli import jim
from tests.support.configuration import example, write_config
from tests.test_admin_secrets import PASSWORD, change_url, save

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:audit_auditentry_changelist")


def member_of(role: str, username: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def only_entry(**filters: Any) -> AuditEntry:
    [entry] = AuditEntry.objects.filter(**filters)
    return entry


# --------------------------------------------------------------------------- append-only


def test_an_entry_cannot_be_changed_or_deleted_by_any_path() -> None:
    entry = record("someone", "changed", reason="written once")

    entry.reason = "rewritten"
    with pytest.raises(AppendOnly, match="append-only"):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="rewritten")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "written once"


def test_deleting_a_user_keeps_their_entries_under_their_name() -> None:
    user = User.objects.create_user("gone", password="pw")
    entry = record(user, "changed", reason="before leaving")

    user.delete()

    entry = AuditEntry.objects.get(pk=entry.pk)
    assert (entry.actor, entry.actor_name, entry.reason) == (None, "gone", "before leaving")


def test_the_admin_shows_the_trail_to_administrators_only_and_changes_nothing(client) -> None:
    entry = record("someone", "changed", reason="written once")
    change = reverse("admin:audit_auditentry_change", args=[entry.pk])
    client.force_login(member_of("Administrators", "ada"))

    assert client.get(LIST_URL).status_code == 200
    assert client.get(f"{LIST_URL}?action__exact=changed&via__exact=system").status_code == 200
    page = client.get(change)
    assert page.status_code == 200 and b"written once" in page.content
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert client.post(change, {"reason": "rewritten"}).status_code == 403
    delete = reverse("admin:audit_auditentry_delete", args=[entry.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(LIST_URL, {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.get(pk=entry.pk).reason == "written once"

    client.force_login(member_of("Viewers", "vic"))
    assert client.get(LIST_URL).status_code == 403
    assert client.get(change).status_code == 403


# --------------------------------------------------------------------------- secrets


def test_diff_masks_secrets_and_says_which_changed() -> None:
    before = {
        "name": "Directory",
        "secret_settings": {"bind_password": "old-pw"},
        "settings": {"url": "ldap://a", "api_token": "t0k"},
    }
    after = {
        "name": "Directory",
        "secret_settings": {"bind_password": "new-pw", "client_secret": "s"},
        "settings": {"url": "ldap://b", "api_token": "t0k2"},
    }

    changes = diff(before, after, secret_fields={"secret_settings"})

    assert changes == {
        "secret_settings.bind_password": [MASK, MASK],
        "secret_settings.client_secret": ["", MASK],
        "settings": [
            {"url": "ldap://a", "api_token": MASK},
            {"url": "ldap://b", "api_token": MASK},
        ],
    }
    assert diff({"password": "a"}, {"password": "b"}) == {"password": [MASK, MASK]}


def test_a_secret_changed_in_the_admin_is_recorded_masked(admin_client) -> None:
    directory = make_connected_system(
        "Directory",
        "ldap",
        {"url": "ldap://127.0.0.1:3890", "base_dn": "dc=example,dc=org"},
        object_type="inetOrgPerson",
        external_id="entryUUID",
        profiles=(),
        secret_settings={"bind_password": PASSWORD},
    )

    response = save(
        admin_client, directory, secret__bind_password="N3w-pw!", description="the directory"
    )

    assert response.status_code == 302
    entry = only_entry(object_type="connectors.connectedsystem", action="changed")
    assert entry.changes == {
        "description": ["", "the directory"],
        "secret_settings.bind_password": [MASK, MASK],
    }
    assert (entry.actor.username, entry.via, entry.address) == ("admin", "admin", "127.0.0.1")
    assert PASSWORD not in str(entry.changes) and "N3w-pw!" not in str(entry.changes)
    page = admin_client.get(reverse("admin:audit_auditentry_change", args=[entry.pk]))
    assert b"N3w-pw!" not in page.content and PASSWORD.encode() not in page.content
    assert admin_client.get(change_url(directory)).status_code == 200


# --------------------------------------------------------------------------- admin changes


def test_admin_create_change_and_delete_are_recorded_with_inline_rows(admin_client) -> None:
    system = make_csv_system_for_schedule()
    profile = RunProfile.objects.get(connected_system=system)
    add = reverse("admin:connectors_schedule_add")
    data = {
        "name": "Nightly",
        "cron": "0 2 * * *",
        "enabled": "on",
        "stop_on_failure": "on",
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-0-order": "0",
        "steps-0-run_profile": str(profile.pk),
    }
    assert admin_client.post(add, data).status_code == 302
    schedule = Schedule.objects.get()
    created = only_entry(action="created", object_type="connectors.schedule")
    assert created.object_id == str(schedule.pk) and created.object_repr == "Nightly"
    assert created.changes["cron"] == [None, "0 2 * * *"]
    step = schedule.steps.get()
    assert created.changes[f"schedule_steps#{step.pk}.run_profile"] == [None, str(profile)]

    change = reverse("admin:connectors_schedule_change", args=[schedule.pk])
    data.update({"cron": "0 3 * * *", "steps-INITIAL_FORMS": "1", "steps-0-id": str(step.pk)})
    assert admin_client.post(change, data).status_code == 302
    changed = only_entry(action="changed", object_type="connectors.schedule")
    assert changed.changes == {"cron": ["0 2 * * *", "0 3 * * *"]}
    assert changed.actor.username == "admin"

    assert admin_client.post(change, data).status_code == 302  # saved unchanged
    assert AuditEntry.objects.filter(action="changed").count() == 1

    delete = reverse("admin:connectors_schedule_delete", args=[schedule.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    deleted = only_entry(action="deleted", object_type="connectors.schedule")
    assert deleted.object_repr == "Nightly" and deleted.changes["cron"] == ["0 3 * * *", None]


def make_csv_system_for_schedule() -> ConnectedSystem:
    return make_connected_system("HR", "csv", {"path": "hr.csv"})


def test_the_bulk_delete_action_records_each_object(admin_client) -> None:
    kinds = [MetaverseObjectType.objects.create(name=n) for n in ("person", "group")]

    admin_client.post(
        reverse("admin:metaverse_metaverseobjecttype_changelist"),
        {"action": "delete_selected", "_selected_action": [k.pk for k in kinds], "post": "yes"},
    )

    assert not MetaverseObjectType.objects.exists()
    assert sorted(
        AuditEntry.objects.filter(action="deleted").values_list("object_repr", flat=True)
    ) == [
        "group",
        "person",
    ]


# --------------------------------------------------------------------------- jim apply


def test_jim_apply_records_each_object_for_the_os_user(tmp_path, ldap_password) -> None:
    data = example()
    path = write_config(tmp_path, data)
    assert jim("apply", str(path))[0] == 0
    created = AuditEntry.objects.filter(action="created")
    assert created.count() == 31  # one per object the report names
    assert set(created.values_list("via", "actor_name")) == {("cli", getpass.getuser())}
    directory = ConnectedSystem.objects.get(name="Directory")
    system_entry = created.get(object_type="connectors.connectedsystem", object_id=directory.pk)
    assert system_entry.changes["secret_settings.bind_password"] == ["", MASK]
    assert ldap_password not in str(list(AuditEntry.objects.values_list("changes", flat=True)))

    data["connected_systems"][1]["export"]["approval"] = "deletes"
    data["sync_rules"][0]["flows"].append({"mv": "mail", "from": "lastName"})
    data["sync_rules"] = data["sync_rules"][:-1]
    removed = example()["sync_rules"][-1]["name"]
    assert jim("apply", str(write_config(tmp_path, data)), "--prune")[0] == 0

    system = only_entry(action="changed", object_type="connectors.connectedsystem")
    assert system.changes == {"approval_mode": ["none", "deletes"]}
    rule = only_entry(action="changed", object_type="metaverse.syncrule")
    before, after = rule.changes["flows"]
    assert after == [*before, "mail ← lastName"]
    gone = only_entry(action="deleted", object_type="metaverse.syncrule")
    assert gone.object_repr == removed

    assert jim("apply", str(write_config(tmp_path, data)), "--check")[0] == 0
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0  # unchanged: no entry
    assert AuditEntry.objects.filter(action="changed").count() == 2


def test_separate_duties_round_trips_through_dump_and_apply(tmp_path, ldap_password) -> None:
    data = example()
    data["connected_systems"][1]["export"]["separate_duties"] = True
    assert jim("apply", str(write_config(tmp_path, data)))[0] == 0
    assert ConnectedSystem.objects.get(name="Directory").separate_duties
    assert not ConnectedSystem.objects.get(name="HR").separate_duties

    status, dumped, _ = jim("dump")
    assert status == 0 and "separate_duties: true" in dumped
    assert jim("apply", str(write_config(tmp_path, dumped)))[0] == 0
    assert ConnectedSystem.objects.get(name="Directory").separate_duties
    assert not AuditEntry.objects.filter(action="changed").exists()


# --------------------------------------------------------------------------- runs started


def test_a_run_started_from_the_admin_is_recorded_once(client, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(Conf, "SYNC", True)
    system = make_csv_system(tmp_path, people(2))
    profile = RunProfile.objects.get(connected_system=system)
    user = member_of("Operators", "oscar")
    client.force_login(user)

    client.post(reverse("admin:connectors_runprofile_run", args=[profile.pk]))

    entry = only_entry(action="run_started")
    activity = system.activities.get()
    assert (entry.actor, entry.via, entry.address) == (user, "admin", "127.0.0.1")
    assert (entry.object_type, entry.object_id) == ("connectors.activity", str(activity.pk))
    assert profile.name in entry.reason


def test_jim_run_and_jim_queue_record_the_os_user(tmp_path) -> None:
    system = make_csv_system(tmp_path, people(2))
    profile = RunProfile.objects.get(connected_system=system)

    assert jim("run", system.name, profile.name)[0] == 0
    assert jim("queue", system.name, profile.name)[0] == 0

    entries = AuditEntry.objects.filter(action="run_started").order_by("pk")
    assert [(e.via, e.actor_name) for e in entries] == [
        ("cli", f"{getpass.getuser()} (jim run)"),
        ("cli", f"{getpass.getuser()} (jim queue)"),
    ]
    assert [e.object_id for e in entries] == [
        str(pk) for pk in system.activities.order_by("pk").values_list("pk", flat=True)
    ]


def test_a_schedule_run_is_recorded_as_jim_itself(tmp_path, monkeypatch) -> None:
    from runs.tasks import run_schedule

    system = make_csv_system(tmp_path, people(2))
    schedule = Schedule.objects.create(name="Nightly", cron="0 2 * * *")
    schedule.steps.create(run_profile=RunProfile.objects.get(connected_system=system))

    run_schedule(schedule.pk)

    entry = only_entry(action="run_started")
    assert (entry.actor, entry.actor_name, entry.via) == (None, "schedule Nightly", "system")
