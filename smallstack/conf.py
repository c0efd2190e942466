"""The ``SMALLSTACK_DASHBOARD`` setting, with its defaults, and :func:`check_settings_dict`,
the system check every ``SMALLSTACK_<FEATURE>`` settings dict shares."""

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.signals import setting_changed

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
    # Consecutive failures (timeouts or errors) after which a widget is paused: not evaluated,
    # its last good value shown stale, until one retry after the cooldown. None never pauses.
    "BREAKER_FAILURES": 5,
    # Seconds of a widget's first pause; each failed retry doubles it, up to the maximum.
    "BREAKER_COOLDOWN": 30.0,
    "BREAKER_MAX_COOLDOWN": 600.0,
    # Largest websocket message (characters) the live endpoint accepts from a client.
    "LIVE_MAX_MESSAGE": 4096,
    # Seconds a verified API token is remembered in memory (no database query); 0 = never.
    "API_TOKEN_CACHE": 5,
    # Client addresses or networks (CIDR) that may read GET /api/metrics, besides needing staff
    # credentials; other addresses get 403. Empty: any address.
    "METRICS_ALLOWED_IPS": [],
}


#: Values read so far: the engine reads several per widget, and ``settings`` is a lazy
#: object whose attribute access is slow. Emptied whenever a setting changes (tests).
_values: dict[str, Any] = {}


def get(name: str) -> Any:
    """Return one dashboard setting, falling back to its default."""
    try:
        return _values[name]
    except KeyError:
        pass
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_DASHBOARD setting {name!r}")
    value = _values[name] = getattr(settings, "SMALLSTACK_DASHBOARD", {}).get(name, DEFAULTS[name])
    return value


def _forget_values(*, setting: str, **_: object) -> None:
    if setting == "SMALLSTACK_DASHBOARD":
        _values.clear()


setting_changed.connect(_forget_values)


#: A settings key's rule: a test of the value, and what the value must be (for the message).
ValueRule = tuple[Callable[[Any], bool], str]


def check_settings_dict(
    setting: str,
    defaults: Mapping[str, Any],
    rules: Mapping[str, ValueRule],
    ids: tuple[str, str, str],
    dict_hint: str | None = None,
) -> list[CheckMessage]:
    """Errors for the settings dict named ``setting``: not a dict, unknown keys, bad values.

    ``ids`` are the three check ids, in that order (e.g. ``("activity.E001", "activity.E002",
    "activity.E003")``); ``dict_hint`` is the hint of the first. An unknown key's hint names the
    closest known one. Unknown keys are reported first, then bad values.
    """
    value = getattr(settings, setting, {})
    obj = f"settings.{setting}"
    not_a_dict, unknown, bad = ids
    if not isinstance(value, dict):
        message = f"{setting} must be a dict, not {type(value).__name__}."
        return [Error(message, hint=dict_hint, obj=obj, id=not_a_dict)]
    messages: list[CheckMessage] = []
    for key in value:
        if key not in defaults:
            closest = difflib.get_close_matches(str(key), list(defaults), n=1)
            messages.append(
                Error(
                    f"{setting} has an unknown key {key!r}; it has no effect.",
                    hint=(f"Did you mean {closest[0]!r}? " if closest else "")
                    + f"Known keys: {', '.join(sorted(defaults))}.",
                    obj=obj,
                    id=unknown,
                )
            )
    for key, given in value.items():
        if key not in defaults:
            continue
        test, description = rules[key]
        if not test(given):
            messages.append(
                Error(
                    f"{setting}[{key!r}] is {given!r}; it must be {description}.",
                    hint=f"Remove it to use the default, {defaults[key]!r}.",
                    obj=obj,
                    id=bad,
                )
            )
    return messages
