from django.apps import AppConfig

#: Widgets that end their evaluation with SystemExit / KeyboardInterrupt, and a sound one.
EXITS = "Hostile exits"
#: The CPU-bound async widget, alone.
SPINS = "Hostile spins"
#: Widgets returning megabytes.
HUGE = "Hostile huge"


class HostileAppConfig(AppConfig):
    """Registers the misbehaving widgets of :mod:`tests.hostileapp.widgets`, off the dashboard."""

    name = "tests.hostileapp"
    label = "hostileapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.hostileapp import widgets

        for kind, key in [
            (widgets.ExitsSync, "exits-sync"),
            (widgets.ExitsAsync, "exits-async"),
            (widgets.InterruptsSync, "interrupts-sync"),
            (widgets.InterruptsAsync, "interrupts-async"),
            (widgets.Fine, "fine"),
        ]:
            dashboard.register(kind(key), group=EXITS)
        dashboard.register(widgets.SpinsAsync("spins-async"), group=SPINS)
        dashboard.register(widgets.FiveMegabytes("five-megabytes"), group=HUGE)
        dashboard.register(widgets.FiveMegabytesOfExtras("five-megabytes-of-extras"), group=HUGE)
