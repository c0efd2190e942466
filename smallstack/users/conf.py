"""The ``SMALLSTACK_USERS`` setting (a dict), with its defaults.

- ``EXPLORER``: register the user model with the Explorer (read-only, group "Accounts", the
  password hidden). Set it to ``False`` when the project registers its user model itself.
- ``NEW_DAYS``: an account joined within this many days counts as new on the card.
- ``SIGNED_IN_HOURS``: an account that signed in within this many hours counts as signed in.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "EXPLORER": True,
    "NEW_DAYS": 30,
    "SIGNED_IN_HOURS": 24,
}


def get(name: str) -> Any:
    """One users setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_USERS setting {name!r}")
    value = getattr(settings, "SMALLSTACK_USERS", {})
    return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]
