"""Fixtures of the API tests: the world (:mod:`tests.api.world`), users by role, and
clients signed in as them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from connectors import registry
from tests.api.world import World, build_world, user_in


@pytest.fixture
def world(db, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    return build_world()


@pytest.fixture
def client_for() -> Callable[[User | None], APIClient]:
    """A client signed in (by session) as the user, or anonymous for None."""

    def make(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def admin_client(world: World, client_for) -> APIClient:
    return client_for(world.administrator)


@pytest.fixture
def role_client(world: World, client_for) -> Callable[[str], APIClient]:
    """A client signed in as a new user holding ``role``."""
    return lambda role: client_for(user_in(role))
