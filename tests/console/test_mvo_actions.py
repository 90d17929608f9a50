"""The MVO page's actions: delete now, disconnect a CSO, re-evaluate — buttons behind a
confirmation box, POST with CSRF, 403 without metaverse.manage_metaverseobject."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import Action, AuditEntry
from connectors import registry
from connectors.models import Activity
from metaverse.models import MetaverseObject
from tests.api.world import build_world, user_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def mvo(monkeypatch) -> MetaverseObject:
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    build_world()
    return MetaverseObject.objects.filter(cs_objects__isnull=False).order_by("pk").first()


def signed_in(role: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    user = user_in(role, f"{role.lower()}-console")
    user.is_staff = True
    user.save()
    client.force_login(user)
    return client


def action_url(mvo: MetaverseObject, action: str) -> str:
    return reverse("console:mvo-action", args=[mvo.pk, action])


def test_the_page_offers_the_actions_to_administrators_only(mvo):
    page = signed_in("Administrators").get(reverse("console:mvo", args=[mvo.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert action_url(mvo, "delete") in html and action_url(mvo, "re-evaluate") in html
    assert action_url(mvo, "disconnect") in html and 'name="confirm"' in html
    viewer_page = signed_in("Operators").get(reverse("console:mvo", args=[mvo.pk]))
    assert action_url(mvo, "delete") not in viewer_page.content.decode()


def test_re_evaluate_runs_and_shows_its_activity(mvo):
    response = signed_in("Administrators").post(
        action_url(mvo, "re-evaluate"), {"confirm": "yes", "reason": "look again"}
    )
    activity = Activity.objects.get(profile_name__startswith="Manual: re-evaluate")
    assert response.status_code == 302
    assert response["Location"] == reverse("console:activity", args=[activity.pk])
    entry = AuditEntry.objects.get(action=Action.MVO_ACTION)
    assert entry.via == "console" and "look again" in entry.reason


def test_delete_needs_the_confirmation_box(mvo):
    client = signed_in("Administrators")
    refused = client.post(action_url(mvo, "delete"), {"reason": "gone"})
    assert refused.status_code == 302 and refused["Location"] == reverse(
        "console:mvo", args=[mvo.pk]
    )
    assert MetaverseObject.objects.filter(pk=mvo.pk).exists()
    client.post(action_url(mvo, "delete"), {"confirm": "yes"})
    assert not MetaverseObject.objects.filter(pk=mvo.pk).exists()


def test_disconnect(mvo):
    cso = mvo.cs_objects.order_by("pk").first()
    signed_in("Administrators").post(
        action_url(mvo, "disconnect"), {"confirm": "yes", "cso": cso.pk}
    )
    cso.refresh_from_db()
    assert cso.metaverse_object_id is None and cso.disconnected_by_hand


@pytest.mark.parametrize("role", ["Operators", "Approvers", "Viewers"])
def test_other_roles_get_403(mvo, role):
    response = signed_in(role).post(action_url(mvo, "delete"), {"confirm": "yes"})
    assert response.status_code == 403
    assert MetaverseObject.objects.filter(pk=mvo.pk).exists()


def test_a_post_without_csrf_is_refused(mvo):
    response = signed_in("Administrators", csrf=True).post(
        action_url(mvo, "delete"), {"confirm": "yes"}
    )
    assert response.status_code == 403
    assert MetaverseObject.objects.filter(pk=mvo.pk).exists()
