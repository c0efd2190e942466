"""The ``SMALLSTACK_DASHBOARD`` setting, with its defaults."""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Seconds a widget may take before its card degrades to "timed out".
    "WIDGET_TIMEOUT": 3.0,
    # Threads that run sync get_data() calls; size it to the number of sync widgets on a page.
    "THREAD_POOL_SIZE": 32,
    # Cache alias (Django's cache framework) for fresh (cache_ttl) and last good results.
    "CACHE": "default",
    # Seconds a last good result is kept to show, marked stale, when a widget fails.
    "STALE_TTL": 24 * 60 * 60,
    # Register the first-party widgets (Status, Users).
    "BUILTIN_WIDGETS": True,
    # Seconds a page waits for widgets; later cards render as placeholders and arrive live.
    "RENDER_BUDGET": 0.3,
    # Redis URL for short per-widget locks shared by all processes ("" = this process only): an
    # interval refresh runs once per period, and with a shared CACHE a cache_ttl widget is
    # evaluated by one process at a time, the others waiting for its result.
    "LOCK_URL": "",
    # Seconds the dashboard leaves a shared cache or lock that failed alone (evaluating without
    # it) before trying it again.
    "RETRY_AFTER": 5.0,
    # Largest serialised (JSON) size of a widget's data, in bytes; larger data is the card's error.
    "MAX_DATA_BYTES": 256 * 1024,
    # Seconds an async widget may hold the widget event loop between two awaits before it is
    # interrupted and its evaluation fails.
    "LOOP_BLOCK_LIMIT": 0.5,
    # Seconds a widget that blocked the widget event loop is paused (not evaluated) afterwards.
    "LOOP_BLOCK_COOLDOWN": 60.0,
    # Largest websocket message (characters) the live endpoint accepts from a client.
    "LIVE_MAX_MESSAGE": 4096,
    # Seconds a verified API token is remembered in memory (no database query); 0 = never.
    "API_TOKEN_CACHE": 5,
}


def get(name: str) -> Any:
    """Return one dashboard setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_DASHBOARD setting {name!r}")
    return getattr(settings, "SMALLSTACK_DASHBOARD", {}).get(name, DEFAULTS[name])
