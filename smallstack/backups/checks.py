"""System checks for ``SMALLSTACK_BACKUPS`` (``backups.E001``-``E006``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, register
from django.db import connections

from smallstack.backups import conf
from smallstack.conf import check_settings_dict

OBJ = "settings.SMALLSTACK_BACKUPS"


def _path(value: Any) -> bool:
    return value is None or (isinstance(value, str) and bool(value)) or hasattr(value, "__fspath__")


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "BACKUP_DIR": (_path, "a path, or None"),
    "MAX_AGE_HOURS": (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
        "a positive number of hours",
    ),
    "KEEP": (
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        "a positive integer, or None to keep every backup",
    ),
    "PG_BIN_DIR": (_path, "a directory, or None"),
}


def writable_problem(directory: Path) -> str | None:
    """Why backups could not be written to ``directory`` (created if missing), or None."""
    if directory.exists():
        if not directory.is_dir():
            return f"{directory} exists and is not a directory"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"{directory} is not writable by this user"
        return None
    parent = directory.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"{directory} does not exist and cannot be created ({parent} is not writable)"
    return None


@register("backups")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    messages = check_settings_dict(
        "SMALLSTACK_BACKUPS", conf.DEFAULTS, RULES, ("backups.E001", "backups.E002", "backups.E003")
    )
    if messages:
        return messages
    problem = writable_problem(conf.backup_dir())
    if problem:
        messages.append(
            Error(
                f"Backups cannot be written: {problem}.",
                hint="Set SMALLSTACK_BACKUPS['BACKUP_DIR'] (BACKUP_DIR in the environment) to "
                "a directory this user can write.",
                obj=OBJ,
                id="backups.E004",
            )
        )
    vendor = connections["default"].vendor
    if vendor == "postgresql":
        missing = [name for name in ("pg_dump", "pg_restore") if conf.pg_tool(name) is None]
        if missing:
            where = conf.get("PG_BIN_DIR") or "PATH"
            messages.append(
                Error(
                    f"The database is PostgreSQL but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not in {where}.",
                    hint="Install the PostgreSQL client tools (Debian: postgresql-client) at "
                    "least as new as the server, or set SMALLSTACK_BACKUPS['PG_BIN_DIR'].",
                    obj=OBJ,
                    id="backups.E005",
                )
            )
    elif vendor != "sqlite":
        messages.append(
            Error(
                f"Backups support SQLite and PostgreSQL; the default database is {vendor}.",
                hint="Use the database's own backup tools, or remove smallstack.backups from "
                "INSTALLED_APPS.",
                obj=OBJ,
                id="backups.E006",
            )
        )
    return messages
