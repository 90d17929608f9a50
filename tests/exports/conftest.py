"""Fixtures for the tests of failed pending exports and what people do about them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from connectors import registry
from connectors.models import ConnectedSystem
from tests.exports.memory_connector import MemoryConnector
from tests.sync.scenario import Scenario, build_scenario


@pytest.fixture
def failing(monkeypatch) -> Scenario:
    """HR → Directory with the Directory on the memory connector, where an export the
    directory refuses is failed at its first attempt (max retries 1)."""
    monkeypatch.setitem(
        registry.CONNECTORS, "memory", "tests.exports.memory_connector:MemoryConnector"
    )
    MemoryConnector.reset()
    s = build_scenario()
    ConnectedSystem.objects.filter(pk=s.directory.pk).update(
        connector="memory", export_retry_backoff_seconds=60, export_max_retries=1
    )
    s.directory.refresh_from_db()
    return s


def user_with(username: str, *codenames: str, **fields) -> User:
    """A user holding these exports permissions (fetched again: no permission cache)."""
    user = User.objects.create_user(username, password="pw", **fields)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="exports", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)


@pytest.fixture
def intervener(db) -> User:
    """May retry and discard failed exports (and see them in the admin)."""
    return user_with(
        "olga",
        "intervene_pendingexport",
        "view_pendingexport",
        "view_pendingexportattributechange",
        "view_approvalauditentry",
        is_staff=True,
    )
