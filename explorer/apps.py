from django.apps import AppConfig


class ExplorerConfig(AppConfig):
    name = "explorer"
    verbose_name = "Explorer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from explorer.registry import explorer
        from explorer.widgets import ExplorerWidget
        from smallstack import conf, dashboard

        explorer.autodiscover()
        if conf.get("BUILTIN_WIDGETS"):
            dashboard.register(ExplorerWidget())
