"""Several uvicorn workers sharing one Redis, polled hard: how often did each widget really run?

:func:`run` serves ``tests.fleet_settings`` (the counted widgets of tests/fleetapp in the "Fleet"
group) with ``uvicorn --workers N`` over a fresh SQLite database, waits until every worker has
answered, then has ``pollers`` API clients ask for the group without pause for ``seconds``. The
widgets append each evaluation to a file; the result says how many there were, by which
processes, and what the pollers saw. Used by tests/test_fleet_uvicorn.py and
``python -m benchmarks.fleet``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fleetapp.widgets import calls
from tests.servers import LiveServer, create_api_key, prepare_data_dir

GROUP_URL = "/api/dashboard/widgets/?group=Fleet"
COUNTED = ("fleet-counted", "fleet-counted-async")


@dataclass
class FleetRun:
    """What one run measured."""

    workers: int
    pollers: int
    seconds: float
    polls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    #: Per counted widget: the states the pollers got (ok, timeout, error).
    states: dict[str, Counter[str]] = field(default_factory=dict)
    #: Processes that answered during the run (the uncached "fleet-pid" widget).
    answered_by: set[int] = field(default_factory=set)
    #: Per counted widget: (pid, started, ended) of each evaluation that started in the run.
    evaluations: dict[str, list[tuple[int, float, float]]] = field(default_factory=dict)
    log: str = ""

    def gaps(self, key: str) -> list[float]:
        """Seconds between the starts of consecutive evaluations of ``key``."""
        starts = [started for _, started, _ in self.evaluations[key]]
        return [b - a for a, b in itertools.pairwise(starts)]

    def overlaps(self, key: str) -> int:
        """How many evaluations of ``key`` started before the previous one had ended."""
        rows = self.evaluations[key]
        return sum(1 for a, b in itertools.pairwise(rows) if b[1] < a[2])


#: Polls per connection: new connections keep landing on every worker.
POLLS_PER_CONNECTION = 10


async def _poll(url: str, headers: dict[str, str], until: float, run: FleetRun) -> None:
    while time.monotonic() < until:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            for _ in range(POLLS_PER_CONNECTION):
                if time.monotonic() >= until:
                    return
                response = await client.get(GROUP_URL)
                run.polls += 1
                run.statuses[response.status_code] += 1
                if response.status_code != 200:
                    continue
                for item in response.json()["widgets"]:
                    if item["key"] == "fleet-pid":
                        run.answered_by.add(int(item["data"]["headline"]))
                    elif item["key"] in run.states:
                        run.states[item["key"]][item["state"]] += 1


def _uvicorn(environ: dict[str, str], workers: int) -> LiveServer:
    return LiveServer(environ, workers=workers)


def _wait_for_workers(server: Any, headers: dict[str, str], workers: int) -> set[int]:
    """Poll with fresh connections until ``workers`` processes answered (or 60 s)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while len(seen) < workers and time.monotonic() < deadline:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            for item in client.get(GROUP_URL).json()["widgets"]:
                if item["key"] == "fleet-pid":
                    seen.add(int(item["data"]["headline"]))
    return seen


def run(
    data_dir: Path,
    *,
    workers: int = 4,
    pollers: int = 50,
    seconds: float = 12.0,
    serve: Callable[[dict[str, str], int], Any] | None = None,
    **env: str,
) -> FleetRun:
    """Serve the Fleet group with ``workers`` processes and poll it; ``env``: e.g. REDIS_URL.

    ``serve(environ, workers)`` makes the server (``uvicorn --workers`` by default; the gunicorn
    tests pass the shipped configuration's).
    """
    calls_path = data_dir / "calls.txt"
    environ = prepare_data_dir(
        data_dir / "data",
        DJANGO_SETTINGS_MODULE="tests.fleet_settings",
        SMALLSTACK_FLEET_CALLS=str(calls_path),
        **env,
    )
    headers = {"Authorization": f"Bearer {create_api_key(environ, 'fleet')}"}
    server = (serve or _uvicorn)(environ, workers).start(timeout=60)
    result = FleetRun(workers, pollers, seconds)
    result.states = {key: Counter() for key in COUNTED}
    try:
        started_workers = _wait_for_workers(server, headers, workers)
        assert len(started_workers) == workers, f"only {started_workers} answered"
        begin = time.time()
        until = time.monotonic() + seconds

        async def poll_all() -> None:
            await asyncio.gather(
                *(_poll(server.url, headers, until, result) for _ in range(pollers))
            )

        asyncio.run(poll_all())
    finally:
        server.stop()
        result.log = server.log()
    for key in COUNTED:
        result.evaluations[key] = [
            (pid, started, ended)
            for _, pid, started, ended in calls(calls_path, key)
            if started >= begin
        ]
    return result
