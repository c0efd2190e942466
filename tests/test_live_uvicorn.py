"""Late cards under real uvicorn: evaluations outlive their request without leaking."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.servers import LiveServer, prepare_data_dir


@pytest.fixture
def server(tmp_path):
    environ = prepare_data_dir(
        tmp_path / "data",
        DJANGO_SETTINGS_MODULE="tests.live_settings",
        SMALLSTACK_LIVE_LATE_SECONDS="0.3",
        SMALLSTACK_RENDER_BUDGET="0.05",
    )
    server = LiveServer(environ).start()
    yield server
    server.stop()


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_late_evaluations_finish_after_the_response_without_leaking_threads(server):
    client = server.login()
    path = "/smallstack/group/Live/"
    started = time.perf_counter()
    page = client.get(path)
    assert time.perf_counter() - started < 0.3
    assert 'data-key="late-card" data-state="pending"' in page.text
    time.sleep(0.6)
    before = _threads(server.process.pid)
    for _ in range(8):
        assert 'data-key="late-card" data-state="pending"' in client.get(path).text
        time.sleep(0.5)  # each evaluation lands after its page was sent
    assert _threads(server.process.pid) - before <= 2
    # Evaluations that outlived their request ended without errors (cache writes included).
    assert "Traceback" not in server.log() and "unavailable" not in server.log(), server.log()
