"""The ``SMALLSTACK_ACTIVITY`` setting (a dict), with its defaults.

- ``ENABLED``: log requests (False: the middleware removes itself at start-up).
- ``FLUSH_INTERVAL``: seconds between writes of the buffered rows (at most; a full batch is
  written sooner).
- ``BATCH_SIZE``: rows per ``bulk_create``; this many buffered rows wake the writer early.
- ``BUFFER_SIZE``: rows kept in memory at most; when full, the oldest is dropped and counted.
- ``EXCLUDE``: path prefixes never logged; ``STATIC_URL`` is always added.
- ``RETENTION_DAYS``: what ``prune_activity`` keeps by default.
- ``SHUTDOWN_TIMEOUT``: seconds a terminating process waits for the last rows to be written.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "ENABLED": True,
    "FLUSH_INTERVAL": 2.0,
    "BATCH_SIZE": 500,
    "BUFFER_SIZE": 10_000,
    "EXCLUDE": ("/static/", "/health/", "/ws/"),
    "RETENTION_DAYS": 30,
    "SHUTDOWN_TIMEOUT": 10.0,
}


def get(name: str) -> Any:
    """One activity setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_ACTIVITY setting {name!r}")
    value = getattr(settings, "SMALLSTACK_ACTIVITY", {})
    return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]


def excluded_prefixes() -> tuple[str, ...]:
    """Path prefixes not logged: ``EXCLUDE`` plus ``STATIC_URL`` (made absolute)."""
    prefixes = [str(p) for p in get("EXCLUDE")]
    static_url = getattr(settings, "STATIC_URL", None)
    if static_url and "://" not in str(static_url):
        prefixes.append("/" + str(static_url).lstrip("/"))
    return tuple(dict.fromkeys(prefixes))
