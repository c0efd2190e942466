"""The ``SMALLSTACK_BACKUPS`` setting (a dict), with its defaults.

- ``BACKUP_DIR``: where backup files are written; ``None`` = ``backups/`` under
  ``settings.SMALLSTACK_DATA_DIR`` (else under ``BASE_DIR``). The project reads it from the
  ``BACKUP_DIR`` environment variable.
- ``MAX_AGE_HOURS``: the card warns when the newest good backup is older than this (the
  project reads ``BACKUP_MAX_AGE_HOURS``).
- ``KEEP``: good backups kept when a backup runs without ``--keep`` (the page's button, the
  demo seed); ``None`` keeps them all.
- ``PG_BIN_DIR``: the directory holding ``pg_dump`` and ``pg_restore``; ``None`` = ``PATH``.
  Their major version must be at least the server's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "BACKUP_DIR": None,
    "MAX_AGE_HOURS": 26.0,
    "KEEP": None,
    "PG_BIN_DIR": None,
}


def get(name: str) -> Any:
    """One backups setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_BACKUPS setting {name!r}")
    value = getattr(settings, "SMALLSTACK_BACKUPS", {})
    return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]


def backup_dir() -> Path:
    """The directory backup files go to (not created here)."""
    configured = get("BACKUP_DIR")
    if configured:
        return Path(configured)
    data_dir = getattr(settings, "SMALLSTACK_DATA_DIR", None)
    return Path(data_dir or settings.BASE_DIR) / "backups"


def pg_tool(name: str) -> str | None:
    """The path of ``pg_dump``/``pg_restore`` (in ``PG_BIN_DIR``, else on ``PATH``), or None."""
    folder = get("PG_BIN_DIR")
    return shutil.which(name, path=str(folder)) if folder else shutil.which(name)
