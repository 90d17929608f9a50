from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connectors"
    verbose_name = "Connected systems"

    def ready(self) -> None:
        # Signal receivers: schedules mirrored into django-q2; stale-run recovery when
        # a worker starts.
        from connectors import schedules, tasks  # noqa: F401
