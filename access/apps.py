from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccessConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from access.roles import ensure_roles

        # The migration creates the roles; a flush (tests, resets) removes them and
        # sends post_migrate again, and a model added later needs its view permission.
        post_migrate.connect(ensure_roles, dispatch_uid="access.ensure_roles")
