"""Concurrent evaluation vs. a sequential loop, and the engine's own overhead.

Each row evaluates N widgets that each spend 200 ms in I/O (``time.sleep`` in a plain ``def``,
``asyncio.sleep`` in an ``async def``, or half and half). "sequential" is the sum of the
widgets' own times: what a loop evaluating them one after another would take (one such loop is
also run for real, for N=10). Overhead rows use widgets that return at once.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from django.conf import settings

from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from smallstack.registry import WidgetRegistry

IO_SECONDS = 0.2
#: The engine's own cost for 200 widgets that return at once, each of sync and async.
OVERHEAD_TARGET = 0.010


class SyncIO(DashboardWidget):
    def __init__(self, delay: float, n: int) -> None:
        self.delay, self.title, self.key, self.timeout = delay, f"sync {n}", f"bench-sync-{n}", 30

    calls = 0

    def get_data(self):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return {"headline": "done", "detail": "sync"}


class AsyncIO(DashboardWidget):
    def __init__(self, delay: float, n: int) -> None:
        self.delay, self.title, self.key, self.timeout = delay, f"async {n}", f"bench-async-{n}", 30

    calls = 0

    async def get_data(self):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return {"headline": "done", "detail": "async"}


def registrations(kind: str, n: int, delay: float):
    registry = WidgetRegistry()
    for i in range(n):
        use_async = kind == "async" or (kind == "mixed" and i % 2)
        registry.register((AsyncIO if use_async else SyncIO)(delay, i), app_label="bench")
    return registry.all()


async def timed(regs) -> tuple[float, list]:
    calls = sum(r.widget.calls for r in regs)
    started = time.perf_counter()
    contexts = await engine.evaluate(regs)
    elapsed = time.perf_counter() - started
    assert all(c.state == "ok" for c in contexts), [c.error for c in contexts if c.error]
    # Every widget really ran: nothing was answered from an earlier evaluation.
    assert sum(r.widget.calls for r in regs) == calls + len(regs)
    return elapsed, contexts


async def sequential_loop(regs) -> float:
    """Evaluate one widget at a time, as a plain loop would."""
    started = time.perf_counter()
    for registration in regs:
        await engine.evaluate([registration])
    return time.perf_counter() - started


def main() -> None:
    """Print both tables; everything runs on one event loop, as under uvicorn."""
    asyncio.run(_main())


async def _main() -> None:
    pool = settings.SMALLSTACK_DASHBOARD["THREAD_POOL_SIZE"]
    print(f"Widget engine — {IO_SECONDS * 1000:.0f} ms of I/O per widget, thread pool {pool}")
    print(f"{'widgets':>8} {'kind':>6} {'concurrent':>11} {'sequential':>11} {'speed-up':>9}")
    for n in (10, 50, 200):
        for kind in ("sync", "async", "mixed"):
            regs = registrations(kind, n, IO_SECONDS)
            await timed(regs)  # warm the pool's threads
            runs = [await timed(regs) for _ in range(3)]
            wall, contexts = min(runs, key=lambda run: run[0])
            sequential = sum(c.elapsed_ms for c in contexts) / 1000
            print(
                f"{n:>8} {kind:>6} {wall * 1000:>9.0f}ms {sequential * 1000:>9.0f}ms "
                f"{sequential / wall:>8.1f}x"
            )
    measured = await sequential_loop(registrations("mixed", 10, IO_SECONDS))
    print(f"{10:>8} {'mixed':>6} {'':>11} {measured * 1000:>9.0f}ms  (a real sequential loop)")

    print("\nEngine overhead — widgets that return at once (median of 20 runs)")
    print(f"{'widgets':>8} {'kind':>6} {'wall':>10} {'per widget':>11}")
    verdicts = []
    for n in (10, 50, 200):
        for kind in ("sync", "async", "mixed"):
            regs = registrations(kind, n, 0)
            await timed(regs)
            wall = statistics.median([(await timed(regs))[0] for _ in range(20)])
            print(f"{n:>8} {kind:>6} {wall * 1000:>8.2f}ms {wall * 1e6 / n:>9.0f}µs")
            if n == 200 and kind != "mixed":
                verdicts.append(f"{kind} {'PASS' if wall <= OVERHEAD_TARGET else 'FAIL'}")
    print(
        "\nTargets: 50 mixed 200 ms widgets <= 300 ms; overhead for 200 widgets that return at "
        f"once <= {OVERHEAD_TARGET * 1000:.0f} ms, sync and async each: {', '.join(verdicts)}."
    )
