from django.apps import AppConfig


class ServerAppConfig(AppConfig):
    """Registers slow widgets in the "Server slow" group of the end-to-end test server."""

    name = "tests.serverapp"
    label = "serverapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.widgets import SleepyAsync, SleepySync

        for index in range(10):
            dashboard.register(
                SleepySync(0.3, key=f"slow-sync-{index}", on_dashboard=False), group="Server slow"
            )
            dashboard.register(
                SleepyAsync(0.3, key=f"slow-async-{index}", on_dashboard=False), group="Server slow"
            )
