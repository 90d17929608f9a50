"""The console's undo of an export run: "Undo this run…" on an export activity's page
for Administrators only, the plan shown first, staging behind a confirmation box."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from audit.models import Action, AuditEntry
from connectors import registry
from connectors.choices import RunProfileType
from connectors.models import Activity
from console.approval_story import export_stories
from exports.models import PendingExport
from exports.undo import stage_undo
from tests.console.browser import log_in
from tests.exports.memory_connector import MemoryConnector
from tests.exports.undoing import BASE, cso, export_run, make_directory, sent, user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def wrong_run(monkeypatch) -> Activity:
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    MemoryConnector.reset()
    directory = make_directory()
    activity = export_run(directory)
    ada = cso(directory, "ada", title=["Wrong"])
    sent(activity, ada, "update", ("title", "update", ["Wrong"], ["Right"]))
    drifted = cso(directory, "grace", title=["Changed by hand"])
    sent(activity, drifted, "update", ("title", "update", ["Wrong"], ["Right"]))
    return activity


def signed_in(role: str) -> Client:
    client = Client()
    user = user_in(f"{role.lower()}-console", role)
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client


def test_the_activity_page_offers_the_undo_to_administrators_only(wrong_run):
    undo_url = reverse("console:activity-undo", args=[wrong_run.pk])
    admin = signed_in("Administrators")
    page = admin.get(reverse("console:activity", args=[wrong_run.pk]))
    assert undo_url in page.content.decode()
    assert "Undo this run…" in page.content.decode()
    operator = signed_in("Operators")
    assert (
        undo_url
        not in operator.get(reverse("console:activity", args=[wrong_run.pk])).content.decode()
    )
    assert operator.get(undo_url).status_code == 403
    sync = export_run(wrong_run.connected_system, profile_type=RunProfileType.FULL_SYNC)
    assert (
        "Undo this run"
        not in admin.get(reverse("console:activity", args=[sync.pk])).content.decode()
    )


def test_the_plan_is_shown_first_and_staged_on_confirmation(wrong_run):
    admin = signed_in("Administrators")
    url = reverse("console:activity-undo", args=[wrong_run.pk])
    page = admin.get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert f"uid=ada,{BASE}" in html and "Wrong → Right" in html
    assert "Left out: changed since the run (1)" in html
    assert "title changed since the run" in html
    assert not PendingExport.objects.exists()

    unticked = admin.post(url, {"reason": "oops"}, follow=True)
    assert "Tick the confirmation box" in unticked.content.decode()
    assert not PendingExport.objects.exists()

    done = admin.post(url, {"reason": "wrong title rule", "confirm": "yes"}, follow=True)
    assert done.redirect_chain[-1][0] == reverse("console:activity", args=[wrong_run.pk])
    assert "Staged 1 pending export(s) undoing run" in done.content.decode()
    assert AuditEntry.objects.get(action=Action.EXPORT_UNDONE).via == "console"

    # What was left out stays to be settled: shown again, with nothing to stage.
    again = admin.get(url).content.decode()
    assert "Nothing to undo." in again and "title changed since the run" in again
    assert 'id="undo-confirm"' not in again


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_administrator_undoes_a_run_in_the_browser(page, live_server, wrong_run):
    user = User.objects.create_user("root-browser", password="pw-root-browser", is_staff=True)
    user.groups.add(Group.objects.get(name="Administrators"))
    log_in(page, live_server, "root-browser", "pw-root-browser")
    page.goto(live_server.url + reverse("console:activity", args=[wrong_run.pk]))
    page.click("text=Undo this run…")
    page.wait_for_selector("#undo-inverse")
    assert "Wrong → Right" in (page.text_content("#undo-inverse") or "")
    page.fill("input[name=reason]", "the title rule was wrong")
    page.check("input[name=confirm]")
    page.click("button:has-text('Undo this run')")
    page.wait_for_selector(".messagelist >> text=Staged 1 pending export(s) undoing run")
    assert PendingExport.objects.get().change_type == "update"


def test_the_approval_page_does_not_invent_a_rule_for_an_undo_delete(wrong_run):
    directory = wrong_run.connected_system
    run_ = export_run(directory)
    bob = cso(directory, "bob", cn=["Bob"])
    sent(run_, bob, "create", ("cn", "update", ["Bob"], []))
    [pe] = stage_undo(run_, user_in("root", "Administrators")).staged

    [story] = export_stories([pe])
    assert story.headline == f"Deletes Bob (uid=bob,{BASE}) from Directory"
    assert story.reasons == []
