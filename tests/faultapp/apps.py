from django.apps import AppConfig


class FaultAppConfig(AppConfig):
    """Widgets of the load-and-fault suite (``benchmarks/loadtest.py``).

    All are on the main dashboard, in group "Faults", next to the project's own widgets
    (Status, Users, Orders). Each reads its behaviour from ``<SMALLSTACK_DATA_DIR>/faults/<key>``
    on every call, so the load generator can inject faults while the server runs; see
    :mod:`tests.faultapp.widgets`.
    """

    name = "tests.faultapp"
    label = "faultapp"

    def ready(self) -> None:
        from smallstack import dashboard
        from tests.faultapp.widgets import fault_widgets

        for widget in fault_widgets():
            dashboard.register(widget, group="Faults")
