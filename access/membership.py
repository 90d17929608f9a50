"""Joining a role makes a user staff: the admin and the console are where every role
works, and they admit staff only.

An administrator who puts a user in Administrators, Operators, Approvers or Viewers
(from the user's page, the group's, ``jim`` configuration or the shell) expects that
user to be able to sign in; ticking "Staff status" as well is easy to forget. Leaving a
role does not take ``is_staff`` away: a staff user without a role sees nothing, and
staff status may have been given for other reasons.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from access.roles import ROLES


def make_role_members_staff(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    """``m2m_changed`` receiver of ``User.groups``: the users just added to a role
    become staff."""
    if action != "post_add" or not pk_set:
        return
    user_model = get_user_model()
    if reverse:  # group.user_set.add(users…)
        if instance.name not in ROLES:
            return
        user_ids = pk_set
    else:  # user.groups.add(groups…)
        if not Group.objects.filter(pk__in=pk_set, name__in=ROLES).exists():
            return
        user_ids = {instance.pk}
        instance.is_staff = True
    user_model.objects.filter(pk__in=user_ids, is_staff=False).update(is_staff=True)
