"""Every error of the API has one shape, ``{"error": {"code", "message", "details"}}``,
with a message a person can act on."""

from __future__ import annotations

import pytest
from rest_framework.throttling import BaseThrottle

from api.serializers.systems import ConnectedSystemSerializer
from api.views.systems import ConnectedSystemViewSet
from tests.api.endpoints import API

pytestmark = pytest.mark.django_db


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"].endswith(".")
    return body["error"]


def test_400_names_each_field(world, admin_client):
    found = error(
        admin_client.get(f"{API}activities/", {"status": "lost", "connected_system": "x"}), 400
    )
    assert found["code"] == "invalid"
    assert set(found["details"]) == {"status", "connected_system"}
    assert "status:" in found["message"] and "connected_system:" in found["message"]


def test_401_says_how_to_authenticate(world, client_for):
    found = error(client_for(None).get(f"{API}pending-exports/"), 401)
    assert found["code"] == "not_authenticated"
    assert "Authorization: Bearer jim_" in found["message"]


def test_403_names_the_permission(world, role_client):
    found = error(role_client("Viewers").post(f"{API}pending-exports/approve/", {"ids": [1]}), 403)
    assert found["code"] == "permission_denied"
    assert "exports.approve_pendingexport" in found["message"]
    assert "Approvers" in found["message"]


def test_404_of_an_object_and_of_a_url(world, admin_client):
    found = error(admin_client.get(f"{API}pending-exports/999999/"), 404)
    assert found["code"] == "not_found"
    assert found["message"].startswith("No pending export has id 999999")
    assert error(admin_client.get(f"{API}pending-exports/{2**70}/"), 404)["code"] == "not_found"
    found = error(admin_client.get(f"{API}nothing-here/"), 404)
    assert "/api/v1/nothing-here/" in found["message"]
    found = error(admin_client.get(f"{API}activities"), 404)
    assert found["message"].endswith("ends with a slash, /api/v1/activities/.")


def test_405(world, admin_client):
    found = error(admin_client.delete(f"{API}activities/"), 405)
    assert found["code"] == "method_not_allowed"
    assert found["message"].startswith(
        "DELETE is not allowed at /api/v1/activities/: it takes GET."
    )
    assert found["details"] == {"allowed": ["GET"]}
    found = error(admin_client.get(f"{API}pending-exports/approve/"), 405)
    assert found["details"] == {"allowed": ["POST"]}


def test_409_says_why(world, admin_client):
    found = error(
        admin_client.post(f"{API}pending-exports/{world.failed().pk}/reject/", {"reason": "x"}), 409
    )
    assert found["code"] == "conflict"
    assert "not awaiting approval" in found["message"]


class Closed(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        return False

    def wait(self) -> float:
        return 30


def test_429_says_when_to_come_back(world, admin_client, monkeypatch):
    monkeypatch.setattr(ConnectedSystemViewSet, "throttle_classes", [Closed])
    response = admin_client.get(f"{API}connected-systems/")
    found = error(response, 429)
    assert found["code"] == "throttled"
    assert found["details"] == {"retry_after_seconds": 30}
    assert response["Retry-After"] == "30"


def test_500_tells_nothing_of_the_exception(world, admin_client, monkeypatch, caplog):
    def broken(self, system):
        raise RuntimeError("internal detail: password=hunter2")

    monkeypatch.setattr(ConnectedSystemSerializer, "get_settings", broken)
    found = error(admin_client.get(f"{API}connected-systems/"), 500)
    assert found["code"] == "server_error"
    assert "hunter2" not in found["message"]
    assert "logged" in found["message"]
    assert "internal detail" in caplog.text  # for the administrator, in the log
