"""Users and browser fixtures of the console page tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connections
from django.test import Client
from playwright.sync_api import Browser, Page, sync_playwright

from tests.console.browser import CATCH_UP_MS, CHROMIUM, CHROMIUM_ARGS, OPERATOR, log_in
from tests.console.builders import VIEW_PERMISSIONS


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


def staff_in(role: str, username: str) -> User:
    """A staff user in one of JIM's roles (access/roles.py)."""
    user = User.objects.create_user(username, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def operator_role(db) -> User:
    """A member of the Operators role: may run run profiles and schedules (and preview)."""
    return staff_in("Operators", "olga")


@pytest.fixture
def runner(operator_role) -> Client:
    client = Client()
    client.force_login(operator_role)
    return client


@pytest.fixture
def reader(db) -> Client:
    """A member of the Viewers role, logged in."""
    client = Client()
    client.force_login(staff_in("Viewers", "vera"))
    return client


# --------------------------------------------------------------------------- browser


@pytest.fixture
def allow_orm_beside_playwright(monkeypatch) -> None:
    """Playwright's sync API runs an event loop in this thread; let the ORM run too."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser(allow_orm_beside_playwright) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # Inside sync_playwright() the ORM runs in another context, with its own
        # connection: close it, or the test database cannot be dropped afterwards.
        connections.close_all()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(CATCH_UP_MS)
    yield page
    context.close()


@pytest.fixture
def logged_in(page: Page, live_server) -> Page:
    """``page`` logged in to the admin as a superuser, through the login form."""
    User.objects.create_superuser(OPERATOR[0], "operator@example.org", OPERATOR[1])
    return log_in(page, live_server, *OPERATOR)
