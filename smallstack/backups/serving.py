"""Which SQLite databases a running server uses, told by a lock file beside each database.

A process that answers requests through Django's ASGI or WSGI handler (uvicorn, gunicorn,
``runserver``; not the test client) takes a *shared* ``flock`` on ``<database>.serving`` at its
first request and holds it until it exits. ``manage.py restore`` needs an *exclusive* lock on the
same file, so it is refused while any server process is alive, and a server that starts during
a restore takes its lock at a later request. The kernel drops a lock with its process, so a
crashed or killed server leaves nothing stale behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

from smallstack.backups.errors import BackupError

logger = logging.getLogger("smallstack.backups")

#: Lock files this process holds shared, by database path (the descriptors stay open).
_held: dict[str, int] = {}
_mutex = threading.Lock()
_all_held = False


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".serving")


def served_databases() -> list[Path]:
    """The file paths of the configured SQLite databases."""
    paths = []
    for alias in connections:
        settings_dict = connections.settings[alias]
        name = str(settings_dict.get("NAME") or "")
        if settings_dict.get("ENGINE", "").endswith("sqlite3") and name and "memory" not in name:
            paths.append(Path(name.removeprefix("file:").split("?", 1)[0]))
    return paths


def hold(db_path: Path) -> bool:
    """Take (once) the shared lock saying this process serves ``db_path``; whether it is held."""
    key = str(db_path)
    with _mutex:
        if key in _held:
            return True
        try:
            fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            logger.debug("cannot open the serving lock of %s: %s", db_path, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # a restore holds it: try again at the next request
            os.close(fd)
            return False
        _held[key] = fd
        return True


def on_request_started(sender: Any, **kwargs: Any) -> None:
    """``request_started`` receiver: a real server process marks its databases as served."""
    global _all_held
    if _all_held or not (
        isinstance(sender, type) and issubclass(sender, (ASGIHandler, WSGIHandler))
    ):
        return
    results = [hold(path) for path in served_databases()]
    _all_held = all(results)


def release_all() -> None:
    """Drop this process's serving locks (for a process that stops serving but lives on)."""
    global _all_held
    with _mutex:
        for fd in _held.values():
            os.close(fd)
        _held.clear()
        _all_held = False


def holders(db_path: Path) -> list[int]:
    """Process ids holding a lock on the serving file, read from ``/proc/locks`` (Linux)."""
    try:
        inode = os.stat(lock_path(db_path)).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = set()
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF" (blocked waiters have "->" first)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            with contextlib.suppress(ValueError):
                pids.add(int(fields[4]))
    return sorted(pids)


@contextlib.contextmanager
def exclusively(db_path: Path) -> Iterator[None]:
    """Hold the serving file exclusively (no server running) for the block, or refuse."""
    fd = os.open(lock_path(db_path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pids = holders(db_path)
            who = f" (process {', '.join(map(str, pids))})" if pids else ""
            raise BackupError(
                f"a server is running on {db_path}{who}: stop it before restoring, so that "
                "nothing writes to the database or keeps using the old one meanwhile"
            ) from None
        yield
    finally:
        os.close(fd)
