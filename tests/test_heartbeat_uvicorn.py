"""Status end to end: the health endpoints under real uvicorn (healthy, without a usable
database, without Redis) and ``manage.py heartbeat --loop`` as a service stopped by a signal."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.servers import ROOT, LiveServer, free_port, prepare_data_dir


def test_health_endpoints_on_a_healthy_server(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        live = client.get("/health/live/")
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        assert "set-cookie" not in live.headers
        ready = client.get("/health/ready/", headers={"Host": "10.1.2.3"})  # a probe by IP
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"]["status"] == "ok"
        assert "set-cookie" not in ready.headers
        # The rest of the site still goes through the whole stack (a CSRF cookie here).
        assert "set-cookie" in client.get("/accounts/login/").headers
        started = time.perf_counter()
        for _ in range(50):
            assert client.get("/health/ready/").status_code == 200
        assert (time.perf_counter() - started) / 50 < 0.05  # cheap enough to poll every second


def test_without_a_usable_database_live_answers_and_ready_names_it(tmp_path):
    environ = prepare_data_dir(tmp_path / "data")
    database = Path(environ["SMALLSTACK_DATA_DIR"]) / "db.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.mkdir()  # a directory where the database file should be: it cannot be opened
    server = LiveServer(environ).start()
    try:
        live = httpx.get(f"{server.url}/health/live/", timeout=10)
        assert live.status_code == 200 and "set-cookie" not in live.headers
        ready = httpx.get(f"{server.url}/health/ready/", timeout=10)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "error" and body["failed"] == ["database"]
        assert body["checks"]["database"]["message"].startswith("OperationalError")
        assert "Traceback" not in ready.text
    finally:
        server.stop()


def test_with_an_unreachable_redis_ready_names_it(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    environ = prepare_data_dir(tmp_path / "data", REDIS_URL=url)
    server = LiveServer(environ).start()
    try:
        started = time.perf_counter()
        ready = httpx.get(f"{server.url}/health/ready/", timeout=10)
        assert time.perf_counter() - started < 3  # READY_TIMEOUT, not a hang
        assert ready.status_code == 503
        body = ready.json()
        assert body["failed"] == ["redis"] and body["checks"]["database"]["status"] == "ok"
        assert httpx.get(f"{server.url}/health/live/", timeout=10).status_code == 200
    finally:
        server.stop()


def _beats(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return conn.execute(
            "SELECT created_at, status FROM heartbeat_heartbeat ORDER BY created_at"
        ).fetchall()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_heartbeat_loop_records_beats_and_stops_cleanly_on_a_signal(tmp_path, signum):
    environ = prepare_data_dir(tmp_path / "data")
    database = Path(environ["SMALLSTACK_DATA_DIR"]) / "db.sqlite3"
    before = len(_beats(database))
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "heartbeat", "--loop", "0.3"],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(_beats(database)) - before >= 3, timeout=20)
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "heartbeat stopped" in out and "Traceback" not in err
    rows = _beats(database)[before:]
    assert len(rows) >= 3 and {status for _, status in rows} == {"ok"}
    time.sleep(0.6)
    assert len(_beats(database)) - before == len(rows)  # nothing after the stop
