from django.apps import AppConfig

#: The group of the large widgets, for ``GET /api/dashboard/widgets/?group=…``.
GROUP = "Memory big"


class MemoryAppConfig(AppConfig):
    """Registers ten ~200 KB widgets (sync and async, with and without cache_ttl) in GROUP."""

    name = "tests.memoryapp"
    label = "memoryapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.memoryapp import widgets

        kinds = [widgets.BigHeadline, widgets.BigApiExtras, widgets.AsyncBigHeadline]
        kinds.append(widgets.AsyncBigExtra)
        for index, widget_class in enumerate(kinds * 2):
            dashboard.register(widget_class(f"memory-big-{index}"), group=GROUP)
        # Two reused for a second: results served from the cache, as pollers get them.
        cached = [widgets.BigHeadline("memory-big-cached-sync", cache_ttl=1)]
        cached.append(widgets.AsyncBigExtra("memory-big-cached-async", cache_ttl=1))
        for widget in cached:
            dashboard.register(widget, group=GROUP)
