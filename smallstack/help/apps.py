from django.apps import AppConfig


class HelpConfig(AppConfig):
    name = "smallstack.help"
    label = "help"
    verbose_name = "Help & Docs"

    def ready(self) -> None:
        from smallstack import conf, dashboard
        from smallstack.help import checks  # noqa: F401 — system checks register
        from smallstack.help.widgets import HelpWidget

        if conf.get("BUILTIN_WIDGETS"):
            dashboard.register(HelpWidget())
