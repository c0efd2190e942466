from django.apps import AppConfig


class SmallstackConfig(AppConfig):
    name = "smallstack"
    verbose_name = "SmallStack dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smallstack import checks, conf, dashboard, signals, widgets  # noqa: F401 — checks register, signals connect

        if conf.get("BUILTIN_WIDGETS"):
            for widget in widgets.builtin_widgets():
                dashboard.register(widget)
