from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "smallstack.backups"
    label = "backups"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from smallstack import conf, dashboard
        from smallstack.backups import checks, serving  # noqa: F401 — system checks register
        from smallstack.backups.widgets import BackupsWidget

        # A process that serves requests marks the SQLite database it serves as in use, so
        # that `manage.py restore` refuses to replace it underneath.
        request_started.connect(serving.on_request_started, dispatch_uid="backups-serving")
        if conf.get("BUILTIN_WIDGETS"):
            dashboard.register(BackupsWidget())
