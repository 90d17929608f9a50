"""Users in each role, and API keys, for the access tests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access import keys
from access.models import ApiKey
from access.roles import ROLES

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Sign-ins by the dozen: a fast hasher (what is hashed does not matter here)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def member_of(role: str, username: str | None = None, **fields) -> User:
    """A user who joined ``role`` (and so became staff), fetched afresh."""
    user = User.objects.create_user(username or role.lower(), password=PASSWORD, **fields)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def members(db) -> dict[str, User]:
    """One user per role, named after it in lower case ("administrators" …)."""
    return {role: member_of(role) for role in ROLES}


def issue_key(owner: User, name: str = "HR feed", days: int = 30, by: User | None = None):
    """(the ApiKey, the whole key) — as the admin issues one."""
    api_key = ApiKey(name=name, owner=owner, expires_at=timezone.now() + timedelta(days=days))
    return api_key, keys.issue(api_key, created_by=by or owner)
