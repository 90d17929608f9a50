"""The roles: four groups whose permissions say who may do what in JIM.

===============  ==================================================================
Administrators   every permission of JIM's apps, and managing users and groups
Operators        read everything; run run profiles and schedules, cancel runs,
                 retry and discard failed pending exports
Approvers        read everything; approve and reject pending exports
Viewers          read everything (not the audit trail nor the API keys)
===============  ==================================================================

A role is a rule over permissions, not a frozen list, so a model added later gets its
``view_`` permission in every reading role the next time ``migrate`` runs
(:func:`ensure_roles` runs after every migrate and flush). The same permissions govern
the admin, the console pages, the API and the ``jim`` commands that act for a
``--user``; a user needs ``is_staff`` as well to sign in to the admin and the console,
which joining a role gives (:mod:`access.membership`).
"""

from __future__ import annotations

from typing import Any

#: The apps whose data JIM's roles read.
DATA_APPS = ("connectors", "metaverse", "exports", "django_q")
#: The apps only Administrators read (who did what; the keys of integrations).
ADMINISTRATION_APPS = ("access", "audit")

ADMINISTRATORS = "Administrators"
OPERATORS = "Operators"
APPROVERS = "Approvers"
VIEWERS = "Viewers"
ROLES = (ADMINISTRATORS, OPERATORS, APPROVERS, VIEWERS)

RUN_PERMISSION = "connectors.run_runprofile"
CANCEL_PERMISSION = "connectors.change_activity"
OVERRIDE_PERMISSION = "connectors.override_threshold"
APPROVE_PERMISSION = "exports.approve_pendingexport"
INTERVENE_PERMISSION = "exports.intervene_pendingexport"
#: Delete a metaverse object now, disconnect one of its CSOs, re-evaluate it, re-join or
#: release a CSO disconnected by hand
#: (runs.mvo_actions): Administrators only, as it changes identities outside the rules.
MANAGE_MVO_PERMISSION = "metaverse.manage_metaverseobject"
#: Roll back an export run (exports.undo): Administrators only, as it changes
#: the target systems outside the rules.
UNDO_EXPORT_PERMISSION = "exports.undo_exportedchange"

#: What each role may do beyond reading ("app_label.codename").
ACTIONS: dict[str, tuple[str, ...]] = {
    OPERATORS: (RUN_PERMISSION, CANCEL_PERMISSION, INTERVENE_PERMISSION),
    APPROVERS: (APPROVE_PERMISSION,),
    VIEWERS: (),
}


def role_permissions(permission_model: Any, role: str) -> Any:
    """The permissions (a queryset of ``permission_model``) that ``role`` holds."""
    from django.db.models import Q

    if role == ADMINISTRATORS:
        return permission_model.objects.filter(
            content_type__app_label__in=(*DATA_APPS, *ADMINISTRATION_APPS, "auth")
        )
    reading = Q(content_type__app_label__in=DATA_APPS, codename__startswith="view_")
    for permission in ACTIONS[role]:
        app_label, codename = permission.split(".")
        reading |= Q(content_type__app_label=app_label, codename=codename)
    return permission_model.objects.filter(reading)


def grant_roles(group_model: Any, permission_model: Any) -> None:
    """Create the four groups if missing and give each its role's permissions.

    Adds what a role lacks and never removes: a permission an administrator granted
    a group by hand stays."""
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        group.permissions.add(*role_permissions(permission_model, role))


def ensure_roles(**kwargs: Any) -> None:
    """The ``post_migrate`` receiver: the groups after every migrate and flush."""
    from django.contrib.auth.models import Group, Permission

    grant_roles(Group, Permission)
