"""40 sync ORM widgets on a real PostgreSQL server: connections bounded, and none left held.

A separate process is configured from the environment as production is (``DATABASE_URL``,
``DATABASE_POOL_MAX``, ``SMALLSTACK_THREAD_POOL_SIZE`` through project/settings.py) and evaluates
40 plain-``def`` widgets, each making two queries 0.25 s apart (it holds its connection between
them, as a report would). This process counts that database's sessions in ``pg_stat_activity``
every 10 ms meanwhile, then again once the evaluation is over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer
from tests.servers import ROOT, manage

WIDGETS = 40
HOLD = 0.25

EVALUATE = """
import asyncio, json, sys, time
import django
django.setup()
from django.contrib.auth.models import User
from django.db import connection
from smallstack import dashboard
from smallstack.displays import DashboardWidget
from smallstack.engine import engine

class Report(DashboardWidget):
    timeout = 60

    def __init__(self, index):
        self.key, self.title = f"report-{index}", f"Report {index}"

    def get_data(self):
        users = User.objects.count()
        time.sleep(HOLD)  # between two queries: the thread keeps its connection
        staff = User.objects.filter(is_staff=True).count()
        return {"headline": str(users), "detail": f"{staff} staff"}

registrations = [dashboard.register(Report(i), group="Reports") for i in range(WIDGETS)]
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()
began = time.monotonic()
contexts = asyncio.run(engine.evaluate(registrations))
elapsed = time.monotonic() - began
while engine.in_flight():
    time.sleep(0.01)
pool = connection.pool
print(json.dumps({
    "states": sorted({str(c.state) for c in contexts}),
    "errors": sorted({c.error for c in contexts if c.error}),
    "elapsed": elapsed,
    "pool": pool.get_stats() if pool is not None else None,
    "options": connection.settings_dict["OPTIONS"].get("pool"),
}), flush=True)
sys.stdin.readline()
connection.close_pool()
print(json.dumps({"closed": True}), flush=True)
sys.stdin.readline()
""".replace("HOLD", repr(HOLD)).replace("WIDGETS", str(WIDGETS))


@pytest.fixture(scope="module")
def migrated(postgres_server, tmp_path_factory) -> Iterator[tuple[PostgresServer, str]]:
    """A database of its own on the session's server, with the auth tables and two users;
    (server, URL)."""
    name = f"pool_test_{os.getpid()}"
    url = postgres_server.create_database(name)
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": url,
        "SMALLSTACK_DATA_DIR": str(tmp_path_factory.mktemp("pool")),
    }
    manage(environ, "migrate", "auth", "--noinput", "-v0")
    with postgres_server.connect(name) as conn:
        conn.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) VALUES "
            "('!', false, 'ann', '', '', '', true, true, now()), "
            "('!', false, 'bob', '', '', '', false, true, now())"
        )
    yield postgres_server, name
    postgres_server.drop_database(name)


class Sessions:
    """Counts the sessions on one database every 10 ms, on a thread."""

    def __init__(self, server: PostgresServer, database: str) -> None:
        self.server, self.database = server, database
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self, state: str | None = None) -> int:
        with self.server.connect() as conn:  # the "postgres" database, not counted
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            params: tuple[str, ...] = (self.database,)
            if state is not None:
                query, params = query + " AND state = %s", (*params, state)
            return conn.execute(query, params).fetchone()[0]

    def _run(self) -> None:
        with self.server.connect() as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.database,)
                ).fetchone()
                self.peak = max(self.peak, row[0])
                time.sleep(0.01)

    def __enter__(self) -> Sessions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def evaluate(url: str, tmp_path: Path, **env: str):
    """Start the evaluating process; yields its messages as the test lets it go on."""
    process = subprocess.Popen(
        [sys.executable, "-c", EVALUATE],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": url,
            "SMALLSTACK_DATA_DIR": str(tmp_path),
            **env,
        },
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        while True:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"the process ended: {process.communicate()[1]}")
            yield json.loads(line)
            process.stdin.write("\n")
            process.stdin.flush()
    finally:
        process.kill()
        process.wait()


def test_the_pool_bounds_the_connections_of_40_concurrent_orm_widgets(migrated, tmp_path):
    server, name = migrated
    sessions = Sessions(server, name)
    steps = evaluate(
        server.url(name),
        tmp_path,
        DATABASE_POOL_MAX="5",
        DATABASE_POOL_MIN="0",
        SMALLSTACK_THREAD_POOL_SIZE="40",
    )
    assert next(steps) == {"ready": True}
    assert sessions.count() == 0
    with sessions:
        result = next(steps)
    assert result["states"] == ["ok"], result["errors"]
    assert result["options"] == {"min_size": 0, "max_size": 5}
    # 40 threads, at most 5 connections at any moment; all 5 were used ...
    assert sessions.peak == 5, sessions.peak
    # ... so the widgets took turns: 40 x 0.25 s over 5 connections is at least 2 s.
    assert result["elapsed"] >= WIDGETS * HOLD / 5 * 0.9, result["elapsed"]
    # Afterwards every connection is back in the pool, idle (none held by a thread) ...
    stats = result["pool"]
    assert stats["pool_available"] == stats["pool_size"] <= 5, stats
    assert stats.get("requests_waiting", 0) == 0, stats
    assert sessions.count() == sessions.count("idle") <= 5
    # ... and closing the pool leaves none open.
    assert next(steps) == {"closed": True}
    assert sessions.count() == 0


def test_without_the_pool_each_pool_thread_holds_one_connection_and_closes_it(migrated, tmp_path):
    server, name = migrated
    sessions = Sessions(server, name)
    steps = evaluate(server.url(name), tmp_path, SMALLSTACK_THREAD_POOL_SIZE="8")
    assert next(steps) == {"ready": True}
    with sessions:
        result = next(steps)
    assert result["states"] == ["ok"], result["errors"]
    assert result["pool"] is None and result["options"] is None
    # One connection per busy widget thread: never more than the engine's 8 threads ...
    assert sessions.peak == 8, sessions.peak
    # ... and each thread closed its connection after its widget: none left open.
    assert sessions.count() == 0
