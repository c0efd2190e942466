from django.apps import AppConfig


class ActivityConfig(AppConfig):
    name = "smallstack.activity"
    label = "activity"
    verbose_name = "Activity"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_finished

        from smallstack import conf, dashboard
        from smallstack.activity import checks, writer  # noqa: F401 — checks register
        from smallstack.activity.widgets import ActivityWidget

        if conf.get("BUILTIN_WIDGETS"):
            dashboard.register(ActivityWidget())

        # Loaded before the server starts serving, the SIGTERM hook is the handler uvicorn
        # and gunicorn's uvicorn worker hand the signal back to once they have finished.
        writer.install_shutdown_hooks()
        request_finished.connect(writer.on_request_finished, dispatch_uid="activity-finished")
