"""Who may do what: the roles (groups), API keys for integrations, and login throttling."""

from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate


class AccessConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from access.keys import api_key_created, api_key_revoked, api_key_used
        from access.membership import make_role_members_staff
        from access.roles import ensure_roles
        from audit import receivers

        # The migration creates the roles; a flush (tests, resets) removes them and
        # sends post_migrate again, and a model added later needs its view permission.
        post_migrate.connect(ensure_roles, dispatch_uid="access.ensure_roles")
        m2m_changed.connect(
            make_role_members_staff,
            sender=get_user_model().groups.through,
            dispatch_uid="access.make_role_members_staff",
        )
        # An API key's creation, revocation and use go on the audit trail.
        api_key_created.connect(receivers.record_api_key_created, dispatch_uid="audit.key_created")
        api_key_revoked.connect(receivers.record_api_key_revoked, dispatch_uid="audit.key_revoked")
        api_key_used.connect(receivers.record_api_key_used, dispatch_uid="audit.key_used")
