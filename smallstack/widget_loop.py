"""The event loop that async widgets run on: a thread of its own, watched for blocking steps.

An ``async def get_data()`` that computes instead of awaiting (a CPU-bound loop, ``time.sleep``,
a blocking client) holds whatever event loop runs it. On the server's loop that would stall every
request of the process; here it stalls only this loop, and only for a bounded time:

- Each widget coroutine is driven one step at a time (from one ``await`` to the next) and every
  step is timed. A watchdog thread raises :class:`LoopBlocked` inside a step that has run for
  longer than ``LOOP_BLOCK_LIMIT`` seconds. Python code is interrupted at once; a call blocked
  inside C (``time.sleep()``, a blocking socket read, one huge regex) returns first.
- A step that outlasted the limit, interrupted or not, ends the evaluation with
  :class:`LoopBlocked`; the engine then shows the card in error and pauses the widget.

Awaiting is never blocking: time a widget spends in ``await`` (I/O, ``sync_to_async`` calls on
its own thread) does not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import threading
import time
import types
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

logger = logging.getLogger("smallstack.dashboard")

T = TypeVar("T")


class LoopBlocked(BaseException):
    """Raised inside a widget's step that held the widget event loop for too long.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` in widget code
    does not swallow it.
    """

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"blocked the event loop for {self.seconds:.1f} s"


class StepMeter:
    """How long one widget evaluation held the loop: its longest step, and the current one."""

    __slots__ = ("interrupted_at", "longest", "step_started")

    def __init__(self) -> None:
        self.longest = 0.0
        self.step_started = 0.0
        self.interrupted_at = 0.0

    def blocked_for(self) -> float:
        """The longest step so far, counting a step that was cut short where it stands."""
        current = time.monotonic() - self.step_started if self.interrupted_at else 0.0
        return max(self.longest, current)


class WidgetLoop:
    """A daemon thread running an event loop for async widgets, plus its watchdog.

    Started on first use, and again in a forked child (threads do not survive ``fork``).
    """

    def __init__(self, limit: Callable[[], float]) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._step_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._pid: int | None = None
        self._current: StepMeter | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running widget loop (started if needed)."""
        if self._loop is None or self._pid != os.getpid():
            with self._lock:
                if self._loop is None or self._pid != os.getpid():
                    self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._thread_id = threading.get_ident()
            loop.call_soon(started.set)
            while True:
                try:
                    loop.run_forever()
                except LoopBlocked:  # landed just outside a step: the loop carries on
                    logger.warning("Widget event loop: an interruption missed its step")
                except BaseException:  # SystemExit and the like from a callback: not ours to end
                    logger.exception("Widget event loop: a callback raised; the loop carries on")

        threading.Thread(target=run, name="smallstack-widget-loop", daemon=True).start()
        started.wait()
        self._loop, self._pid, self._current = loop, os.getpid(), None
        threading.Thread(target=self._watch, name="smallstack-widget-watchdog", daemon=True).start()

    def spawn(
        self,
        coroutines: Iterable[Coroutine[Any, Any, Any]],
        created: Callable[[list[asyncio.Task]], object],
    ) -> None:
        """Start each coroutine as a task on the widget loop; ``created(tasks)`` gets the tasks.

        One wake-up of the loop for the whole batch. Tasks start in order, and each task's first
        step runs before anything scheduled on the loop after it (a cancellation, for one).
        """
        jobs = list(coroutines)
        if not jobs:
            return
        loop = self.loop

        def create() -> None:
            created([loop.create_task(coroutine) for coroutine in jobs])

        loop.call_soon_threadsafe(create)

    @types.coroutine
    def drive(self, coroutine: Coroutine[Any, Any, T], meter: StepMeter):
        """Await ``coroutine`` step by step, timing each step in ``meter``."""
        send: Callable[[Any], Any] = coroutine.send
        value: Any = None
        while True:
            meter.step_started = started = time.monotonic()
            self._current = meter
            try:
                try:
                    signal = send(value)
                finally:
                    # Under the watchdog's lock: past this, no interruption is aimed here.
                    with self._step_lock:
                        self._current = None
                    meter.longest = max(meter.longest, time.monotonic() - started)
            except StopIteration as stop:
                return stop.value
            except LoopBlocked:
                # It may have landed just after the widget's step, in the lines above: the
                # widget is then still suspended. Either way it is over.
                coroutine.close()
                raise
            try:
                value = yield signal
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # a cancellation, thrown into the widget
                send, value = coroutine.throw, exc
            else:
                send = coroutine.send

    def _read_limit(self, last: float) -> float:
        """The current limit; the last good one while the setting cannot be read (being
        replaced, or invalid: the system checks report that), so the watchdog never dies."""
        try:
            limit = float(self._limit())
        except Exception:
            return last
        return limit if limit > 0 else last

    def _watch(self) -> None:
        pid = os.getpid()
        limit = 0.5
        while self._pid == pid:
            limit = self._read_limit(limit)
            time.sleep(min(max(limit / 10, 0.01), 0.1))
            with self._step_lock:
                meter = self._current
                if meter is None:
                    continue
                now = time.monotonic()
                since = max(meter.step_started, meter.interrupted_at)
                if now - since > limit and self._thread_id is not None:
                    meter.interrupted_at = now
                    _raise_in_thread(self._thread_id, LoopBlocked)


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """Raise ``exc_type`` in another thread at its next Python instruction (CPython API)."""
    with contextlib.suppress(AttributeError):  # not CPython: no interruption, detection stays
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
        )
