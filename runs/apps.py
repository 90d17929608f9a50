from django.apps import AppConfig


class RunsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # Signal receivers: schedules mirrored into django-q2; stale-run recovery when
        # a worker starts.
        from runs import schedules, tasks  # noqa: F401
