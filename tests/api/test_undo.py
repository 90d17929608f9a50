"""Undoing an export run through the API: GET the plan (changes nothing), POST to
stage it — Administrators only, 409 when it cannot be undone, on the audit trail."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import Action, AuditEntry
from connectors import registry
from connectors.choices import RunProfileType
from exports.models import PendingExport
from tests.api.endpoints import API
from tests.exports.memory_connector import MemoryConnector
from tests.exports.undoing import BASE, cso, export_run, make_directory, sent, user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def wrong_run(db, monkeypatch):
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    MemoryConnector.reset()
    directory = make_directory()
    activity = export_run(directory)
    sent(
        activity,
        cso(directory, "ada", title=["Wrong"]),
        "update",
        ("title", "update", ["Wrong"], ["Right"]),
    )
    return activity


def client(role: str, name: str) -> APIClient:
    api = APIClient()
    api.force_login(user_in(name, role))
    return api


def test_get_shows_the_plan_and_post_stages_it(wrong_run):
    url = f"{API}activities/{wrong_run.pk}/undo/"
    viewer = client("Viewers", "vic")
    response = viewer.get(url)
    assert response.status_code == 200, response.json()
    plan = response.json()
    assert plan["inverse"] == [
        {
            "cso": plan["inverse"][0]["cso"],
            "target": f"uid=ada,{BASE}",
            "undoes": "update",
            "change_type": "update",
            "dn": "",
            "enables": False,
            "changes": [
                {
                    "attribute": "title",
                    "change_type": "update",
                    "values": ["Right"],
                    "previous_values": ["Wrong"],
                }
            ],
            "conflict": "",
        }
    ]
    assert (plan["conflicts"], plan["staged"]) == ([], [])
    assert not PendingExport.objects.exists()

    refused = viewer.post(url, {"reason": "x"}, format="json")
    assert refused.status_code == 403
    assert "exports.undo_exportedchange" in refused.json()["error"]["message"]

    response = client("Administrators", "root").post(url, {"reason": "wrong"}, format="json")
    assert response.status_code == 200, response.json()
    [staged] = response.json()["staged"]
    assert PendingExport.objects.get(pk=staged["id"]).change_type == "update"
    entry = AuditEntry.objects.get(action=Action.EXPORT_UNDONE)
    assert (entry.via, entry.reason) == ("api", "wrong")

    again = client("Administrators", "root2").get(url)
    assert again.status_code == 409
    assert "already undone" in again.json()["error"]["message"]


def test_an_activity_that_is_no_export_run_is_a_409_and_an_unknown_one_a_404(wrong_run):
    sync = export_run(wrong_run.connected_system, profile_type=RunProfileType.FULL_SYNC)
    admin = client("Administrators", "root")
    response = admin.get(f"{API}activities/{sync.pk}/undo/")
    assert response.status_code == 409
    assert "only export runs can be undone" in response.json()["error"]["message"]
    assert admin.get(f"{API}activities/999999/undo/").status_code == 404
