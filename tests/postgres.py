"""A throwaway PostgreSQL server for tests: ``initdb`` and ``pg_ctl`` in a temporary directory.

:class:`PostgresServer` listens on 127.0.0.1 on a free port, with password (SCRAM) login for
its superuser, and hands out fresh databases as ``postgres://`` URLs (what ``DATABASE_URL``
takes). Run as root, the server runs as the ``postgres`` system user, since PostgreSQL refuses
to run as root; its directory is made theirs. The binaries are found through
``POSTGRES_BIN_DIR``, ``pg_config --bindir``, Debian's ``/usr/lib/postgresql/<version>/bin``
(the newest) or ``PATH``; :func:`require_postgres` skips a test without them, or fails it when
``CI`` is set (``.ci/run`` installs the ``postgresql`` package).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    if os.environ.get("POSTGRES_BIN_DIR"):
        candidates.append(Path(os.environ["POSTGRES_BIN_DIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
            candidates.append(Path(out.stdout.strip()))
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def require_postgres() -> Path:
    """The PostgreSQL binaries' directory: skipped locally if absent, a failure in CI."""
    folder = find_bin_dir()
    if folder is None:
        message = "PostgreSQL (initdb, pg_ctl) is not installed (.ci/run installs postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


class PostgresServer:
    """One PostgreSQL server over a fresh data directory; ``start()`` then ``stop()``."""

    def __init__(self, bin_dir: Path, port: int | None = None) -> None:
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(16)
        self.base = Path(tempfile.mkdtemp(prefix="smallstack-pg-"))
        self.data = self.base / "data"
        self.log_path = self.base / "server.log"
        self.running = False
        # initdb and postgres refuse to run as root: then they run as the postgres user.
        self.run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        options: dict[str, Any] = {}
        if self.run_as is not None:
            options = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid}
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
            check=False,
            **options,
        )

    def _checked(self, *args: str) -> str:
        completed = self._run(*args)
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({completed.returncode}):\n"
                f"{completed.stdout}{completed.stderr}\n{self.log()}"
            )
        return completed.stdout

    def start(self) -> PostgresServer:
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        if self.run_as is not None:
            for path in (self.base, password_file):
                os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)
        self._checked(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        password_file.unlink()
        # Throwaway data: durability off for speed. Sockets in the base directory, not /run.
        server_options = (
            f"-h {self.host} -p {self.port} -k {self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._checked(
            "pg_ctl",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log_path),
            "--options",
            server_options,
            "--wait",
            "--timeout",
            "60",
            "start",
        )
        self.running = True
        atexit.register(self.stop)  # even if the session ends without the fixture's teardown
        return self

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "--pgdata", str(self.data), "--mode", "fast", "--wait", "stop")
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str = "") -> str:
        return f"postgres://{user}:{password or self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", **options: Any):
        """A psycopg connection to ``database`` as the superuser (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=database,
            autocommit=True,
            **options,
        )

    def create_database(self, name: str | None = None, owner: str = SUPERUSER) -> str:
        """A new empty database; its URL."""
        name = name or f"test_{secrets.token_hex(4)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
