"""Taking, pruning and restoring backups; what the card and the page read.

Everything here is blocking (files, subprocesses, the ORM): async code calls it through
``asgiref.sync.sync_to_async`` (see :func:`run_in_thread`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, connections, router, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.connection import ConnectionDoesNotExist

from smallstack.backups import conf, files, postgres, serving, sqlite
from smallstack.backups.errors import BackupError
from smallstack.backups.models import BackupRecord

logger = logging.getLogger("smallstack.backups")

SUPPORTED = ("sqlite", "postgresql")
#: The page's button: one backup at a time per process.
button_lock = threading.Lock()


def _vendor(database: str) -> str:
    try:
        vendor = connections[database].vendor
    except ConnectionDoesNotExist:
        raise BackupError(f"there is no database {database!r} in DATABASES") from None
    if vendor not in SUPPORTED:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {vendor}")
    return vendor


def describe(exc: BaseException) -> str:
    """A one-line reason for a record and a message: our own errors as they are."""
    if isinstance(exc, BackupError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _write(vendor: str, database: str, directory: Path, temp: Path) -> tuple[int, str]:
    """Write the backup into ``temp``; its size and SHA-256."""
    settings_dict = connections[database].settings_dict
    with open(temp, "wb") as raw:
        out = files.HashingWriter(raw)
        if vendor == "sqlite":
            sqlite.dump(sqlite.database_path(settings_dict), out, directory)
        else:
            postgres.dump(settings_dict, out)
        raw.flush()
        os.fsync(raw.fileno())
    return out.size, out.sha256


def backup(*, database: str = "default", keep: int | None = None) -> BackupRecord:
    """Take a backup of ``database`` now and record it; prune to ``keep`` good ones after.

    The file is written under a temporary name in the backup directory and renamed into place
    once complete. A failure removes what was written, is recorded as a ``BackupRecord`` with
    status ``error`` (when the database takes that row) and raises :class:`BackupError`.
    """
    started, clock = timezone.now(), time.monotonic()
    vendor = "unknown"
    directory = conf.backup_dir()
    try:
        vendor = _vendor(database)
        directory.mkdir(parents=True, exist_ok=True)
        name = files.new_name(database, vendor, started)
        with files.temp_path(directory, f"{files.SUFFIXES[vendor]}.part") as temp:
            size, sha256 = _write(vendor, database, directory, temp)
            files.publish(temp, directory / name)
    except Exception as exc:
        reason = describe(exc)
        logger.error("backup of %s failed: %s", database, reason)
        try:
            BackupRecord.objects.create(
                created_at=started,
                status=BackupRecord.ERROR,
                duration=time.monotonic() - clock,
                vendor=vendor,
                database=database,
                error=reason,
            )
        except Exception as record_exc:
            reason += f" (and the failure could not be recorded: {describe(record_exc)})"
        raise BackupError(reason) from exc
    try:
        record = BackupRecord.objects.create(
            created_at=started,
            status=BackupRecord.OK,
            file_name=name,
            size=size,
            sha256=sha256,
            duration=time.monotonic() - clock,
            vendor=vendor,
            database=database,
        )
    except Exception as exc:
        raise BackupError(
            f"the backup {directory / name} was written (SHA-256 {sha256}) but its record could "
            f"not be stored: {describe(exc)}"
        ) from exc
    if keep is None:
        keep = conf.get("KEEP")
    if keep is not None:
        try:
            prune(keep, database=database)
        except Exception as exc:
            raise BackupError(
                f"the backup {directory / name} was written and recorded, but pruning to {keep} "
                f"failed: {describe(exc)}"
            ) from exc
    return record


def prune(keep: int, *, database: str = "default") -> list[str]:
    """Keep the ``keep`` newest good backups of ``database``; delete older files and records.

    Failed runs older than the oldest backup kept go too, and so do temporary files left by
    killed runs. Returns the names of the files deleted.
    """
    if keep < 1:
        raise BackupError("keep at least one backup")
    records = BackupRecord.objects.filter(database=database)
    good = list(records.filter(status=BackupRecord.OK).order_by("-created_at", "-id"))
    directory = conf.backup_dir()
    deleted = []
    for record in good[keep:]:
        try:
            (directory / record.file_name).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not delete old backup %s: %s", record.file_name, exc)
            continue
        record.delete()
        deleted.append(record.file_name)
    if len(good) >= keep:
        records.filter(status=BackupRecord.ERROR, created_at__lt=good[keep - 1].created_at).delete()
    if directory.is_dir():
        files.remove_stale_temps(directory)
    return deleted


def run_in_thread(keep: int | None = None) -> BackupRecord:
    """:func:`backup` for a thread of its own (the page's button): closes what it opened."""
    try:
        return backup(keep=keep)
    finally:
        for conn in connections.all(initialized_only=True):
            conn.close()


# -- restoring -----------------------------------------------------------------------------


@dataclass
class Restored:
    """What a restore did, for the command to say."""

    path: Path
    vendor: str
    target: str
    size: int
    record: BackupRecord | None
    tables: list[str] = field(default_factory=list)
    records_kept: int | None = None
    unapplied_migrations: int = 0


def locate(file: str | os.PathLike[str]) -> Path:
    """The backup file: a path, or a name in the backup directory."""
    path = Path(file)
    if not path.exists() and not path.is_absolute() and (conf.backup_dir() / path).exists():
        path = conf.backup_dir() / path
    if not path.is_file():
        raise BackupError(f"no backup file {file} (nor in {conf.backup_dir()})")
    return path


def kind_of(path: Path) -> str:
    """Which database a backup file is for, from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(5)
    if head.startswith(b"\x1f\x8b"):
        return "sqlite"
    if head == b"PGDMP":
        return "postgresql"
    raise BackupError(
        f"{path.name} is neither a gzip-compressed SQLite backup nor a pg_dump custom archive"
    )


def verify(path: Path) -> BackupRecord:
    """The good record of the file at ``path``, after checking its size and SHA-256."""
    try:
        record = BackupRecord.objects.filter(file_name=path.name, status=BackupRecord.OK).first()
    except DatabaseError:  # no backups table: a new, empty database
        record = None
    if record is None:
        raise BackupError(
            f"no backup record named {path.name} in this database, so its checksum cannot be "
            "verified; for a file from elsewhere, check it yourself and pass --no-verify"
        )
    size = path.stat().st_size
    digest = files.sha256_of(path)
    if size != record.size or digest != record.sha256:
        raise BackupError(
            f"{path.name} does not match its record of {record.created_at:%Y-%m-%d %H:%M:%S} "
            f"UTC: SHA-256 {digest} and {size} bytes, recorded {record.sha256} and "
            f"{record.size} bytes. The file is damaged or was replaced; restore another backup, "
            "or pass --no-verify to restore it anyway"
        )
    return record


def _holds_records(database: str) -> bool:
    return router.db_for_write(BackupRecord) == database


def _table_names(database: str) -> list[str]:
    with connections[database].cursor() as cursor:
        return connections[database].introspection.table_names(cursor)


def _put_back(database: str, kept: list[BackupRecord]) -> int | None:
    """Replace the restored database's backup records with the ones it had before."""
    if BackupRecord._meta.db_table not in _table_names(database):
        return None
    with transaction.atomic(using=database):
        BackupRecord.objects.using(database).all().delete()
        BackupRecord.objects.using(database).bulk_create(kept)
    return len(kept)


def _unapplied(database: str) -> int:
    try:
        executor = MigrationExecutor(connections[database])
        return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    except Exception:  # an unreadable history: migrate will say more
        return 0


def restore(
    file: str | os.PathLike[str],
    *,
    database: str = "default",
    verify_checksum: bool = True,
    force: bool = False,
) -> Restored:
    """Replace ``database`` with a backup file.

    The file's SHA-256 is checked against its record unless ``verify_checksum`` is False; a
    database that holds any table is only overwritten with ``force``; for SQLite, a database a
    server is serving is refused (see :mod:`smallstack.backups.serving`). The backup records
    the database had are put back afterwards, so the list keeps matching the files on disk.
    """
    path = locate(file)
    vendor = _vendor(database)
    record = verify(path) if verify_checksum else None
    kind = kind_of(path)
    if kind != vendor:
        raise BackupError(f"{path.name} is a {kind} backup; the database {database} is {vendor}")
    connection = connections[database]
    settings_dict = connection.settings_dict
    if vendor == "sqlite":
        db_path = sqlite.database_path(settings_dict)
        guard: contextlib.AbstractContextManager[None] = serving.exclusively(db_path)
        target = str(db_path)
    else:
        guard = contextlib.nullcontext()
        target = f"{settings_dict.get('NAME')} on {settings_dict.get('HOST') or 'localhost'}"
    with guard:
        existing = _table_names(database)
        if existing and not force:
            raise BackupError(
                f"the database {target} is not empty ({len(existing)} tables): pass --force to "
                "replace its contents with the backup"
            )
        kept = None
        if _holds_records(database) and BackupRecord._meta.db_table in existing:
            kept = list(BackupRecord.objects.using(database).order_by("id"))
        connection.close()
        if vendor == "sqlite":
            tables = sqlite.restore(path, db_path, db_path.parent)
        else:
            postgres.restore(path, settings_dict)
            tables = sorted(_table_names(database))
        records_kept = _put_back(database, kept) if kept is not None else None
        connection.close()
    return Restored(
        path=path,
        vendor=vendor,
        target=target,
        size=path.stat().st_size,
        record=record,
        tables=tables,
        records_kept=records_kept,
        unapplied_migrations=_unapplied(database),
    )
