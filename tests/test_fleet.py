"""Processes sharing a real Redis as the dashboard cache: one evaluation at a time, shared results
and change fingerprints, and a Redis that is down or a process that dies.

"Another process" is a real one: a Python process with the test settings, ``REDIS_URL`` and the
same widget (tests/fleetapp/widgets.py), which records every evaluation it starts and finishes in
files, with its pid. This process points its cache and lock at the same Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_py

from project import services
from smallstack import locks
from smallstack.contract import State
from smallstack.engine import (
    BREAKER_PREFIX,
    EVALUATION_LOCK_PREFIX,
    cache_breaker,
    engine,
    lock_breaker,
)
from smallstack.live import publish
from tests.conftest import require_binary, wait_until
from tests.fleetapp.widgets import Counted, CountedAsync, calls
from tests.servers import ROOT, free_port
from tests.test_live_redis import RedisServer

pytestmark = pytest.mark.redis

KINDS = {"sync": Counted, "async": CountedAsync}

OTHER_PROCESS = """
import asyncio, json, sys
import django
django.setup()
from smallstack import dashboard
from smallstack.engine import engine
from smallstack.live import publish
from tests.fleetapp.widgets import Counted, CountedAsync

kind, key, timeout, then = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
widget = {"sync": Counted, "async": CountedAsync}[kind](key=key, timeout=timeout)
registration = dashboard.register(widget, group="Fleet test")

async def main():
    [context] = await engine.evaluate([registration])
    pushed = await publish(context) if then == "publish" else None
    # Live on until the result is stored and the lock released, as a server would.
    while engine.in_flight():
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    return {
        "state": str(context.state),
        "data": context.data,
        "error": context.error,
        "breaker": context.breaker,
        "pushed": pushed,
    }

print(json.dumps(asyncio.run(main())), flush=True)
"""


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(require_binary("redis-server"), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def shared(settings, redis_server, tmp_path, monkeypatch) -> Path:
    """This process's dashboard cache and locks in the test's Redis (emptied); the calls file."""
    if redis_server.process is None:
        redis_server.start()
    redis_py.Redis.from_url(redis_server.url).flushall()
    settings.CACHES = {"default": services.cache("", redis_server.url)}
    settings.SMALLSTACK_DASHBOARD = {
        **settings.SMALLSTACK_DASHBOARD,
        "LOCK_URL": redis_server.url,
        "RETRY_AFTER": 0.5,
    }
    calls_path = tmp_path / "calls.txt"
    monkeypatch.setenv("SMALLSTACK_FLEET_CALLS", str(calls_path))
    monkeypatch.setenv("SMALLSTACK_FLEET_SLEEP", "0.05")
    return calls_path


def other_process(
    redis_url: str, calls_path: Path, kind: str, key: str, timeout: float, then: str = "-", **env
) -> subprocess.Popen[str]:
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": redis_url,
        "SMALLSTACK_FLEET_CALLS": str(calls_path),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, kind, key, str(timeout), then],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def settled() -> bool:
    """Wait until this process has no evaluation in flight (results stored, locks released)."""
    return await asyncio.to_thread(wait_until, lambda: engine.in_flight() == 0)


def started_by(calls_path: Path, pid: int) -> bool:
    path = Path(f"{calls_path}.started")
    return path.exists() and f" {pid} " in path.read_text()


def finished(process: subprocess.Popen[str]) -> dict:
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_result_another_process_is_computing_is_awaited_not_computed_again(
    shared, redis_server, register, kind
):
    key = f"fleet-wait-{kind}"
    other = other_process(redis_server.url, shared, kind, key, 5, SMALLSTACK_FLEET_SLEEP="1.5")
    assert wait_until(lambda: started_by(shared, other.pid), timeout=20), other.stderr
    registration = register(KINDS[kind](key=key, timeout=5))

    began = time.monotonic()
    [context] = await engine.evaluate([registration])
    waited = time.monotonic() - began

    theirs = finished(other)
    assert theirs["state"] == "ok" and theirs["data"]["headline"] == str(other.pid)
    # This process waited for the other's evaluation and shows its result, marked cached ...
    assert context.state == State.OK and context.cached
    assert context.data["headline"] == str(other.pid)
    assert 0.3 < waited < 5
    # ... and never ran the widget: one evaluation in all.
    assert [(pid) for _, pid, _, _ in calls(shared, key)] == [other.pid]
    # The holder released its lock once the result was stored.
    client = redis_py.Redis.from_url(redis_server.url)
    assert client.exists(f"{EVALUATION_LOCK_PREFIX}{engine.cache_key(key, False)}") == 0

    # Within cache_ttl the shared result is served from the cache, here as there.
    [again] = await engine.evaluate([registration])
    assert again.cached and again.data["headline"] == str(other.pid)
    assert len(calls(shared, key)) == 1


async def test_a_lock_left_by_a_killed_process_expires_and_this_process_evaluates(
    shared, redis_server, register
):
    key = "fleet-killed"
    # The other process takes the lock for its 2 s deadline, then dies mid-evaluation.
    other = other_process(redis_server.url, shared, "sync", key, 2, SMALLSTACK_FLEET_SLEEP="60")
    assert wait_until(lambda: started_by(shared, other.pid), timeout=20), other.stderr
    os.kill(other.pid, signal.SIGKILL)
    other.wait(10)
    lock_key = f"{EVALUATION_LOCK_PREFIX}{engine.cache_key(key, False)}"
    client = redis_py.Redis.from_url(redis_server.url)
    left = client.pttl(lock_key) / 1000
    assert 0.5 < left <= 2.0, "the dead process's lock should still be there"

    registration = register(Counted(key=key, timeout=4))
    began = time.monotonic()
    [context] = await engine.evaluate([registration])
    waited = time.monotonic() - began

    # It waited for the dead holder's lock to expire, then evaluated itself in time.
    assert context.state == State.OK and not context.cached
    assert context.data["headline"] == str(os.getpid())
    assert waited >= left - 0.2
    assert [pid for _, pid, _, _ in calls(shared, key)] == [os.getpid()]


async def test_when_the_holder_fails_a_waiting_process_evaluates_itself(
    shared, redis_server, register
):
    key = "fleet-fails"
    other = other_process(
        redis_server.url,
        shared,
        "sync",
        key,
        5,
        SMALLSTACK_FLEET_SLEEP="0.8",
        SMALLSTACK_FLEET_FAIL="1",
    )
    assert wait_until(lambda: started_by(shared, other.pid), timeout=20), other.stderr
    registration = register(Counted(key=key, timeout=5))
    [context] = await engine.evaluate([registration])

    theirs = finished(other)
    assert theirs["state"] == "error"
    # No result was stored: once the failed holder let go, this process took its turn.
    assert context.state == State.OK and context.data["headline"] == str(os.getpid())
    rows = calls(shared, key)
    assert [pid for _, pid, _, _ in rows] == [other.pid, os.getpid()]
    assert rows[1][2] >= rows[0][3] - 0.01  # one after the other, never at once


async def test_a_paused_widget_is_paused_for_every_process(
    shared, redis_server, register, monkeypatch
):
    key = "fleet-breaker"
    monkeypatch.setenv("SMALLSTACK_FLEET_FAIL", "1")
    registration = register(Counted(key=key, timeout=5))
    for _ in range(5):
        [context] = await engine.evaluate([registration])
        assert context.state == State.ERROR and context.breaker is None
        assert await settled()
    [paused] = await engine.evaluate([registration])
    assert paused.breaker is not None
    client = redis_py.Redis.from_url(redis_server.url)
    assert wait_until(lambda: bool(client.keys(f"*{BREAKER_PREFIX}{key}")))

    # Another process never evaluated the widget, yet it finds it paused and does not call it.
    other = other_process(redis_server.url, shared, "sync", key, 5, SMALLSTACK_FLEET_FAIL="1")
    theirs = finished(other)
    assert theirs["state"] == "error"
    assert theirs["error"].startswith("paused after 5 failures, next try in ")
    assert theirs["breaker"]["failures"] == 5
    assert [pid for _, pid, _, _ in calls(shared, key)] == [os.getpid()] * 5


async def test_change_fingerprints_are_shared_by_the_processes(shared, redis_server, register):
    key = "fleet-fingerprint"
    other = other_process(redis_server.url, shared, "async", key, 5, "publish")
    theirs = finished(other)
    assert theirs["pushed"] is True  # the first push of this card anywhere

    # Registered as there, so the card is the same.
    registration = register(CountedAsync(key=key, timeout=5), group="Fleet test")
    [context] = await engine.evaluate([registration])  # the other's result, within cache_ttl
    assert context.cached and context.data["headline"] == str(other.pid)
    # The other process pushed exactly this card: this process knows, so it pushes nothing.
    assert await publish(context) is False
    assert await publish(context, force=True) is True


async def test_with_redis_stopped_cards_are_evaluated_without_it_logged_once(
    shared, redis_server, register, caplog
):
    caplog.set_level(logging.DEBUG, logger="smallstack")
    registration = register(Counted(key="fleet-redis-down", timeout=2))
    redis_server.stop()
    try:
        for _ in range(3):
            began = time.monotonic()
            [context] = await engine.evaluate([registration])
            assert context.state == State.OK and not context.cached
            assert time.monotonic() - began < 1.0
            assert await settled()
        # Evaluated each time (nothing to share it through), and one error line for it all.
        assert len(calls(shared, "fleet-redis-down")) == 3
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "Dashboard cache unavailable" in errors[0].getMessage()
        assert errors[0].exc_info is None  # an outage, not a bug: no traceback
    finally:
        redis_server.start()

    # Redis is back: after RETRY_AFTER the cache is used again (and that is logged).
    await asyncio.sleep(0.6)
    [context] = await engine.evaluate([registration])
    assert context.state == State.OK and await settled()
    [cached] = await engine.evaluate([registration])
    assert cached.cached and len(calls(shared, "fleet-redis-down")) == 4
    assert any("cache available again" in r.getMessage() for r in caplog.records)
    assert not cache_breaker.down and not lock_breaker.down
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_a_lock_redis_that_is_down_is_skipped_logged_once(shared, settings, register, caplog):
    settings.SMALLSTACK_DASHBOARD = {
        **settings.SMALLSTACK_DASHBOARD,
        "LOCK_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    }
    registration = register(Counted(key="fleet-lock-down", timeout=2))
    [context] = await engine.evaluate([registration])
    assert context.state == State.OK and await settled()
    [cached] = await engine.evaluate([registration])  # the cache works: its result is reused
    assert cached.cached and len(calls(shared, "fleet-lock-down")) == 1
    assert lock_breaker.down
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "Dashboard lock unavailable" in errors[0], errors


async def test_locks_are_released_only_by_their_holder(redis_server):
    for lock in (locks.LocalLock(), locks.RedisLock(redis_server.url, "smallstack:test-lock:")):
        assert await lock.acquire("x", 5, "mine") == 0
        assert 4 < await lock.acquire("x", 5, "theirs") <= 5
        assert not await lock.release("x", "theirs")
        assert 4 < await lock.remaining("x") <= 5
        assert await lock.release("x", "mine")
        assert await lock.remaining("x") == 0
        assert await lock.acquire("x", 0.05, "theirs") == 0
        await asyncio.sleep(0.1)  # expired by itself
        assert await lock.remaining("x") == 0
        await lock.close()
