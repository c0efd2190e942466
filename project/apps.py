from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project package itself: startup wiring that belongs to no app (no models)."""

    name = "project"
    label = "project"
    verbose_name = "SmallStack project"

    def ready(self) -> None:
        from django.conf import settings

        from project import checks, services

        checks.install()  # check --deploy recognises project/middleware.py's subclasses
        if settings.CACHES["default"]["BACKEND"] == services.REDIS_CACHE:
            from smallstack import heartbeat
            from smallstack.heartbeat.probes import check_cache

            # With the cache in Redis (REDIS_URL), pages and the API keep working while it is
            # away (the dashboard evaluates without it), as with the channel layer: the Status
            # check of the cache then counts as degraded, not down.
            heartbeat.register_check("cache", check_cache, critical=False)
