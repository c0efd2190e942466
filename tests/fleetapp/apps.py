from django.apps import AppConfig


class FleetAppConfig(AppConfig):
    """Registers the counted widgets (tests/fleetapp/widgets.py) in the "Fleet" group, off the
    main dashboard."""

    name = "tests.fleetapp"
    label = "fleetapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.fleetapp.widgets import Counted, CountedAsync, Pid

        for widget in (Counted(), CountedAsync(), Pid()):
            widget.on_dashboard = False
            dashboard.register(widget, group="Fleet")
