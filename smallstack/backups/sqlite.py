"""SQLite: an online copy through SQLite's backup API, compressed with gzip; and back.

The copy is taken in one step of ``sqlite3.Connection.backup``, which reads the whole database
inside one read transaction: a consistent snapshot as of its start. In WAL mode (the project's
setting) writers carry on meanwhile; in rollback-journal mode they wait until it is done.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from smallstack.backups import files
from smallstack.backups.errors import BackupError

#: gzip level: 6 compresses a database nearly as well as 9 in a fraction of the time.
COMPRESSLEVEL = 6
BUSY_TIMEOUT = 20.0


def database_path(settings_dict: dict[str, Any]) -> Path:
    """The file of a SQLite database from its Django settings; in-memory ones are refused."""
    name = str(settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        raise BackupError(f"the SQLite database {name or '(unnamed)'!r} is not a file")
    if name.startswith("file:"):
        name = name[len("file:") :].split("?", 1)[0]
    return Path(name)


def _check(connection: sqlite3.Connection, what: str) -> None:
    try:
        result = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what} is not a usable SQLite database: {exc}") from exc
    if result != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in result[:3])
        raise BackupError(f"{what} fails SQLite's consistency check: {problems}")


def dump(db_path: Path, out: files.Writable, workdir: Path) -> None:
    """Write a gzip-compressed copy of the database at ``db_path`` to ``out``.

    The uncompressed copy is a temporary file in ``workdir``, removed whatever happens.
    """
    if not db_path.is_file():
        raise BackupError(f"the SQLite database {db_path} does not exist")
    with files.temp_path(workdir, ".sqlite3") as copy:
        source = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # pages=-1: all pages in one step, one snapshot
                # The copy carries the source's WAL flag; make it a self-contained single file.
                target.execute("PRAGMA journal_mode=DELETE")
                _check(target, "the copy")
            finally:
                target.close()
        finally:
            source.close()
        with (
            open(copy, "rb") as plain,
            gzip.GzipFile(fileobj=out, mode="wb", compresslevel=COMPRESSLEVEL, mtime=0) as packed,
        ):
            shutil.copyfileobj(plain, packed, files.CHUNK)


def decompress(path: Path, target: Path) -> None:
    """Unpack a gzip-compressed backup into ``target``, saying clearly when it is not one."""
    try:
        with gzip.open(path, "rb") as packed, open(target, "wb") as plain:
            shutil.copyfileobj(packed, plain, files.CHUNK)
    except (OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{path.name} is not a complete gzip-compressed backup: {exc}") from exc


def restore(path: Path, db_path: Path, workdir: Path) -> list[str]:
    """Replace the database at ``db_path`` with the backup ``path``; the restored table names.

    The backup is unpacked to a temporary file and checked first, then copied in through the
    backup API: one write transaction, so other connections see the old or the new database.
    """
    with files.temp_path(workdir, ".sqlite3") as plain:
        decompress(path, plain)
        source = sqlite3.connect(plain)
        try:
            _check(source, path.name)
            tables = [
                row[0]
                for row in source.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            target = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT)
            try:
                source.backup(target)
            except sqlite3.Error as exc:
                raise BackupError(f"could not write {db_path}: {exc}") from exc
            finally:
                target.close()
        finally:
            source.close()
    return tables
