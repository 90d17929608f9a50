"""Who may call the API: the model's ``view_`` permission to read, and the admin's own
permission for each action.

DRF's :class:`~rest_framework.permissions.DjangoModelPermissions` lets any signed-in
user read; JIM's roles (:mod:`access.roles`) say who may read what, so a read here needs
the model's ``view_`` permission like the admin. Actions (run, approve, retry…) need the
permission the admin asks for the same act. A refusal names the permission and the
roles that hold it, so the person knows whom to ask.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission, DjangoModelPermissions

from access.roles import ACTIONS, ADMINISTRATORS, ROLES

_VIEW = ["%(app_label)s.view_%(model_name)s"]


def holders(permission: str) -> str:
    """The roles holding ``permission``, as a phrase ("the Operators or Administrators
    role")."""
    if ".view_" in permission:
        roles = [role for role in ROLES if role != ADMINISTRATORS] + [ADMINISTRATORS]
    else:
        roles = [role for role, granted in ACTIONS.items() if permission in granted]
        roles.append(ADMINISTRATORS)
    return f"the {' or '.join(roles)} role"


def refusal(doing: str, permission: str) -> str:
    """The 403 message: what was refused, the permission it needs and who holds it."""
    return (
        f"{doing} needs the {permission} permission ({holders(permission)}); ask an administrator."
    )


class ReadAndWritePermissions(DjangoModelPermissions):
    """Model permissions where reading needs ``view_`` too."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": _VIEW,
        "HEAD": _VIEW,
        "OPTIONS": _VIEW,
    }

    def has_permission(self, request: Any, view: Any) -> bool:
        signed_in = request.user and request.user.is_authenticated
        if signed_in and request.method not in view.allowed_methods:
            return True  # the view answers 405, whoever asks
        if not super().has_permission(request, view):
            model = self._queryset(view).model
            needed = self.get_required_permissions(request.method, model)
            missing = next((p for p in needed if not request.user.has_perm(p)), needed[0])
            self.message = refusal(f"Reading {model._meta.verbose_name_plural}", missing)
            return False
        return True


class HasPermission(BasePermission):
    """Subclassed by :func:`requires`: the user holds :attr:`permission`."""

    permission = ""
    doing = ""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        if user and user.is_authenticated and user.has_perm(self.permission):
            return True
        self.message = refusal(self.doing, self.permission)
        return False


def requires(permission: str, doing: str) -> type[BasePermission]:
    """A permission class for an action: ``doing`` ("Running a run profile") needs
    ``permission``."""
    return type(
        f"Requires_{permission.replace('.', '_')}",
        (HasPermission,),
        {"permission": permission, "doing": doing},
    )
