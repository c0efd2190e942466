"""System checks for ``SMALLSTACK_ACTIVITY`` (``activity.E001``-``E003``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, register

from smallstack.activity import conf
from smallstack.conf import check_settings_dict


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
    return check_settings_dict(
        "SMALLSTACK_ACTIVITY",
        conf.DEFAULTS,
        RULES,
        ("activity.E001", "activity.E002", "activity.E003"),
    )
