"""System checks for ``SMALLSTACK_USERS`` (``users.E001``-``E003``, ``users.W001``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from smallstack.conf import check_settings_dict
from smallstack.users import conf


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "EXPLORER": (lambda v: isinstance(v, bool), "True or False"),
    "NEW_DAYS": (_whole, "a positive whole number of days"),
    "SIGNED_IN_HOURS": (_whole, "a positive whole number of hours"),
}


@register("users")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    messages = check_settings_dict(
        "SMALLSTACK_USERS", conf.DEFAULTS, RULES, ("users.E001", "users.E002", "users.E003")
    )
    value = getattr(settings, "SMALLSTACK_USERS", {})
    if not isinstance(value, dict):
        return messages
    if value.get("EXPLORER", True) is True and not apps.is_installed("explorer"):
        messages.append(
            Warning(
                "SMALLSTACK_USERS['EXPLORER'] is on, but the Explorer ('explorer') is not in "
                "INSTALLED_APPS, so there is no list of users to browse.",
                hint="Add 'explorer' to INSTALLED_APPS, or set SMALLSTACK_USERS['EXPLORER'] "
                "to False.",
                obj="settings.SMALLSTACK_USERS",
                id="users.W001",
            )
        )
    return messages
