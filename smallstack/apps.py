from django.apps import AppConfig


class SmallstackConfig(AppConfig):
    name = "smallstack"
    verbose_name = "SmallStack dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The first-party cards are registered by their own apps (heartbeat, activity, users…).
        from smallstack import checks, signals  # noqa: F401 — checks register, signals connect
