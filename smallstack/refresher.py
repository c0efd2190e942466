"""Interval refresh: re-evaluate widgets that set ``refresh_interval`` while someone watches.

Each process counts the open dashboard sockets watching each widget. The first watcher of a
widget with a ``refresh_interval`` starts a task for it; the last one leaving cancels it.

Across processes the period holds through a lock: before each run the task takes a per-widget
lock that expires after one interval (:mod:`smallstack.locks`: ``SET key NX PX interval`` in
Redis when ``SMALLSTACK_DASHBOARD["LOCK_URL"]`` is set, else an in-process lock). Whoever gets it
evaluates and pushes; the others wait out the lock's remaining time and try again. So the widget
is evaluated at most once per interval in all processes together, by whichever process has
watchers, and not at all when nobody watches anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable

from smallstack import locks
from smallstack.live import arefresh
from smallstack.locks import LocalLock, RedisLock
from smallstack.loops import PerLoop
from smallstack.registry import registry

logger = logging.getLogger("smallstack.live")

#: Keys of the refresh locks in Redis.
REFRESH_PREFIX = "smallstack:live:refresh-lock:"


def make_lock() -> LocalLock | RedisLock:
    """The refresh lock of the configured kind."""
    return locks.make_lock(REFRESH_PREFIX)


class Refresher:
    """Watcher counts and interval tasks of one process (one per event loop)."""

    def __init__(self, lock: LocalLock | RedisLock | None = None) -> None:
        self.lock = lock if lock is not None else make_lock()
        self.watchers: Counter[str] = Counter()
        self.tasks: dict[str, asyncio.Task] = {}
        self.runs: Counter[str] = Counter()

    def watch(self, keys: Iterable[str]) -> None:
        """One more socket watches these widgets; start the interval task of any that need one."""
        for key in keys:
            registration = registry.get(key)
            if (
                registration is not None
                and registration.widget.refresh_interval
                and (key not in self.tasks or self.tasks[key].done())
            ):
                self.tasks[key] = asyncio.get_running_loop().create_task(
                    self._run(key), name=f"smallstack-refresh:{key}"
                )
            self.watchers[key] += 1  # last: a key that failed to start is not counted

    def unwatch(self, keys: Iterable[str]) -> None:
        """One socket stopped watching; the last one out stops the widget's task."""
        for key in keys:
            self.watchers[key] -= 1
            if self.watchers[key] <= 0:
                del self.watchers[key]
                task = self.tasks.pop(key, None)
                if task is not None:
                    task.cancel()

    def active(self) -> set[str]:
        """Keys whose interval task is running."""
        return {key for key, task in self.tasks.items() if not task.done()}

    async def _run(self, key: str) -> None:
        registration = registry.get(key)
        interval = float(registration.widget.refresh_interval or 0) if registration else 0.0
        delay = interval
        while registration is not None and interval > 0:
            await asyncio.sleep(delay)
            try:
                wait = await self.lock.acquire(key, interval)
            except Exception as exc:
                logger.warning("Refresh lock unavailable, skipping %s this period: %s", key, exc)
                delay = interval
                continue
            if wait:
                delay = wait
                continue
            started = time.monotonic()
            self.runs[key] += 1
            try:
                await arefresh(key)
            except KeyError:
                return  # unregistered meanwhile
            except Exception:
                logger.exception("Interval refresh of %s failed", key)
            delay = max(0.0, interval - (time.monotonic() - started))
            registration = registry.get(key)


#: ``refresher()``: the running event loop's refresher.
refresher = PerLoop(Refresher)
