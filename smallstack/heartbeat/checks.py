"""System checks for ``SMALLSTACK_HEARTBEAT`` (``heartbeat.E001``-``E003``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from smallstack.heartbeat import conf


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "INTERVAL": (_positive, "a positive number of seconds"),
    "GAP_FACTOR": (lambda v: _number(v) and v >= 1, "a number of intervals, 1 or more"),
    "CHECK_TIMEOUT": (_positive, "a positive number of seconds"),
    "RETENTION_DAYS": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "a positive integer (days)",
    ),
    "DISK_WARNING_MB": (lambda v: _number(v) and v >= 0, "0 or more megabytes"),
    "DATA_DIR": (
        lambda v: v is None or isinstance(v, str) or hasattr(v, "__fspath__"),
        "a path, or None",
    ),
    "PUBLIC_PAGE": (lambda v: isinstance(v, bool), "True or False"),
    "READY_TIMEOUT": (_positive, "a positive number of seconds"),
}


@register("heartbeat")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    value = getattr(settings, "SMALLSTACK_HEARTBEAT", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"SMALLSTACK_HEARTBEAT must be a dict, not {type(value).__name__}.",
                obj="settings.SMALLSTACK_HEARTBEAT",
                id="heartbeat.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, given in value.items():
        if key not in conf.DEFAULTS:
            closest = difflib.get_close_matches(str(key), list(conf.DEFAULTS), n=1)
            messages.append(
                Error(
                    f"SMALLSTACK_HEARTBEAT has an unknown key {key!r}; it has no effect.",
                    hint=(f"Did you mean {closest[0]!r}? " if closest else "")
                    + f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    obj="settings.SMALLSTACK_HEARTBEAT",
                    id="heartbeat.E002",
                )
            )
            continue
        test, description = RULES[key]
        if not test(given):
            messages.append(
                Error(
                    f"SMALLSTACK_HEARTBEAT[{key!r}] is {given!r}; it must be {description}.",
                    hint=f"Remove it to use the default, {conf.DEFAULTS[key]!r}.",
                    obj="settings.SMALLSTACK_HEARTBEAT",
                    id="heartbeat.E003",
                )
            )
    return messages
