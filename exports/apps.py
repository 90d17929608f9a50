from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pending exports"

    def ready(self) -> None:
        from exports.approval import ensure_approvers_group

        # The data migration creates the group; a database flush (tests, resets)
        # removes it and sends post_migrate again.
        post_migrate.connect(ensure_approvers_group, sender=self)
