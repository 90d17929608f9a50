from django.apps import AppConfig


class MetaverseConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "metaverse"
