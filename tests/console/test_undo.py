"""The console's undo of an export run: "Undo this run…" on an export activity's page
for Administrators only, the plan shown first, staging behind a confirmation box."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import Action, AuditEntry
from connectors import registry
from connectors.choices import RunProfileType
from connectors.models import Activity
from exports.models import PendingExport
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
