"""Manual actions on a metaverse object through the API: delete now, disconnect a
CSO, re-evaluate, re-join a CSO disconnected by hand or release it to sync — each needs
metaverse.manage_metaverseobject, runs as an activity and is recorded on the audit
trail with its door and reason."""

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
@pytest.mark.parametrize("action", ["delete", "re-evaluate", "disconnect", "rejoin"])
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


CSO = f"{API}connector-space-objects/"


def _disconnected(admin_client) -> tuple[MetaverseObject, ConnectorSpaceObject]:
    """A CSO disconnected from an MVO that stays (another system contributes to it)."""
    cso = (
        ConnectorSpaceObject.objects.exclude(join_type__in=["not_joined", "projected"])
        .order_by("pk")
        .first()
    )
    mvo = cso.metaverse_object
    response = admin_client.post(f"{MVO}{mvo.pk}/disconnect/", {"cso": cso.pk}, format="json")
    assert response.status_code == 200, response.json()
    cso.refresh_from_db()
    return mvo, cso


def test_rejoin_joins_it_back_and_the_cso_shows_where_it_came_from(world, admin_client):
    mvo, cso = _disconnected(admin_client)
    shown = admin_client.get(f"{CSO}{cso.pk}/").json()
    assert shown["disconnected_by_hand"] and shown["disconnected_from_mvo"] == mvo.pk

    response = admin_client.post(
        f"{MVO}{mvo.pk}/rejoin/", {"cso": cso.pk, "reason": "mine"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["profile_name"].startswith("Manual: rejoin")
    cso.refresh_from_db()
    assert cso.metaverse_object_id == mvo.pk and not cso.disconnected_by_hand
    entry = AuditEntry.objects.filter(action=Action.MVO_ACTION).latest("pk")
    assert entry.via == "api" and "mine" in entry.reason


def test_rejoin_refusals_are_409s_naming_the_cause(world, admin_client):
    mvo, cso = _disconnected(admin_client)
    other = MetaverseObject.objects.exclude(pk=mvo.pk).filter(
        cs_objects__connected_system=cso.connected_system
    )[0]
    taken = admin_client.post(f"{MVO}{other.pk}/rejoin/", {"cso": cso.pk}, format="json")
    assert taken.status_code == 409
    assert "one object per system" in taken.json()["error"]["message"]
    missing = admin_client.post(f"{MVO}{mvo.pk}/rejoin/", {"cso": 10**9}, format="json")
    assert missing.status_code == 409
    assert f"no connector space object {10**9}" in missing.json()["error"]["message"]


def test_release_hands_it_back_to_sync(world, admin_client):
    _, cso = _disconnected(admin_client)
    response = admin_client.post(f"{CSO}{cso.pk}/release/", {"reason": "rules"}, format="json")
    assert response.status_code == 200, response.json()
    cso.refresh_from_db()
    assert not cso.disconnected_by_hand and cso.sync_pending
    again = admin_client.post(f"{CSO}{cso.pk}/release/", {}, format="json")
    assert again.status_code == 409 and "nothing to release" in again.json()["error"]["message"]


@pytest.mark.parametrize("role", ["Operators", "Approvers", "Viewers"])
def test_only_administrators_may_release(world, role_client, role):
    cso = ConnectorSpaceObject.objects.order_by("pk").first()
    response = role_client(role).post(f"{CSO}{cso.pk}/release/", {}, format="json")
    assert response.status_code == 403
    assert "metaverse.manage_metaverseobject" in response.json()["error"]["message"]
