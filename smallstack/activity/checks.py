"""System checks for ``SMALLSTACK_ACTIVITY`` (``activity.E001``-``E003``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from smallstack.activity import conf


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "ENABLED": (lambda v: isinstance(v, bool), "True or False"),
    "FLUSH_INTERVAL": (lambda v: _number(v) and v > 0, "a positive number of seconds"),
    "BATCH_SIZE": (_count, "a positive integer (rows)"),
    "BUFFER_SIZE": (_count, "a positive integer (rows)"),
    "EXCLUDE": (
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(p, str) and p for p in v),
        "a list of path prefixes (non-empty strings)",
    ),
    "RETENTION_DAYS": (_count, "a positive integer (days)"),
    "SHUTDOWN_TIMEOUT": (lambda v: _number(v) and v >= 0, "0 or more seconds"),
}


@register("activity")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    value = getattr(settings, "SMALLSTACK_ACTIVITY", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"SMALLSTACK_ACTIVITY must be a dict, not {type(value).__name__}.",
                obj="settings.SMALLSTACK_ACTIVITY",
                id="activity.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, given in value.items():
        if key not in conf.DEFAULTS:
            closest = difflib.get_close_matches(str(key), list(conf.DEFAULTS), n=1)
            messages.append(
                Error(
                    f"SMALLSTACK_ACTIVITY has an unknown key {key!r}; it has no effect.",
                    hint=(f"Did you mean {closest[0]!r}? " if closest else "")
                    + f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    obj="settings.SMALLSTACK_ACTIVITY",
                    id="activity.E002",
                )
            )
            continue
        test, description = RULES[key]
        if not test(given):
            messages.append(
                Error(
                    f"SMALLSTACK_ACTIVITY[{key!r}] is {given!r}; it must be {description}.",
                    hint=f"Remove it to use the default, {conf.DEFAULTS[key]!r}.",
                    obj="settings.SMALLSTACK_ACTIVITY",
                    id="activity.E003",
                )
            )
    return messages
