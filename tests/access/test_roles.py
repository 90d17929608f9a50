"""The four roles, and how a user who joins one can sign in (joining makes them staff)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from access.roles import (
    ADMINISTRATORS,
    APPROVE_PERMISSION,
    CANCEL_PERMISSION,
    INTERVENE_PERMISSION,
    OPERATORS,
    OVERRIDE_PERMISSION,
    ROLES,
    RUN_PERMISSION,
    VIEWERS,
)
from tests.access.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_only_administrators_may_override_a_threshold():
    permission = Permission.objects.get(codename=OVERRIDE_PERMISSION.split(".")[1])
    assert set(permission.group_set.values_list("name", flat=True)) == {ADMINISTRATORS}


@pytest.mark.parametrize(
    "permission", [RUN_PERMISSION, CANCEL_PERMISSION, APPROVE_PERMISSION, INTERVENE_PERMISSION]
)
def test_the_permissions_the_code_checks_exist(permission):
    app_label, codename = permission.split(".")
    assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists()


@pytest.mark.parametrize("role", ROLES)
def test_a_user_added_to_a_role_becomes_staff(role):
    user = User.objects.create_user("ines", password=PASSWORD)

    user.groups.add(Group.objects.get(name=role))

    assert user.is_staff
    assert User.objects.get(pk=user.pk).is_staff


def test_users_added_from_the_groups_side_become_staff():
    users = [User.objects.create_user(name) for name in ("a", "b")]

    Group.objects.get(name=OPERATORS).user_set.add(*users)

    assert list(User.objects.filter(is_staff=True).values_list("username", flat=True)) == [
        "a",
        "b",
    ]


def test_another_group_does_not_make_staff():
    user = User.objects.create_user("ines")

    user.groups.add(Group.objects.create(name="Newsletter"))

    assert not User.objects.get(pk=user.pk).is_staff


def test_leaving_a_role_keeps_staff_status_and_takes_the_rights():
    user = User.objects.create_user("ines")
    viewers = Group.objects.get(name=VIEWERS)
    user.groups.add(viewers)

    user.groups.remove(viewers)

    user = User.objects.get(pk=user.pk)
    assert user.is_staff
    assert not user.has_perm("connectors.view_connectedsystem")


def test_an_administrator_puts_a_user_in_a_role_in_the_admin_and_they_sign_in(client):
    admin_user = User.objects.create_user("ada", password=PASSWORD)
    admin_user.groups.add(Group.objects.get(name=ADMINISTRATORS))
    client.force_login(admin_user)
    user = User.objects.create_user("vera", password=PASSWORD)
    change = reverse("admin:auth_user_change", args=[user.pk])
    form = client.get(change).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in ("password", "groups", "user_permissions")
    }
    data.update(
        {
            "date_joined_0": f"{user.date_joined:%Y-%m-%d}",
            "date_joined_1": f"{user.date_joined:%H:%M:%S}",
            "groups": [Group.objects.get(name=VIEWERS).pk],
            "is_active": "on",
        }
    )
    data.pop("date_joined")
    data.pop("last_login", None)

    response = client.post(change, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    client.logout()
    signed_in = client.post(
        reverse("admin:login"),
        {"username": "vera", "password": PASSWORD, "next": reverse("console:dashboard")},
    )
    assert signed_in.status_code == 302
    assert client.get(reverse("console:dashboard")).status_code == 200
