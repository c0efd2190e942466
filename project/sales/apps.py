from django.apps import AppConfig


class SalesConfig(AppConfig):
    """The demo app: orders, browsed in the Explorer and summarised on the dashboard."""

    name = "project.sales"
    label = "sales"
    verbose_name = "Sales"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Signal handlers are connected here."""
        from . import signals  # noqa: F401 — Order changes refresh the dashboard's Orders card
