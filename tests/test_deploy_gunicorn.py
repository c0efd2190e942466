"""deploy/gunicorn.conf.py for real: a gunicorn master with 2 uvicorn workers and a real Redis.

Live push crosses workers, a SIGTERM lets in-flight requests finish, and the request log rows
each worker still buffers reach the database on the way out.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests import deploy_servers, fleet
from tests.deploy_servers import (
    GunicornServer,
    login,
    next_update,
    open_deploy_socket,
    session_headers,
)
from tests.servers import create_api_key

pytestmark = pytest.mark.redis

# Module-scoped fixtures: Redis, the seeded site, one gunicorn for the tests that keep it up.
redis_url = deploy_servers.redis_url
deploy_site = deploy_servers.deploy_site
gunicorn_server = deploy_servers.gunicorn_server


def test_the_shipped_configuration_runs_uvicorn_workers_under_one_master(gunicorn_server):
    log = gunicorn_server.log()
    workers = gunicorn_server.worker_pids()
    assert len(workers) == 2
    assert "Using worker: SmallStackWorker" in log
    assert re.search(rf"2 uvicorn workers on 127\.0\.0\.1:{gunicorn_server.port}", log)
    # Lifespan is off: no "ASGI 'lifespan' protocol appears unsupported" from either worker.
    assert "lifespan" not in log
    assert "Control socket" not in log  # none unless GUNICORN_CONTROL_SOCKET names one

    # The access log line: time, the worker's pid, then uvicorn's client, request and status.
    httpx.get(f"{gunicorn_server.url}/accounts/login/?from=access-log-test")
    deadline = time.monotonic() + 5
    pattern = (
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} \[(\d+)\] 127\.0\.0\.1:\d+ - "
        r'"GET /accounts/login/\?from=access-log-test HTTP/1\.1" 200$'
    )
    while not (match := re.search(pattern, gunicorn_server.log(), re.M)):
        assert time.monotonic() < deadline, gunicorn_server.log()
        time.sleep(0.05)
    assert int(match.group(1)) in workers


def test_an_unhandled_error_is_logged_with_its_traceback(gunicorn_server):
    """With DEBUG off Django logs a server error to "django.request" only; the shipped
    logging configuration sends that to gunicorn's error output, traceback included."""
    response = httpx.get(f"{gunicorn_server.url}/deploy-error/")
    assert response.status_code == 500
    assert "deploy test" not in response.text  # the visitor sees no detail
    deadline = time.monotonic() + 5
    while "RuntimeError: deploy test: an unhandled error" not in gunicorn_server.log():
        assert time.monotonic() < deadline, gunicorn_server.log()
        time.sleep(0.05)
    assert re.search(
        r"\[\d+\] \[ERROR\] django\.request: Internal Server Error: /deploy-error/\n"
        r"Traceback \(most recent call last\):",
        gunicorn_server.log(),
    )


async def test_a_refresh_reaches_sockets_on_both_workers(gunicorn_server, deploy_site):
    server = gunicorn_server
    client = await asyncio.to_thread(login, server.url)
    headers = session_headers(client, server.url)
    url = f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/"

    # The kernel hands each connection to whichever worker accepts first: open sockets a few at
    # a time until one is held by each worker.
    by_worker: dict[int, object] = {}
    spare = []
    for _ in range(20):
        for socket, pid in await asyncio.gather(
            *(open_deploy_socket(url, headers) for _ in range(6))
        ):
            if pid in by_worker:
                spare.append(socket)
            else:
                by_worker[pid] = socket
        if len(by_worker) == 2:
            break
    try:
        assert set(by_worker) == server.worker_pids(), "sockets did not reach both workers"
        first, second = by_worker.values()

        value = f"pushed-{uuid.uuid4().hex[:8]}"
        deploy_site.value_file.write_text(value)
        started = time.monotonic()
        await first.send(json.dumps({"type": "refresh", "key": "deploy-value"}))
        # The requester gets its copy directly; the other worker's socket through Redis.
        await next_update(first, "deploy-value", value, within=5)
        message = await next_update(second, "deploy-value", value, within=5)
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"the push took {elapsed:.2f} s across workers"
        assert f">{value}</p>" in message["html"]
    finally:
        for socket in [*by_worker.values(), *spare]:
            await socket.close()
        client.close()


def _slow_request(url: str, key: str) -> tuple[float, int, str]:
    started = time.monotonic()
    response = httpx.get(
        f"{url}/api/dashboard/widgets/deploy-slow/",
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    detail = response.json()["data"]["detail"] if response.status_code == 200 else response.text
    return time.monotonic() - started, response.status_code, detail


def _refused(url: str) -> bool:
    try:
        httpx.get(f"{url}/health/live/", timeout=1)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        pass
    return False


def test_sigterm_lets_in_flight_requests_finish(deploy_site):
    """SIGTERM to the master 1.5 s into 12 requests of 4 s: every one is answered 200 (none
    cut, none 5xx), new connections are refused meanwhile, and the master exits 0."""
    key = create_api_key(deploy_site.environ, "drain")
    server = GunicornServer(deploy_site.environ, SMALLSTACK_DEPLOY_SLOW_SECONDS="4").start()
    workers = server.worker_pids()
    try:
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(_slow_request, server.url, key) for _ in range(12)]
            time.sleep(1.5)
            signalled = time.monotonic()
            server.terminate()
            # The listening socket closes at once, while the requests are still running.
            while not _refused(server.url):
                assert time.monotonic() - signalled < 2.0, "still accepting after SIGTERM"
                time.sleep(0.05)
            assert not any(future.done() for future in futures)
            results = [future.result() for future in futures]
        exit_code = server.wait(30)
        stopped_after = time.monotonic() - signalled
    finally:
        server.stop()

    assert [status for _, status, _ in results] == [200] * 12, results
    # Answered after the SIGTERM, not cut short.
    assert min(elapsed for elapsed, _, _ in results) >= 3.9, results
    served_by = {int(detail.rsplit(" ", 1)[1]) for _, _, detail in results}
    assert served_by <= workers
    assert exit_code == 0, server.log()
    assert stopped_after < 20, f"stopping took {stopped_after:.1f} s"
    assert "Traceback" not in server.log()


def test_request_log_rows_buffered_at_sigterm_reach_the_database(deploy_site):
    """With the request log written every 300 s, rows of requests answered just before the
    SIGTERM are still in memory when it arrives; every one is in the database afterwards."""
    server = GunicornServer(deploy_site.environ).start()
    prefix = f"/deploy-probe/{uuid.uuid4().hex[:8]}/"
    try:
        paths = [f"{prefix}{index:02d}/" for index in range(40)]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(lambda path: httpx.get(f"{server.url}{path}").status_code, paths)
            )
        assert statuses == [404] * 40
        assert deploy_site.request_log_paths(prefix) == []  # buffered, not written yet

        server.terminate()
        exit_code = server.wait(30)
        log = server.log()
    finally:
        server.stop()

    assert exit_code == 0, log
    assert deploy_site.request_log_paths(prefix) == paths
    # Both workers answered some of them, so both wrote on their way out.
    answered_by = set(re.findall(rf'\[(\d+)\] 127\.0\.0\.1:\d+ - "GET {prefix}', log))
    assert len(answered_by) == 2, log


def test_the_fleet_evaluates_a_cache_ttl_widget_once_per_ttl_under_gunicorn(tmp_path, redis_url):
    """The shipped configuration, 2 workers sharing Redis, 30 pollers for 12 s: each
    ``cache_ttl=5`` widget runs about once per 5 s in all, never twice at once."""
    seconds, ttl = 12.0, 5.0
    run = fleet.run(
        tmp_path,
        workers=2,
        pollers=30,
        seconds=seconds,
        serve=lambda environ, workers: GunicornServer(environ, workers=workers),
        REDIS_URL=redis_url,
    )
    assert run.statuses == {200: run.polls}, run.log
    assert len(run.answered_by) == 2, run.answered_by
    for key in fleet.COUNTED:
        evaluations = run.evaluations[key]
        assert set(run.states[key]) == {"ok"}, (key, run.states[key])
        assert 2 <= len(evaluations) <= seconds // ttl + 1, (key, evaluations)
        assert all(gap >= ttl - 0.3 for gap in run.gaps(key)), (key, run.gaps(key))
        assert run.overlaps(key) == 0, (key, evaluations)
