"""The ``SMALLSTACK_HEARTBEAT`` setting (a dict), with its defaults.

- ``INTERVAL``: seconds between heartbeats a one-off ``manage.py heartbeat`` (cron) declares;
  ``--loop SECONDS`` declares its own. The uptime maths treats a gap longer than
  ``GAP_FACTOR`` times a beat's interval as unknown time.
- ``GAP_FACTOR``: how many intervals a beat covers at most before time counts as unknown.
- ``CHECK_TIMEOUT``: seconds each check may take (a registered check may set its own).
- ``RETENTION_DAYS``: heartbeats older than this are pruned by the command.
- ``DISK_WARNING_MB``: free space of the data directory below which the disk check warns.
- ``DATA_DIR``: the directory whose disk is checked; ``None`` = ``settings.SMALLSTACK_DATA_DIR``,
  else ``BASE_DIR``.
- ``PUBLIC_PAGE``: serve the public ``/status/`` page (False: it is a 404).
- ``READY_TIMEOUT``: seconds ``/health/ready/`` gives the database and Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "INTERVAL": 60.0,
    "GAP_FACTOR": 2.0,
    "CHECK_TIMEOUT": 2.0,
    "RETENTION_DAYS": 30,
    "DISK_WARNING_MB": 1024,
    "DATA_DIR": None,
    "PUBLIC_PAGE": True,
    "READY_TIMEOUT": 1.0,
}


def get(name: str) -> Any:
    """One heartbeat setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_HEARTBEAT setting {name!r}")
    value = getattr(settings, "SMALLSTACK_HEARTBEAT", {})
    return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]


def data_dir() -> Path:
    """The directory whose free disk space the disk check reads."""
    configured = get("DATA_DIR") or getattr(settings, "SMALLSTACK_DATA_DIR", None)
    return Path(configured or settings.BASE_DIR)
