from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pending exports"

    def ready(self) -> None:
        from connectors.dead_runs import run_died
        from exports.approval import ensure_approvers_group
        from exports.lifecycle import release_executing_of_dead_run

        # The data migration creates the group; a database flush (tests, resets)
        # removes it and sends post_migrate again.
        post_migrate.connect(ensure_approvers_group, sender=self)
        # A run that died while sending leaves its exports executing: retryable again.
        run_died.connect(release_executing_of_dead_run, dispatch_uid="exports.release_executing")
