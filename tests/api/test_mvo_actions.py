"""Manual actions on a metaverse object through the API: delete now, disconnect a
CSO, re-evaluate — each needs metaverse.manage_metaverseobject, runs as an activity and
is recorded on the audit trail with its door and reason."""

from __future__ import annotations

import pytest

from audit.models import Action, AuditEntry
from connectors.models import Activity, ConnectorSpaceObject
from metaverse.models import MetaverseObject
from tests.api.endpoints import API
from tests.support.runs import held

pytestmark = pytest.mark.django_db

MVO = f"{API}metaverse-objects/"


def _person() -> MetaverseObject:
    return MetaverseObject.objects.filter(cs_objects__isnull=False).order_by("pk").first()


def test_re_evaluate_runs_an_activity_and_is_audited(world, admin_client):
    mvo = _person()
    response = admin_client.post(
        f"{MVO}{mvo.pk}/re-evaluate/", {"reason": "checking"}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "complete" and body["profile_name"].startswith("Manual: re-evaluate")
    entry = AuditEntry.objects.get(action=Action.MVO_ACTION)
    assert entry.actor == world.administrator and entry.via == "api"
    assert "checking" in entry.reason and f"activity {body['id']}" in entry.reason


def test_delete_now_removes_the_mvo(world, admin_client):
    mvo = _person()
    response = admin_client.post(f"{MVO}{mvo.pk}/delete/", {}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "complete"
    assert not MetaverseObject.objects.filter(pk=mvo.pk).exists()


def test_disconnect_keeps_the_cso_unjoined(world, admin_client):
    mvo = _person()
    cso = mvo.cs_objects.order_by("pk").first()
    response = admin_client.post(
        f"{MVO}{mvo.pk}/disconnect/", {"cso": cso.pk, "reason": "shared"}, format="json"
    )
    assert response.status_code == 200, response.json()
    cso.refresh_from_db()
    assert cso.metaverse_object_id is None and cso.disconnected_by_hand


def test_disconnecting_a_cso_of_another_mvo_is_a_409(world, admin_client):
    mvo, other = MetaverseObject.objects.filter(cs_objects__isnull=False).distinct()[:2]
    cso = ConnectorSpaceObject.objects.filter(metaverse_object=other).first()
    response = admin_client.post(f"{MVO}{mvo.pk}/disconnect/", {"cso": cso.pk}, format="json")
    assert response.status_code == 409
    assert f"not joined to metaverse object {mvo.pk}" in response.json()["error"]["message"]
    assert not AuditEntry.objects.filter(action=Action.MVO_ACTION).exists()


@pytest.mark.parametrize("role", ["Operators", "Approvers", "Viewers"])
@pytest.mark.parametrize("action", ["delete", "re-evaluate", "disconnect"])
def test_only_administrators_may_act(world, role_client, role, action):
    mvo = _person()
    response = role_client(role).post(f"{MVO}{mvo.pk}/{action}/", {"cso": 1}, format="json")
    assert response.status_code == 403
    assert "metaverse.manage_metaverseobject" in response.json()["error"]["message"]
    assert MetaverseObject.objects.filter(pk=mvo.pk).exists()


def test_an_action_while_a_sync_runs_is_a_409(world, admin_client):
    mvo = _person()
    sync = Activity.objects.create(
        connected_system=world.scenario.hr,
        profile_type="full_sync",
        profile_name="Full Sync",
        status="in_progress",
    )
    with held(sync):
        response = admin_client.post(f"{MVO}{mvo.pk}/delete/", {}, format="json")
    assert response.status_code == 409
    assert f"activity #{sync.pk}" in response.json()["error"]["message"]
    assert MetaverseObject.objects.filter(pk=mvo.pk).exists()
