"""One evaluation across the fleet, measured: 4 uvicorn workers sharing a real Redis, 50 pollers.

Widgets with ``cache_ttl=5`` (a plain ``def`` and an ``async def``, 0.2 s each) are polled without
pause for 12 s through the API by 50 clients spread over the 4 worker processes. Each evaluation
is written to a file by the widget itself. With the shared cache and the evaluation lock, each
widget runs about once per 5 s in all (3 times in 12 s), never twice at once; each worker alone
would make that 4 times as many.
"""

from __future__ import annotations

import time

import pytest
import redis as redis_py

from tests import fleet
from tests.conftest import require_binary, wait_until
from tests.servers import LiveServer, create_api_key, prepare_data_dir
from tests.test_live_redis import RedisServer

pytestmark = pytest.mark.redis

WORKERS, POLLERS, SECONDS, TTL = 4, 50, 12.0, 5.0


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    server = RedisServer(require_binary("redis-server"), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


def test_four_workers_evaluate_a_cache_ttl_widget_once_per_ttl_in_all(tmp_path, redis):
    run = fleet.run(
        tmp_path, workers=WORKERS, pollers=POLLERS, seconds=SECONDS, REDIS_URL=redis.url
    )
    assert run.statuses == {200: run.polls}, run.log
    assert run.polls > 500, f"only {run.polls} polls in {SECONDS:g} s"
    # The pollers reached every worker.
    assert len(run.answered_by) == WORKERS, run.answered_by
    for key in fleet.COUNTED:
        evaluations = run.evaluations[key]
        # Every poll got the widget's data: none waited past its deadline or failed.
        assert set(run.states[key]) == {"ok"}, (key, run.states[key])
        # Once per 5 s in total: 12 s hold at most 3 starts 5.2 s apart, not 4 workers x 3.
        assert 2 <= len(evaluations) <= SECONDS // TTL + 1, (key, evaluations)
        assert all(gap >= TTL - 0.3 for gap in run.gaps(key)), (key, run.gaps(key))
        assert run.overlaps(key) == 0, (key, evaluations)
    assert "Traceback" not in run.log, run.log
    print(
        f"\n{run.polls} polls by {POLLERS} clients in {SECONDS:g} s on {WORKERS} workers; "
        + "; ".join(
            f"{key}: {len(run.evaluations[key])} evaluations by "
            f"{sorted({pid for pid, _, _ in run.evaluations[key]})}, gaps "
            + ", ".join(f"{gap:.2f}" for gap in run.gaps(key))
            for key in fleet.COUNTED
        )
    )


def test_with_redis_stopped_pages_and_the_api_still_answer(tmp_path):
    """A real server with ``REDIS_URL``, its Redis stopped: cards are evaluated without the cache,
    one error line says so, and once Redis is back the cache is used again."""
    redis = RedisServer(require_binary("redis-server"), tmp_path).start()
    environ = prepare_data_dir(
        tmp_path / "data",
        DJANGO_SETTINGS_MODULE="tests.fleet_settings",
        REDIS_URL=redis.url,
        SMALLSTACK_FLEET_CALLS=str(tmp_path / "calls.txt"),
        SMALLSTACK_FLEET_SLEEP="0.05",
    )
    auth = {"Authorization": f"Bearer {create_api_key(environ, 'redis-down')}"}
    server = LiveServer(environ).start()
    try:
        client = server.login()
        assert client.get("/smallstack/?wait=1").status_code == 200
        # One cache backend for the process: requests do not each open a Redis connection (as
        # Django's caches[alias], an instance per request, would).
        stats = redis_py.Redis.from_url(redis.url)
        before = stats.info("stats")["total_connections_received"]
        for _ in range(20):
            assert client.get(fleet.GROUP_URL, headers=auth).status_code == 200
        opened = stats.info("stats")["total_connections_received"] - before
        assert opened <= 3, f"{opened} new Redis connections for 20 requests"
        redis.stop()
        for _ in range(3):
            page = client.get("/smallstack/?wait=1")
            assert page.status_code == 200, server.log()
            api = client.get(fleet.GROUP_URL, headers=auth)
            assert api.status_code == 200, server.log()
            states = {item["key"]: item["state"] for item in api.json()["widgets"]}
            assert set(states.values()) == {"ok"}, states
        # The Status card calls that degraded (the cache and channel-layer checks warn), not
        # down: the monitoring summary stays 200.
        status = client.get("/api/dashboard/status/?app=heartbeat", headers=auth)
        assert status.status_code == 200, status.text
        assert status.json()["statuses"] == {"warning": 1}, status.text
        log = server.log()
        assert log.count("Dashboard cache unavailable") == 1, log
        redis.start()
        time.sleep(5.5)  # RETRY_AFTER
        assert client.get(fleet.GROUP_URL, headers=auth).status_code == 200
        assert wait_until(lambda: "Dashboard cache available again" in server.log())
    finally:
        server.stop()
        redis.stop()
    assert "Traceback" not in server.log(), server.log()
