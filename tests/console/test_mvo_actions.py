"""The MVO page's actions: delete now, disconnect a CSO, re-evaluate, re-join or release
a CSO disconnected by hand — buttons behind a confirmation box, POST with CSRF, 403
without metaverse.manage_metaverseobject."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import Action, AuditEntry
from connectors import registry
from connectors.models import Activity, ConnectorSpaceObject
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


def _disconnected_from(mvo: MetaverseObject, client: Client) -> ConnectorSpaceObject:
    """A CSO of ``mvo`` disconnected by hand, ``mvo`` staying (another system contributes)."""
    cso = mvo.cs_objects.exclude(join_type="projected").order_by("pk").first()
    client.post(action_url(mvo, "disconnect"), {"confirm": "yes", "cso": cso.pk})
    cso.refresh_from_db()
    assert cso.disconnected_by_hand and MetaverseObject.objects.filter(pk=mvo.pk).exists()
    return cso


def test_the_page_lists_what_was_disconnected_by_hand_with_rejoin_and_release(mvo):
    client = signed_in("Administrators")
    cso = _disconnected_from(mvo, client)
    html = client.get(reverse("console:mvo", args=[mvo.pk])).content.decode()
    assert 'id="mvo-disconnected"' in html and f'name="cso" value="{cso.pk}"' in html
    assert action_url(mvo, "rejoin") in html and action_url(mvo, "release") in html

    response = client.post(
        action_url(mvo, "rejoin"), {"confirm": "yes", "cso": cso.pk, "reason": "hers"}
    )

    activity = Activity.objects.get(profile_name__startswith="Manual: rejoin")
    assert response["Location"] == reverse("console:activity", args=[activity.pk])
    cso.refresh_from_db()
    assert cso.metaverse_object_id == mvo.pk and not cso.disconnected_by_hand
    assert AuditEntry.objects.filter(action=Action.MVO_ACTION, reason__contains="hers").exists()
    html = client.get(reverse("console:mvo", args=[mvo.pk])).content.decode()
    assert 'id="mvo-disconnected"' not in html


def test_release_from_the_page(mvo):
    client = signed_in("Administrators")
    cso = _disconnected_from(mvo, client)
    client.post(action_url(mvo, "release"), {"confirm": "yes", "cso": cso.pk})
    cso.refresh_from_db()
    assert not cso.disconnected_by_hand and cso.metaverse_object_id is None


@pytest.mark.parametrize(
    ("posted", "why"),
    [("abc", "'abc' is not a connector space object id"), ("999999", "no connector space")],
)
def test_joining_by_id_names_what_is_wrong(mvo, posted, why):
    client = signed_in("Administrators")
    response = client.post(action_url(mvo, "rejoin"), {"confirm": "yes", "cso": posted})
    assert response["Location"] == reverse("console:mvo", args=[mvo.pk])
    page = client.get(response["Location"]).content.decode()
    assert why.replace("'", "&#x27;") in page
    assert not Activity.objects.filter(profile_name__startswith="Manual: rejoin").exists()


@pytest.mark.parametrize("role", ["Operators", "Approvers", "Viewers"])
@pytest.mark.parametrize("action", ["rejoin", "release"])
def test_other_roles_may_not_rejoin_nor_release(mvo, role, action):
    cso = mvo.cs_objects.order_by("pk").first()
    response = signed_in(role).post(action_url(mvo, action), {"confirm": "yes", "cso": cso.pk})
    assert response.status_code == 403
