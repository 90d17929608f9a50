"""Who may do what: the roles (groups), API keys for integrations, and login throttling."""

from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate


class AccessConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from access.membership import make_role_members_staff
        from access.roles import ensure_roles

        # The migration creates the roles; a flush (tests, resets) removes them and
        # sends post_migrate again, and a model added later needs its view permission.
        post_migrate.connect(ensure_roles, dispatch_uid="access.ensure_roles")
        m2m_changed.connect(
            make_role_members_staff,
            sender=get_user_model().groups.through,
            dispatch_uid="access.make_role_members_staff",
        )
