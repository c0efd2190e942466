from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package itself: startup wiring that belongs to no app (no models)."""

    name = "project"
    label = "project"
    verbose_name = "SmallStack project"

    def ready(self) -> None:
        from project import checks

        checks.install()  # check --deploy recognises project/middleware.py's subclasses
