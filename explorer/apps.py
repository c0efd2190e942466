from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "explorer"
    verbose_name = "Explorer"
    default_auto_field = "django.db.models.BigAutoField"
