"""Widgets that misbehave on purpose: they exit, interrupt, spin the CPU or return megabytes.

Each must cost only its own card: the process and the other cards carry on, and the event loop
that serves requests keeps answering. The same in a real uvicorn process:
``tests/test_hostile_uvicorn.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any

import pytest

from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from tests.widgets import Returns, SleepyAsync


def spin(seconds: float) -> int:
    """Pure Python work for ``seconds`` (no await, no C call that blocks)."""
    end, turns = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        turns += 1
    return turns


class Exits(DashboardWidget):
    title = "exits"

    def __init__(self, exc: BaseException, title: str) -> None:
        self.exc, self.title, self.calls = exc, title, 0

    def get_data(self) -> dict[str, Any]:
        self.calls += 1
        raise self.exc


class ExitsAsync(Exits):
    async def get_data(self) -> dict[str, Any]:
        self.calls += 1
        raise self.exc


class SpinsAsync(DashboardWidget):
    """Computes for ``seconds`` without awaiting; may swallow the interruption and go on."""

    def __init__(self, seconds: float, title: str = "spins", *, stubborn: bool = False, **attrs):
        self.seconds, self.title, self.stubborn, self.calls = seconds, title, stubborn, 0
        self.ended = threading.Event()
        self.__dict__.update(attrs)

    async def get_data(self) -> dict[str, Any]:
        self.calls += 1
        try:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end:
                try:
                    spin(end - time.monotonic())
                except BaseException:
                    if not self.stubborn:
                        raise
            return {"headline": "done spinning"}
        finally:
            self.ended.set()


class SleepsAsync(DashboardWidget):
    """Blocks inside C (``time.sleep``) in an ``async def``: cannot be interrupted."""

    title = "sleeps in async"

    def __init__(self, seconds: float, **attrs) -> None:
        self.seconds = seconds
        self.__dict__.update(attrs)

    async def get_data(self) -> dict[str, Any]:
        time.sleep(self.seconds)  # noqa: ASYNC251 - blocking on purpose
        return {"headline": "slept"}


class Huge(DashboardWidget):
    """``headline`` characters of data, plus ``extras`` more from ``get_api_extras()``."""

    def __init__(self, title: str, headline: int, extras: int = 0) -> None:
        self.title, self.headline, self.extras = title, headline, extras

    def get_data(self) -> dict[str, Any]:
        return {"headline": "x" * self.headline}

    def get_api_extras(self) -> dict[str, Any]:
        return {"blob": "y" * self.extras}


@pytest.fixture
def limits(settings):
    """Short block limit and cooldown, so the tests do not wait for the production values."""
    settings.SMALLSTACK_DASHBOARD = {
        **settings.SMALLSTACK_DASHBOARD,
        "LOOP_BLOCK_LIMIT": 0.2,
        "LOOP_BLOCK_COOLDOWN": 1.0,
        "WIDGET_TIMEOUT": 2.0,
    }
    yield settings.SMALLSTACK_DASHBOARD
    engine.reset()


async def evaluate(registration, **options):
    [context] = await engine.evaluate([registration], **options)
    return context


class LoopTicker:
    """Measures how long the current (request) event loop went without running a callback."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> LoopTicker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# -- SystemExit, KeyboardInterrupt ----------------------------------------------------------------


@pytest.mark.parametrize("kind", [Exits, ExitsAsync])
@pytest.mark.parametrize(
    ("exc", "error"),
    [(SystemExit(4), "SystemExit: 4"), (KeyboardInterrupt(), "KeyboardInterrupt")],
)
async def test_exit_and_interrupt_are_the_card_error_at_once(
    register, group, kind, exc, error, caplog
):
    widget = kind(exc, f"exits {kind.__name__} {type(exc).__name__}")
    registration = register(widget)
    neighbour = register(Returns({"headline": "fine"}))
    caplog.set_level(logging.ERROR, "smallstack.dashboard")
    for attempt in range(3):
        started = time.monotonic()
        contexts = await engine.evaluate([registration, neighbour])
        took = time.monotonic() - started
        assert [c.state for c in contexts] == ["error", "ok"]
        assert contexts[0].error == error
        assert took < 1.0, f"attempt {attempt}: {took:.2f} s (an exit must not wait a timeout)"
    assert widget.calls == 3  # an error is not cached: each request tries again, at once
    records = [r for r in caplog.records if registration.key in r.getMessage()]
    assert records and records[0].exc_info[0] is type(exc), "the traceback is logged"
    assert await asyncio.to_thread(_wait, lambda: engine.in_flight() == 0)
    # The widget loop survived an async exit: other async widgets still run on it.
    assert (await evaluate(register(SleepyAsync(0.01)))).state == "ok"


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


# -- CPU-bound async widgets -----------------------------------------------------------------------


async def test_a_spinning_async_widget_is_interrupted_and_paused(register, group, limits, caplog):
    widget = SpinsAsync(5, "spins 5 s")
    registration = register(widget)
    caplog.set_level(logging.ERROR, "smallstack.dashboard")
    with LoopTicker() as ticker:
        started = time.monotonic()
        context = await evaluate(registration)
        took = time.monotonic() - started
    assert context.state == "error"
    assert context.error.startswith("blocked the event loop for 0.2 s"), context.error
    assert took < 1.5, f"interrupted after {took:.2f} s, limit 0.2 s"
    assert ticker.longest < 0.15, f"the request loop stalled {ticker.longest:.2f} s"
    assert widget.ended.wait(2), "the widget's code was not interrupted"
    assert any(
        registration.key in r.getMessage() and "paused for 1 s" in r.getMessage()
        for r in caplog.records
    )
    # Paused: not evaluated again until the cooldown is over, and it says so.
    paused = await evaluate(registration)
    assert widget.calls == 1
    assert paused.state == "error"
    assert paused.error.startswith("blocked the event loop for 0.2 s; paused until ")
    assert paused.error.endswith(" UTC")
    await asyncio.sleep(1.05)
    widget.seconds = 0
    assert (await evaluate(registration)).state == "ok"
    assert widget.calls == 2


async def test_a_spinning_widget_delays_other_async_widgets_only_up_to_the_limit(
    register, group, limits
):
    spinner = register(SpinsAsync(3, "spins 3 s"))
    others = [register(SleepyAsync(0.05, title=f"quick {i}")) for i in range(5)]
    started = time.monotonic()
    contexts = await engine.evaluate([spinner, *others])
    assert contexts[0].state == "error"
    assert [c.state for c in contexts[1:]] == ["ok"] * 5
    assert time.monotonic() - started < 1.5


async def test_a_widget_swallowing_the_interruption_is_interrupted_again(register, group, limits):
    widget = SpinsAsync(1.2, "stubborn spinner", stubborn=True)
    registration = register(widget)
    context = await evaluate(registration)
    # It never returned control: the evaluation ends at its deadline (2 s) at the latest.
    assert context.state in {"error", "timeout"}
    assert widget.ended.wait(3)
    assert await asyncio.to_thread(_wait, lambda: engine.in_flight() == 0)
    paused = await evaluate(registration)
    assert paused.error.startswith("blocked the event loop for ")
    assert "paused until" in paused.error
    # Interrupted several times, it still held the loop for about as long as it spun.
    seconds = float(paused.error.split("for ")[1].split(" s")[0])
    assert 1.0 <= seconds <= 2.5, paused.error


async def test_blocking_inside_c_is_reported_once_the_call_returns(register, group, limits):
    registration = register(SleepsAsync(0.8, timeout=0.4))
    with LoopTicker() as ticker:
        context = await evaluate(registration)
    # The request loop never waited: the deadline held though the widget loop was blocked.
    assert context.state == "timeout"
    assert ticker.longest < 0.15, f"the request loop stalled {ticker.longest:.2f} s"
    assert await asyncio.to_thread(_wait, lambda: engine.paused(registration.key) is not None)
    assert engine.paused(registration.key).startswith("blocked the event loop for 0.8 s")


async def test_sync_cpu_bound_widget_times_out_and_runs_once(register, group, limits):
    class SpinsSync(DashboardWidget):
        title = "spins sync"
        timeout = 0.3
        calls = 0

        def get_data(self):
            self.calls += 1
            spin(1.0)
            return {"headline": "done"}

    widget = SpinsSync()
    registration = register(widget)
    with LoopTicker() as ticker:
        first = await evaluate(registration)
        second = await evaluate(registration)
    assert first.state == second.state == "timeout"
    assert widget.calls == 1, "single flight: the running thread is shared, not doubled"
    assert ticker.longest < 0.2


async def test_async_widgets_run_on_the_widget_loop_thread(register, group):
    class WhereAmI(DashboardWidget):
        title = "where am I"

        async def get_data(self):
            loop = asyncio.get_running_loop()
            return {"headline": threading.current_thread().name, "detail": str(id(loop))}

    context = await evaluate(register(WhereAmI()))
    assert context.data["headline"] == "smallstack-widget-loop"
    assert context.data["detail"] != str(id(asyncio.get_running_loop()))


# -- size ----------------------------------------------------------------------------------------


async def test_data_over_the_size_limit_is_the_card_error(register, group):
    big = register(Huge("five megabytes", 5 * 1024 * 1024))
    allowed = register(Huge("two hundred kilobytes", 200_000))
    context, fine = await engine.evaluate([big, allowed])
    assert context.state == "error"
    assert context.error == "data is 5.0 MB, over the 256 KB limit"
    assert fine.state == "ok" and len(fine.data["headline"]) == 200_000


async def test_api_extras_count_toward_the_limit(register, group, settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "MAX_DATA_BYTES": 10_000}
    registration = register(Huge("big extras", 6_000, extras=6_000))
    card = await evaluate(registration)
    api = await evaluate(registration, with_extras=True)
    assert card.state == "ok"  # each part is under the limit
    assert api.state == "error"  # together they are not
    assert api.error == "data is 12 KB, over the 10 KB limit"


async def test_deeply_nested_data_is_an_error_not_a_crash(register, group):
    nested: Any = "bottom"
    for _ in range(sys.getrecursionlimit() + 100):
        nested = [nested]
    context = await evaluate(register(Returns({"headline": "x", "extra": nested})))
    assert context.state == "error"
    assert context.error == "get_data() returned data nested too deeply"
