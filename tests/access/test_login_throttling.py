"""The admin's login (the console's too) refuses, for a while, a username or an address
with too many failed sign-ins — even with the right password — and says so; an
administrator sees the failures and unlocks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from access.models import FailedSignIn
from access.roles import ADMINISTRATORS, OPERATORS, VIEWERS
from tests.access.conftest import PASSWORD, member_of

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")
ADDRESS = "198.51.100.7"


def sign_in(client, username: str, password: str, address: str = ADDRESS):
    return client.post(
        LOGIN,
        {"username": username, "password": password, "next": reverse("admin:index")},
        REMOTE_ADDR=address,
    )


def signed_in(response) -> bool:
    return response.status_code == 302


def errors(response) -> list[str]:
    return response.context["form"].non_field_errors()


def lockout_end(account: str | None = None, address: str | None = None, limit: int = 5) -> str:
    failures = FailedSignIn.objects.order_by("-attempted_at")
    if account:
        failures = failures.filter(account=account)
    if address:
        failures = failures.filter(address=address)
    return f"{failures[limit - 1].attempted_at + timedelta(minutes=15):%H:%M}"


@pytest.fixture
def alice(db) -> User:
    return member_of(OPERATORS, "alice")


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(client, alice):
    for _ in range(5):
        response = sign_in(client, "alice", "wrong")
        assert not signed_in(response)
        assert "Please enter the correct username and password" in errors(response)[0]

    response = sign_in(client, "alice", PASSWORD, address="203.0.113.1")

    assert not signed_in(response)
    assert errors(response) == [
        f"Too many failed sign-ins for alice; try again after {lockout_end('alice')} UTC "
        "or ask an administrator to unlock."
    ]
    assert "_auth_user_id" not in client.session


def test_the_lock_ends_when_the_window_passes(client, alice):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    FailedSignIn.objects.update(attempted_at=timezone.now() - timedelta(minutes=15, seconds=1))

    assert signed_in(sign_in(client, "alice", PASSWORD))


def test_a_successful_sign_in_clears_the_accounts_failures(client, alice):
    for _ in range(4):
        sign_in(client, "alice", "wrong")
    assert signed_in(sign_in(client, "alice", PASSWORD))
    assert not FailedSignIn.objects.exists()
    client.logout()

    for _ in range(4):
        sign_in(client, "alice", "wrong")
    assert signed_in(sign_in(client, "alice", PASSWORD))


def test_an_unknown_username_is_counted_and_locked_alike(client):
    for _ in range(5):
        sign_in(client, "nobody", "wrong")

    assert errors(sign_in(client, "nobody", "wrong"))[0].startswith(
        "Too many failed sign-ins for nobody; try again after "
    )


def test_twenty_failures_from_an_address_lock_it_for_every_account(client, alice):
    for n in range(20):
        sign_in(client, f"guess{n}", "wrong")

    refused = sign_in(client, "alice", PASSWORD)

    assert errors(refused) == [
        f"Too many failed sign-ins from this address ({ADDRESS}); try again after "
        f"{lockout_end(address=ADDRESS, limit=20)} UTC or ask an administrator to unlock."
    ]
    assert signed_in(sign_in(client, "alice", PASSWORD, address="203.0.113.1"))


@override_settings(JIM_LOGIN_MAX_FAILURES=2, JIM_LOGIN_LOCKOUT_MINUTES=1)
def test_the_limits_come_from_the_settings(client, alice):
    sign_in(client, "alice", "wrong")
    sign_in(client, "alice", "wrong")
    assert "Too many failed sign-ins for alice" in errors(sign_in(client, "alice", PASSWORD))[0]

    FailedSignIn.objects.update(attempted_at=timezone.now() - timedelta(minutes=1, seconds=1))
    assert signed_in(sign_in(client, "alice", PASSWORD))


def test_a_right_password_without_staff_status_is_no_failure(client):
    User.objects.create_user("outsider", password=PASSWORD)

    response = sign_in(client, "outsider", PASSWORD)

    assert not signed_in(response)
    assert not FailedSignIn.objects.exists()


def test_an_inactive_users_attempts_count(client, alice):
    alice.is_active = False
    alice.save()

    sign_in(client, "alice", PASSWORD)

    assert FailedSignIn.objects.filter(account="alice").count() == 1


def test_administrators_see_the_failures_and_unlock(client, alice):
    for _ in range(5):
        sign_in(client, "alice", "wrong")
    for n in range(3):
        sign_in(client, f"guess{n}", "wrong", address="203.0.113.9")
    admin_client = client.__class__()
    admin_client.force_login(member_of(ADMINISTRATORS, "ada"))
    changelist = reverse("admin:access_failedsignin_changelist")

    page = admin_client.get(changelist + "?counted=yes").content.decode()
    assert page.count("alice") >= 5 and "203.0.113.9" in page

    alices = FailedSignIn.objects.filter(account="alice")
    response = admin_client.post(
        changelist,
        {"action": "unlock_selected", "_selected_action": [alices.first().pk]},
        follow=True,
    )

    assert "Cleared 5 failed sign-in(s)" in response.content.decode()
    assert FailedSignIn.objects.filter(address="203.0.113.9").count() == 3
    assert signed_in(sign_in(client, "alice", PASSWORD))


def test_other_roles_do_not_see_the_failures(client):
    client.force_login(member_of(VIEWERS, "vera"))

    assert client.get(reverse("admin:access_failedsignin_changelist")).status_code == 403
