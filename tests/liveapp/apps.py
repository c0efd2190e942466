from django.apps import AppConfig


class LiveAppConfig(AppConfig):
    """Widgets for the live end-to-end tests and the live benchmark.

    - "Live" group, on the main dashboard: ``live-value`` shows the text of the file named by
      ``SMALLSTACK_LIVE_VALUE_FILE`` (tests change it, then refresh); ``late-card`` takes
      ``SMALLSTACK_LIVE_LATE_SECONDS`` (default 1) and so arrives after the page.
    - "Live polls" group, hidden from the main dashboard: ``live-cached``, the same file with
      ``cache_ttl=60``.
    - "Live bench" group, hidden from the main dashboard: 20 instant widgets and one of 5 s.
    """

    name = "tests.liveapp"
    label = "liveapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.liveapp.widgets import CachedFileValue, FileValue, Late, Quick

        dashboard.register(FileValue(), group="Live")
        dashboard.register(Late(), group="Live")
        dashboard.register(CachedFileValue(), group="Live polls")
        for index in range(20):
            dashboard.register(Quick(index), group="Live bench")
        dashboard.register(
            Late(seconds=5.0, key="bench-slow", on_dashboard=False), group="Live bench"
        )
