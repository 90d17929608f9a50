"""Users and helpers for the console page tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

#: What a read-only operator may see: the console pages, nothing to change.
VIEW_PERMISSIONS = (
    "view_connectedsystem",
    "view_activity",
    "view_metaverseobject",
    "view_connectorspaceobject",
    "view_pendingexport",
)


@pytest.fixture
def operator(db) -> User:
    """A superuser: sees everything and may cancel runs."""
    return User.objects.create_superuser("operator", "operator@example.org", "pw-operator")


@pytest.fixture
def viewer(db) -> User:
    """Staff with view permissions only: sees the pages, may not cancel."""
    user = User.objects.create_user("viewer", password="pw-viewer", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=VIEW_PERMISSIONS))
    return user


@pytest.fixture
def outsider(db) -> User:
    """An active user who is not staff."""
    return User.objects.create_user("outsider", password="pw-outsider")


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client
