"""System checks for ``SMALLSTACK_HEARTBEAT`` (``heartbeat.E001``-``E003``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, register

from smallstack.conf import check_settings_dict
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
    return check_settings_dict(
        "SMALLSTACK_HEARTBEAT",
        conf.DEFAULTS,
        RULES,
        ("heartbeat.E001", "heartbeat.E002", "heartbeat.E003"),
    )
