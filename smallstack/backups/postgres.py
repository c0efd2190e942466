"""PostgreSQL: ``pg_dump --format=custom`` streamed to a file, and ``pg_restore`` back.

pg_dump reads inside one repeatable-read transaction, so the dump is a consistent snapshot
while the site goes on writing; its custom format is already compressed. The password goes to
both tools in the ``PGPASSWORD`` environment variable, never on the command line, where any
user of the machine could read it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from django.db.backends.postgresql.client import DatabaseClient

from smallstack.backups import conf, files
from smallstack.backups.errors import BackupError

#: How much of a failing tool's error output a message (and the record) keeps.
STDERR_TAIL = 2000


def tool(name: str) -> str:
    """The path of ``pg_dump`` or ``pg_restore``, or a clear error."""
    path = conf.pg_tool(name)
    if path is None:
        where = conf.get("PG_BIN_DIR") or "PATH"
        raise BackupError(
            f"{name} was not found in {where}: install the PostgreSQL client tools "
            "(Debian: postgresql-client), at least as new as the server"
        )
    return path


def command(
    name: str, settings_dict: dict[str, Any], *arguments: str
) -> tuple[list[str], dict[str, str]]:
    """The argument list and the environment to run ``name`` against a Django database.

    Host, port, user and database name are arguments; the password and the TLS options are
    the libpq environment variables Django's own ``dbshell`` sets.
    """
    _, libpq_env = DatabaseClient.settings_to_cmd_args_env(settings_dict, [])
    args = [tool(name), "--no-password"]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if settings_dict.get(key):
            args.append(f"{option}={settings_dict[key]}")
    service = settings_dict.get("OPTIONS", {}).get("service")
    dbname = settings_dict.get("NAME") or (f"service={service}" if service else "postgres")
    args.append(f"--dbname={dbname}")
    args.extend(arguments)
    return args, {**os.environ, **(libpq_env or {})}


def _tail(stderr: BinaryIO) -> str:
    """The end of a tool's error output, for a message."""
    stderr.seek(0)
    text = stderr.read().decode(errors="replace").strip()
    return text[-STDERR_TAIL:] or "(no output)"


def dump(settings_dict: dict[str, Any], out: files.Writable) -> None:
    """Stream ``pg_dump --format=custom`` of the database into ``out``."""
    args, env = command("pg_dump", settings_dict, "--format=custom")
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, env=env)
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(files.CHUNK):
                out.write(chunk)
        except BaseException:
            process.kill()
            raise
        finally:
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0:
            raise BackupError(f"pg_dump exited with status {returncode}: {_tail(stderr)}")


def restore(path: Path, settings_dict: dict[str, Any]) -> None:
    """``pg_restore --clean --if-exists`` the dump at ``path``, in one transaction.

    Objects in the dump are dropped and recreated; a failure rolls everything back and leaves
    the database as it was. Ownership is not restored (the connecting role owns what it
    creates), so a dump restores into a database of another role too.
    """
    args, env = command(
        "pg_restore", settings_dict, "--clean", "--if-exists", "--no-owner", "--single-transaction"
    )
    with tempfile.TemporaryFile() as stderr:
        completed = subprocess.run([*args, str(path)], stderr=stderr, env=env, check=False)
        if completed.returncode != 0:
            raise BackupError(
                f"pg_restore exited with status {completed.returncode}; the database was left "
                f"as it was: {_tail(stderr)}"
            )
