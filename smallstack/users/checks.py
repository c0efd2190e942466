"""System checks for ``SMALLSTACK_USERS`` (``users.E001``-``E003``, ``users.W001``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

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
    value = getattr(settings, "SMALLSTACK_USERS", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"SMALLSTACK_USERS must be a dict, not {type(value).__name__}.",
                obj="settings.SMALLSTACK_USERS",
                id="users.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, given in value.items():
        if key not in conf.DEFAULTS:
            closest = difflib.get_close_matches(str(key), list(conf.DEFAULTS), n=1)
            messages.append(
                Error(
                    f"SMALLSTACK_USERS has an unknown key {key!r}; it has no effect.",
                    hint=(f"Did you mean {closest[0]!r}? " if closest else "")
                    + f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    obj="settings.SMALLSTACK_USERS",
                    id="users.E002",
                )
            )
            continue
        test, description = RULES[key]
        if not test(given):
            messages.append(
                Error(
                    f"SMALLSTACK_USERS[{key!r}] is {given!r}; it must be {description}.",
                    hint=f"Remove it to use the default, {conf.DEFAULTS[key]!r}.",
                    obj="settings.SMALLSTACK_USERS",
                    id="users.E003",
                )
            )
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
