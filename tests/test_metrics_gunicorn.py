"""GET /api/metrics under the shipped gunicorn configuration: 2 uvicorn workers, a real Redis.

deploy/gunicorn.conf.py puts the workers in prometheus-client's multiprocess mode, so one
scrape, answered by whichever worker, reports the sums over both: evaluations made by either
worker, sockets held by either. A worker that dies leaves its counters in the sums and takes
its live gauges with it; the directory is emptied at start and, when the configuration made
it, removed at exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests import deploy_servers
from tests.deploy_servers import GunicornServer, login, open_deploy_socket, session_headers
from tests.servers import ROOT, create_api_key
from tests.test_metrics import Scrape

pytestmark = pytest.mark.redis

redis_url = deploy_servers.redis_url
deploy_site = deploy_servers.deploy_site
gunicorn_server = deploy_servers.gunicorn_server

WORKER = {"key": "deploy-worker", "group": "Deploy", "app": "deployapp"}


@pytest.fixture(scope="module")
def api_key(deploy_site) -> str:
    return create_api_key(deploy_site.environ, "metrics")


def scrape(server: GunicornServer, key: str) -> Scrape:
    """One scrape on a new connection (the kernel picks the worker that answers)."""
    response = httpx.get(
        f"{server.url}/api/metrics",
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(response.text)


def evaluations(result: Scrape) -> float:
    return result.get("smallstack_widget_evaluations_total", **WORKER) or 0


def metrics_dir(server: GunicornServer) -> Path:
    match = re.search(r"SmallStack: worker metrics in (\S+)", server.log())
    assert match, server.log()
    return Path(match.group(1))


def test_one_scrape_reports_the_evaluations_of_both_workers(gunicorn_server, api_key):
    server = gunicorn_server
    before = evaluations(scrape(server, api_key))  # that scrape evaluated it once too
    # deploy-worker is never cached: each request evaluates it in the worker that answers, which
    # it names. New connections until both workers have answered (and at least 20).
    pids: list[int] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while len(pids) < 20 or len(set(pids)) < 2:
            assert len(pids) < 300, f"requests never reached both workers: {set(pids)}"
            response = client.get(
                "/api/dashboard/widgets/deploy-worker/",
                headers={"Authorization": f"Bearer {api_key}", "Connection": "close"},
            )
            assert response.status_code == 200
            pids.append(int(response.json()["data"]["headline"]))
    assert set(pids) == server.worker_pids()

    # Each scrape evaluates it once more, and reports every evaluation so far, whichever
    # worker answers it: the sum over both workers, not one worker's share.
    totals = [evaluations(scrape(server, api_key)) for _ in range(6)]
    assert totals == [before + len(pids) + n for n in range(1, 7)]

    # Both workers have their files in the shared directory; the sums read them all.
    directory = metrics_dir(server)
    assert directory.is_dir()
    if Path("/dev/shm").is_dir():  # a memory file system, as the workers' heartbeat files
        assert directory.parent == Path("/dev/shm")
    counters = {path.name for path in directory.glob("counter_*.db")}
    assert {f"counter_{pid}.db" for pid in server.worker_pids()} <= counters


async def test_open_sockets_are_summed_over_the_workers(gunicorn_server, api_key):
    server = gunicorn_server
    before = await asyncio.to_thread(scrape, server, api_key)
    open_before = before.get("smallstack_live_sockets_open")
    pushes_before = before.get("smallstack_live_pushes_total")
    client = await asyncio.to_thread(login, server.url)
    headers = session_headers(client, server.url)
    url = f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/"
    sockets, by_worker = [], set()
    try:
        for _ in range(20):
            for socket, pid in await asyncio.gather(
                *(open_deploy_socket(url, headers) for _ in range(4))
            ):
                sockets.append(socket)
                by_worker.add(pid)
            if len(by_worker) == 2:
                break
        assert by_worker == server.worker_pids(), "sockets did not reach both workers"
        during = await asyncio.to_thread(scrape, server, api_key)
        assert during.get("smallstack_live_sockets_open") == open_before + len(sockets)
        # Each socket's snapshot sent it one card.
        assert during.get("smallstack_live_pushes_total") == pushes_before + len(sockets)
    finally:
        for socket in sockets:
            await socket.close()
        client.close()
    deadline = time.monotonic() + 10
    while (await asyncio.to_thread(scrape, server, api_key)).get(
        "smallstack_live_sockets_open"
    ) != open_before:
        assert time.monotonic() < deadline, "closed sockets are still counted"
        await asyncio.sleep(0.1)


async def test_a_dead_worker_keeps_its_counters_and_loses_its_live_gauges(deploy_site, api_key):
    server = GunicornServer(deploy_site.environ, workers=2).start()
    try:
        directory = metrics_dir(server)
        assert directory.is_dir()
        client = await asyncio.to_thread(login, server.url)
        headers = session_headers(client, server.url)
        url = f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/"
        socket, pid = await open_deploy_socket(url, headers)  # its snapshot: one evaluation
        result = await asyncio.to_thread(scrape, server, api_key)
        assert result.get("smallstack_live_sockets_open") == 1
        counted = evaluations(result)
        assert counted == 2  # the socket's snapshot and this scrape

        os.kill(pid, signal.SIGKILL)  # no clean exit: the master's child_exit tidies up
        deadline = time.monotonic() + 30
        while pid in server.worker_pids() or len(server.worker_pids()) < 2:
            assert time.monotonic() < deadline, server.log()
            await asyncio.sleep(0.1)
        assert not (directory / f"gauge_livesum_{pid}.db").exists()
        result = await asyncio.to_thread(scrape, server, api_key)
        assert result.get("smallstack_live_sockets_open") == 0
        # The killed worker's evaluations still count (plus this scrape's).
        assert evaluations(result) == counted + 1
        await socket.close()
        client.close()
    finally:
        server.stop()
    # The configuration made that directory: it is gone with the master.
    assert not directory.exists()


def test_an_operator_directory_is_used_and_emptied_at_start(deploy_site, api_key, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    # An earlier run's numbers, written the way a worker writes them.
    earlier = subprocess.run(
        [
            sys.executable,
            "-c",
            "from smallstack import telemetry\n"
            "for _ in range(1000):\n"
            "    telemetry.evaluation_finished('deploy-worker', 'Deploy', 'deployapp', 'ok', 1)\n"
            "telemetry.socket_opened()\n",
        ],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert earlier.returncode == 0, earlier.stderr
    assert list(directory.glob("counter_*.db"))
    keep = directory / "README"
    keep.write_text("not a metrics file")

    server = GunicornServer(
        deploy_site.environ, workers=2, PROMETHEUS_MULTIPROC_DIR=str(directory)
    ).start()
    try:
        assert metrics_dir(server) == directory
        result = scrape(server, api_key)
        assert evaluations(result) == 1  # this scrape's, none of the earlier run's
        assert result.get("smallstack_live_sockets_open") == 0
        written = {path.name for path in directory.glob("*.db")}
        workers = server.worker_pids()
        assert any(f"_{pid}.db" in name for name in written for pid in workers)
        assert all(int(name.rsplit("_", 1)[1][:-3]) in workers for name in written), written
    finally:
        server.stop()
    # The operator's directory stays, with what else was in it.
    assert directory.is_dir() and keep.read_text() == "not a metrics file"
