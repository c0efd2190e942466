"""Backups on a real PostgreSQL server (the ``postgres_server`` fixture, tests/postgres.py):
``manage.py backup`` through pg_dump while a writer commits rows, ``restore`` into a fresh
database and over the original one, a pg_dump that fails, and the password kept off the
command line. The commands run as a user runs them, in their own processes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from smallstack.backups import files, postgres
from tests.servers import run_manage


def environment(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "SMALLSTACK_DATA_DIR": str(tmp_path / "data"),
        "BACKUP_DIR": str(tmp_path / "backups"),
    }


def manage(environ: dict[str, str], *args: str) -> str:
    completed = run_manage(environ, *args)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def counts(server, database: str) -> dict[str, int]:
    with server.connect(database) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


class Writer(threading.Thread):
    """Commits one ``probe`` row per transaction until stopped, noting when each committed."""

    def __init__(self, server, database: str) -> None:
        super().__init__(daemon=True)
        self.conn = server.connect(database)
        self.commits: list[float] = []
        self.halt = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.conn.execute("INSERT INTO probe (payload) VALUES (md5(random()::text))")
                self.commits.append(time.time())
        except Exception as exc:
            self.error = exc
        finally:
            self.conn.close()


def test_round_trip_while_rows_are_written(postgres_server, postgres_url, tmp_path):
    source = database_of(postgres_url)
    environ = environment(postgres_url, tmp_path)
    manage(environ, "migrate", "--noinput", "-v0")
    with postgres_server.connect(source) as conn:
        conn.execute("CREATE TABLE probe (id bigserial PRIMARY KEY, payload text NOT NULL)")
        # Enough data that pg_dump takes a while, so rows are committed during the dump.
        conn.execute(
            "CREATE TABLE ballast AS SELECT g AS id, repeat(md5(g::text), 12) AS data "
            "FROM generate_series(1, 150000) AS g"
        )
    writer = Writer(postgres_server, source)
    writer.start()
    try:
        while len(writer.commits) < 50:
            time.sleep(0.01)
        before = len(writer.commits)
        out = manage(environ, "backup")
    finally:
        writer.halt.set()
        writer.join(10)
    assert writer.error is None, writer.error
    total = len(writer.commits)

    with postgres_server.connect(source) as conn:
        [(name, status, size, sha256, vendor, started, duration)] = conn.execute(
            "SELECT file_name, status, size, sha256, vendor, created_at, duration "
            "FROM backups_backuprecord"
        ).fetchall()
    path = tmp_path / "backups" / name
    assert status == "ok" and vendor == "postgresql" and name.endswith(".pgdump")
    assert str(path) in out and path.read_bytes()[:5] == b"PGDMP"
    assert path.stat().st_size == size and files.sha256_of(path) == sha256
    assert sorted(os.listdir(tmp_path / "backups")) == [name]
    # The site kept writing while pg_dump ran.
    start = started.timestamp()
    during = [t for t in writer.commits if start <= t <= start + duration]
    assert during, f"no row was committed during the {duration:.2f} s dump"

    # A fresh database: no record of the file there, so it is restored unverified.
    fresh_url = postgres_server.create_database(f"{source}_fresh")
    fresh = environment(fresh_url, tmp_path)
    refused = run_manage(fresh, "restore", name)
    assert refused.returncode != 0 and "--no-verify" in refused.stderr
    restored = manage(fresh, "restore", name, "--no-verify")
    assert "not verified" in restored and f"{source}_fresh on 127.0.0.1" in restored
    now = counts(postgres_server, source)
    copied = counts(postgres_server, f"{source}_fresh")
    assert set(copied) == set(now)
    for table in set(now) - {"probe", "backups_backuprecord"}:
        assert copied[table] == now[table], table
    assert copied["ballast"] == 150000 and copied["backups_backuprecord"] == 0
    # One snapshot: every row committed before the backup, then a gapless run of rows.
    with postgres_server.connect(f"{source}_fresh") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM probe ORDER BY id")]
    assert before <= len(ids) <= total and ids == list(range(1, len(ids) + 1))

    # Over the original: refused without --force, then verified against its record.
    again = run_manage(environ, "restore", name)
    assert again.returncode != 0 and "--force" in again.stderr
    forced = manage(environ, "restore", name, "--force")
    assert "SHA-256 verified against its record" in forced
    assert "The 1 backup records the database had before were kept." in forced
    after = counts(postgres_server, source)
    assert after["probe"] == len(ids) < total  # rows written after the dump are gone
    assert after["backups_backuprecord"] == 1


def test_a_failing_pg_dump_is_recorded_and_leaves_no_file(postgres_server, postgres_url, tmp_path):
    database = database_of(postgres_url)
    role = f"limited_{database}"
    with postgres_server.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO {role}')
    url = postgres_server.url(database, user=role, password=f"pw-{role}")
    environ = environment(url, tmp_path)
    manage(environ, "migrate", "--noinput", "-v0")
    with postgres_server.connect(database) as conn:  # a table this role may not read
        conn.execute("CREATE TABLE secret (x int)")
        conn.execute("REVOKE ALL ON secret FROM PUBLIC")
    try:
        failed = run_manage(environ, "backup")
        assert failed.returncode == 1
        assert "backup failed: pg_dump exited with status 1" in failed.stderr
        assert "permission denied" in failed.stderr
        with postgres_server.connect(database) as conn:
            [(status, name, error)] = conn.execute(
                "SELECT status, file_name, error FROM backups_backuprecord"
            ).fetchall()
        assert status == "error" and name == "" and "permission denied" in error
        assert os.listdir(tmp_path / "backups") == []
    finally:
        postgres_server.drop_database(database)
        with postgres_server.connect() as conn:
            conn.execute(f"DROP ROLE {role}")


def test_the_password_goes_in_the_environment_not_the_arguments(postgres_server):
    # postgres_server: the PostgreSQL binaries are installed, pg_dump among them.
    settings_dict = {
        "NAME": "app",
        "USER": "someone",
        "PASSWORD": "s3cret-value",
        "HOST": "db.internal",
        "PORT": 6543,
        "OPTIONS": {"sslmode": "require"},
    }
    args, env = postgres.command("pg_dump", settings_dict, "--format=custom")
    assert not any("s3cret-value" in a for a in args)
    assert env["PGPASSWORD"] == "s3cret-value" and env["PGSSLMODE"] == "require"
    assert args[1:] == [
        "--no-password",
        "--host=db.internal",
        "--port=6543",
        "--username=someone",
        "--dbname=app",
        "--format=custom",
    ]
    assert Path(args[0]).name == "pg_dump"
