"""Widgets whose evaluations are counted across processes (tests/test_fleet*.py, the benchmark).

Each call appends one line, ``<key> <pid> <start time> <end time>``, to the file named by
``SMALLSTACK_FLEET_CALLS`` (appends of a short line are atomic, so processes can share it) and
takes ``SMALLSTACK_FLEET_SLEEP`` seconds (0.2 by default); with ``SMALLSTACK_FLEET_FAIL`` set it
then raises instead of returning. All three are read at call time.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from smallstack.displays import DashboardWidget


def _sleep() -> float:
    return float(os.environ.get("SMALLSTACK_FLEET_SLEEP", "0.2"))


def _record(key: str, started: float) -> None:
    path = os.environ.get("SMALLSTACK_FLEET_CALLS")
    if path:
        with open(path, "a") as calls:
            calls.write(f"{key} {os.getpid()} {started:.3f} {time.time():.3f}\n")
    if os.environ.get("SMALLSTACK_FLEET_FAIL"):
        raise RuntimeError(f"{key} failed in process {os.getpid()}, as asked")


def _started(key: str) -> float:
    """Note the start in a sibling file, so a test can act while the evaluation runs."""
    started = time.time()
    path = os.environ.get("SMALLSTACK_FLEET_CALLS")
    if path:
        with open(path + ".started", "a") as calls:
            calls.write(f"{key} {os.getpid()} {started:.3f}\n")
    return started


def calls(path: Path, key: str | None = None) -> list[tuple[str, int, float, float]]:
    """The finished calls recorded in ``path``: (key, pid, started, ended), oldest first."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        name, pid, started, ended = line.split()
        if key is None or name == key:
            rows.append((name, int(pid), float(started), float(ended)))
    return sorted(rows, key=lambda row: row[2])


class Counted(DashboardWidget):
    """A plain-def widget with a ``cache_ttl``, showing which process evaluated it."""

    title = "Counted"

    def __init__(self, key: str = "fleet-counted", **attrs: Any) -> None:
        self.key = key
        self.cache_ttl = 5
        self.timeout = 3
        self.__dict__.update(attrs)

    def get_data(self) -> dict[str, Any]:
        started = _started(self.key)
        time.sleep(_sleep())
        _record(self.key, started)
        return {"headline": str(os.getpid()), "detail": "the process that evaluated it"}


class CountedAsync(Counted):
    """The same as an ``async def``."""

    title = "Counted async"

    def __init__(self, key: str = "fleet-counted-async", **attrs: Any) -> None:
        super().__init__(key, **attrs)

    async def get_data(self) -> dict[str, Any]:  # type: ignore[override]
        started = _started(self.key)
        await asyncio.sleep(_sleep())
        _record(self.key, started)
        return {"headline": str(os.getpid()), "detail": "the process that evaluated it"}


class Pid(DashboardWidget):
    """No cache: the process answering this request."""

    key = "fleet-pid"
    title = "Answered by"

    async def get_data(self) -> dict[str, Any]:
        return {"headline": str(os.getpid()), "detail": "the process answering"}
