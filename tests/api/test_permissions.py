"""Who may do what through the API: every role by every endpoint and action, allowed or
403; no role 403; anonymous 401.

"Allowed" means the permission check let the request through: the answer is whatever
the act gives (200, 202, or a 409 when it does not apply to that export), never 403.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from access.roles import ADMINISTRATORS, APPROVERS, OPERATORS, ROLES, VIEWERS
from tests.api.endpoints import API, RESOURCES

pytestmark = pytest.mark.django_db

EVERYONE = frozenset(ROLES)
RUNNERS = frozenset({OPERATORS, ADMINISTRATORS})
DECIDERS = frozenset({APPROVERS, ADMINISTRATORS})
INTERVENERS = frozenset({OPERATORS, ADMINISTRATORS})

#: action → (the roles allowed, the URL given the world, the body)
ACTIONS = {
    "run a run profile": (
        RUNNERS,
        lambda w: f"{API}run-profiles/{w.import_profile.pk}/run/",
        {},
    ),
    "run a schedule": (RUNNERS, lambda w: f"{API}schedules/{w.schedule.pk}/run/", {}),
    "approve one": (
        DECIDERS,
        lambda w: f"{API}pending-exports/{w.awaiting()[0].pk}/approve/",
        {"reason": "ok"},
    ),
    "reject one": (
        DECIDERS,
        lambda w: f"{API}pending-exports/{w.awaiting()[0].pk}/reject/",
        {"reason": "no"},
    ),
    "approve many": (DECIDERS, lambda w: f"{API}pending-exports/approve/", {"ids": [1]}),
    "reject many": (
        DECIDERS,
        lambda w: f"{API}pending-exports/reject/",
        {"ids": [1], "reason": "no"},
    ),
    "retry one": (
        INTERVENERS,
        lambda w: f"{API}pending-exports/{w.failed().pk}/retry/",
        {"reason": "fixed"},
    ),
    "discard one": (
        INTERVENERS,
        lambda w: f"{API}pending-exports/{w.failed().pk}/discard/",
        {"reason": "gone"},
    ),
    "retry many": (INTERVENERS, lambda w: f"{API}pending-exports/retry/", {"ids": [1]}),
    "discard many": (
        INTERVENERS,
        lambda w: f"{API}pending-exports/discard/",
        {"ids": [1], "reason": "gone"},
    ),
}


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_every_resource(world, role_client, role):
    client = role_client(role)
    for url in RESOURCES:
        assert client.get(url).status_code == 200, url
        assert client.get(f"{url}1/").status_code in (200, 404), url
    assert client.get(API).status_code == 200
    assert client.get(f"{API}schema/").status_code == 200


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("act", ACTIONS)
def test_actions_by_role(world, role_client, role, act):
    allowed, url, body = ACTIONS[act]
    response = role_client(role).post(url(world), body, format="json")
    if role in allowed:
        assert response.status_code in (200, 202, 409), response.content
    else:
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert "needs the" in error["message"]


def test_a_user_without_a_role_reads_nothing_and_is_told_why(world, client_for):
    client = client_for(User.objects.create_user("nobody", password="pw"))
    for url, model in RESOURCES.items():
        response = client.get(url)
        assert response.status_code == 403, url
        message = response.json()["error"]["message"]
        assert f"{model._meta.app_label}.view_{model._meta.model_name}" in message
        assert VIEWERS in message
        assert client.get(f"{url}1/").status_code == 403
    for _allowed, url, body in ACTIONS.values():
        assert client.post(url(world), body, format="json").status_code == 403


def test_anonymous_is_asked_to_authenticate(world, client_for):
    client = client_for(None)
    for url in [API, f"{API}schema/", *RESOURCES, *(f"{url}1/" for url in RESOURCES)]:
        response = client.get(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in response.json()["error"]["message"]
    for _allowed, url, body in ACTIONS.values():
        assert client.post(url(world), body, format="json").status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_writes_through_the_resources_are_not_allowed(world, role_client, role):
    client = role_client(role)
    for url, model in RESOURCES.items():
        pk = model.objects.values_list("pk", flat=True).first()
        assert client.post(url, {"name": "X"}, format="json").status_code == 405, url
        assert client.delete(url).status_code == 405, url
        assert client.put(f"{url}{pk}/", {"name": "X"}, format="json").status_code == 405
        assert client.patch(f"{url}{pk}/", {"name": "X"}, format="json").status_code == 405
        assert client.delete(f"{url}{pk}/").status_code == 405, url
