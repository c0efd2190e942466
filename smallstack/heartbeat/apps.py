from django.apps import AppConfig


class HeartbeatConfig(AppConfig):
    name = "smallstack.heartbeat"
    label = "heartbeat"
    verbose_name = "Status"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from smallstack import conf, dashboard
        from smallstack.heartbeat import checks  # noqa: F401 — system checks register
        from smallstack.heartbeat.widgets import StatusWidget

        if conf.get("BUILTIN_WIDGETS"):
            dashboard.register(StatusWidget())
