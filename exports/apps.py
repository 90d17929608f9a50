from django.apps import AppConfig


class ExportsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "exports"
    verbose_name = "Pending exports"

    def ready(self) -> None:
        from connectors.dead_runs import run_died
        from exports.lifecycle import release_executing_of_dead_run

        # A run that died while sending leaves its exports executing: retryable again.
        run_died.connect(release_executing_of_dead_run, dispatch_uid="exports.release_executing")
