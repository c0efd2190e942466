"""Backup files: their names, writing through a temporary file renamed into place, checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024
#: Temporary files start with this; they are never listed as backups and are removed on failure.
TEMP_PREFIX = ".partial-"
SUFFIXES = {"sqlite": ".sqlite3.gz", "postgresql": ".pgdump"}
NAME_PATTERN = re.compile(r"^backup-[A-Za-z0-9_-]+-\d{8}-\d{6}-[0-9a-f]{8}\.(sqlite3\.gz|pgdump)$")


def new_name(database: str, vendor: str, at: datetime) -> str:
    """A fresh file name: alias, UTC time and a random part, so concurrent runs never collide."""
    alias = re.sub(r"[^A-Za-z0-9_-]+", "_", database) or "db"
    return f"backup-{alias}-{at:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}{SUFFIXES[vendor]}"


def is_backup_name(name: str) -> bool:
    """Whether ``name`` is a plain file name this app writes (no directory part)."""
    return bool(NAME_PATTERN.match(name))


class Writable(Protocol):
    """Where a backup is written: anything with ``write`` and ``flush``."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class HashingWriter:
    """Writes to ``target`` while computing the SHA-256 and size of what went through."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.target.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@contextlib.contextmanager
def temp_path(directory: Path, suffix: str) -> Iterator[Path]:
    """A new, unique file in ``directory``; removed on the way out unless renamed away.

    SQLite's side files (``-journal``, ``-wal``, ``-shm``) are removed with it.
    """
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        for extra in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{extra}")


def publish(temp: Path, final: Path) -> None:
    """Make the fully written ``temp`` the file ``final``: flushed to disk, then renamed."""
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temps(directory: Path, older_than: float = 3600.0) -> int:
    """Delete temporary files left by runs that were killed (untouched for ``older_than`` s)."""
    removed = 0
    cutoff = time.time() - older_than
    for path in directory.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
