"""Evaluates widgets: concurrently, each under its own deadline, failures isolated.

How one evaluation runs:

- Async ``get_data`` runs as a task on the widget event loop (:mod:`smallstack.widget_loop`), a
  thread of its own, never on the server's loop: a widget that blocks instead of awaiting cannot
  stall the requests. Each runs inside its own ``ThreadSensitiveContext`` backed by a one-thread
  "lane": Django's async ORM sends its queries to that lane instead of a single shared sync
  thread, so ORM-heavy async widgets overlap. A widget that holds the widget loop for longer than
  ``LOOP_BLOCK_LIMIT`` is interrupted, shown in error and paused for ``LOOP_BLOCK_COOLDOWN``.
- Sync ``get_data`` runs on a bounded, process-wide thread pool (``THREAD_POOL_SIZE``), never
  on the request's thread-sensitive thread, so sync widgets overlap as well.
- Every database connection opened on a pool thread or a lane is closed after the call.
- Single flight: while a widget is being evaluated, further requests for it await that same
  evaluation. A sync widget that hangs therefore holds one pool thread, however often it is asked
  for, and requests arriving after its deadline get "timed out" at once.
- Whatever a widget raises, ``SystemExit`` and ``KeyboardInterrupt`` included, becomes its card's
  error; so does data that breaks the rules of :mod:`smallstack.contract`.
- Good results go to Django's cache: reused while younger than the widget's ``cache_ttl``, and
  shown marked stale when a later evaluation fails.
- One evaluation across processes: with a shared cache (Redis, not local memory) and a
  ``LOCK_URL``, a widget with ``cache_ttl`` is evaluated by one process at a time. Its flight
  first takes the widget's lock in Redis until the flight's deadline (:mod:`smallstack.locks`,
  on the widget loop); a process that finds it taken waits for the lock to go and takes the
  holder's result from the cache, and evaluates itself only if there is none (the holder failed,
  or died and its lock expired).
- A shared cache or lock that fails is logged once and left alone for ``RETRY_AFTER`` seconds
  (:mod:`smallstack.breaker`); widgets are evaluated without it meanwhile.

What a result is (states, data rules, :class:`~smallstack.contract.WidgetContext`, the item
shape) is :mod:`smallstack.contract`'s business; this module only evaluates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import queue
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.signals import setting_changed
from django.db import connections

from smallstack import conf, locks, telemetry
from smallstack.breaker import Breaker
from smallstack.contract import (
    InvalidWidgetData,
    State,
    WidgetContext,
    merge_extras,
    resolve_url,
    short_error,
    validate_data,
    validate_extras,
)
from smallstack.registry import Registration
from smallstack.widget_breakers import Circuit, WidgetBreakers
from smallstack.widget_loop import LoopBlocked, StepMeter, WidgetLoop

logger = logging.getLogger("smallstack.dashboard")

OK, TIMEOUT, ERROR = State.OK, State.TIMEOUT, State.ERROR


#: The event loop async widgets run on (see :mod:`smallstack.widget_loop`).
widget_loop = WidgetLoop(lambda: float(conf.get("LOOP_BLOCK_LIMIT")))

#: Outages of the dashboard cache and of the lock's Redis (this process's view).
cache_breaker = Breaker("cache")
lock_breaker = Breaker("lock")

#: Keys of the evaluation locks in Redis (followed by the result's cache key).
EVALUATION_LOCK_PREFIX = "smallstack:evaluating:"

#: Keys of the widgets' circuit breakers in a shared cache (followed by the widget's key).
BREAKER_PREFIX = "smallstack:breaker:"

#: A token stored anew with every early result (see :meth:`Engine.results_version`).
RESULTS_VERSION_KEY = "smallstack:results-version"

#: Caches that live in this process: no I/O, nothing shared with other processes.
_LOCAL_CACHES = (LocMemCache, DummyCache)


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced."""

    state: State
    data: dict[str, Any] | None = None
    error: str | None = None
    elapsed_ms: float = 0.0
    at: float = field(default_factory=time.time)
    #: Taken from the cache, stored there by another process's evaluation.
    cached: bool = False


@dataclass
class Batch:
    """Evaluations started together by :meth:`Engine.start`.

    ``contexts`` holds one future per registration, in order, each done as soon as its widget
    is: a page can render what finished within its budget and stream the rest.
    """

    contexts: list[asyncio.Future[WidgetContext]]
    #: Done once every context is (never cancels them: awaiting it may be).
    all_done: asyncio.Future[None]


class _Flight:
    """One evaluation in progress, shared by every request that wants the widget meanwhile.

    Its outcome reaches the event loop that started it at the latest at the deadline, by its
    batch's timer, whatever the widget does: requests on that loop just add a callback
    (:meth:`when_resolved`). Requests on another loop (sync callers get one from
    ``async_to_sync``) await a thread-safe future made on demand. ``finish()`` may be called
    from any thread; the first outcome wins (a result arriving after the deadline is still
    stored, not shown).
    """

    __slots__ = (
        "_deliveries",
        "_lock",
        "_on_finish",
        "_outcome",
        "_resolved",
        "_shared",
        "_timer",
        "_waiters",
        "deadline",
        "fresh",
        "key",
        "loop",
        "started",
        "timeout",
    )

    def __init__(
        self,
        key: str,
        timeout: float,
        loop: asyncio.AbstractEventLoop,
        on_finish: Callable[[Outcome], object],
        started: float,
        deliveries: _Deliveries,
        fresh: bool,
    ) -> None:
        self.key = key
        #: Started by an explicit refresh: its result replaces one still within ``cache_ttl``.
        self.fresh = fresh
        self._on_finish = on_finish
        self.timeout = timeout
        self.started = started
        self.deadline = self.started + timeout
        self.loop = loop
        #: On ``loop``: the outcome once it reached the loop, and who waits for it until then.
        self._resolved: Outcome | None = None
        self._waiters: list[Callable[[Outcome], object]] = []
        self._shared: concurrent.futures.Future[Outcome] | None = None
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()
        self._deliveries = deliveries
        #: The timer that ends it at its deadline (shared with the flights its batch started).
        self._timer: _Deadline | None = None

    @property
    def outcome(self) -> Outcome | None:
        """The outcome once there is one (from any thread)."""
        return self._outcome

    def joinable(self, cache_ttl: float) -> bool:
        """Whether a new request should share this flight rather than start another.

        Yes while it runs, and after a timeout (its thread may still be busy: never a twin).
        A finished good result not yet stored is shared only if the widget allows reuse
        (``cache_ttl``); otherwise, and after an error, the request evaluates afresh.
        """
        outcome = self._outcome
        return (
            outcome is None or outcome.state == TIMEOUT or (outcome.state == OK and cache_ttl > 0)
        )

    def timed_out(self) -> Outcome:
        return Outcome(
            TIMEOUT,
            error=f"timed out after {self.timeout:g} s",
            elapsed_ms=(time.monotonic() - self.started) * 1000,
        )

    def expire(self) -> None:
        """The deadline: "timed out", unless there is an outcome already (from any thread).

        Called by the flight's timer, and by an async widget's task cancelled at the same
        deadline by the widget loop's own timer (:func:`_cancel_at_deadline`), whichever comes
        first. A sync widget's thread cannot be stopped.
        """
        if self._outcome is None:
            logger.warning("Dashboard widget %s timed out after %.3g s", self.key, self.timeout)
            self.finish(self.timed_out())

    def finish(self, outcome: Outcome) -> None:
        with self._lock:
            if self._outcome is not None:
                return
            self._outcome = outcome
            shared = self._shared
        try:
            self._on_finish(outcome)
        except Exception:
            logger.exception("Dashboard widget %s: recording its outcome failed", self.key)
        if shared is not None:
            shared.set_result(outcome)
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._resolve(outcome)
        else:
            self._deliveries.add(self, outcome)

    def when_resolved(self, callback: Callable[[Outcome], object]) -> None:
        """On the flight's loop: ``callback(outcome)`` as soon as the outcome reaches the loop.

        Called right there, not scheduled: one widget's outcome costs the loop no extra turn.
        """
        if self._resolved is not None:
            callback(self._resolved)
        else:
            self._waiters.append(callback)

    def _resolve(self, outcome: Outcome) -> None:
        if self._timer is not None:
            self._timer.landed()
            self._timer = None
        if self._resolved is None:
            self._resolved = outcome
            waiters, self._waiters = self._waiters, []
            for callback in waiters:
                callback(outcome)

    async def wait_elsewhere(self) -> Outcome:
        """Await the outcome from another event loop, no later than the deadline."""
        with self._lock:
            if self._shared is None:
                self._shared = concurrent.futures.Future()
                self._shared.set_running_or_notify_cancel()  # waiters can't cancel it
                if self._outcome is not None:
                    self._shared.set_result(self._outcome)
        future = asyncio.wrap_future(self._shared)
        # asyncio.wait never cancels the future it watches.
        done, _ = await asyncio.wait({future}, timeout=max(0.0, self.deadline - time.monotonic()))
        if done:
            return future.result()
        future.cancel()  # detach from the shared future; this loop may close before it ends
        return self.timed_out()


class _Deliveries:
    """Outcomes finished on other threads, handed to their flights' event loop in batches.

    ``call_soon_threadsafe`` per outcome would wake the loop (a write to its self-pipe) and
    contend for the GIL once per widget; here the first outcome of a batch schedules one
    delivery and the others join it, however many widgets finish meanwhile.
    """

    _of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deliveries] = (
        weakref.WeakKeyDictionary()
    )
    _of_lock = threading.Lock()

    def __init__(self) -> None:
        self._items: list[tuple[_Flight, Outcome]] = []
        self._lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Deliveries:
        """The deliveries to ``loop`` (it holds no reference to the loop: it dies with it)."""
        deliveries = cls._of.get(loop)
        if deliveries is None:
            with cls._of_lock:
                deliveries = cls._of.setdefault(loop, cls())
        return deliveries

    def add(self, flight: _Flight, outcome: Outcome) -> None:
        """Any thread: resolve ``flight`` with ``outcome`` on its loop, soon."""
        with self._lock:
            first = not self._items
            self._items.append((flight, outcome))
        if first:
            try:
                flight.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # a closed loop: nobody is left waiting on it
                with self._lock:
                    self._items.clear()

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for flight, outcome in items:
            flight._resolve(outcome)


class _Deadline:
    """One timer ending the flights a batch started with the same timeout, on their loop.

    A timer per flight costs a heap entry each; the flights of a batch start together, so they
    share a deadline. The timer is cancelled once every one of them has an outcome.
    """

    __slots__ = ("_flights", "_handle", "landed")

    def __init__(self, loop: asyncio.AbstractEventLoop, flights: list[_Flight]) -> None:
        self._flights = flights
        for flight in flights:
            flight._timer = self
        self._handle = loop.call_later(
            max(0.0, flights[0].deadline - time.monotonic()), self._expire
        )
        #: Called (on the loop) as each of the flights gets its outcome.
        self.landed = _CountDown(len(flights), self._stop)

    def _expire(self) -> None:
        for flight in self._flights:
            flight.expire()

    def _stop(self) -> None:
        self._handle.cancel()
        self._flights = []


class _Lane(concurrent.futures.Executor):
    """A one-thread executor for an async widget's thread-sensitive (ORM) calls.

    The thread is created on first use only: most async widgets never make a sync call.
    """

    def __init__(self) -> None:
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def used(self) -> bool:
        return self._executor is not None

    def submit(self, fn, /, *args, **kwargs):
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="smallstack-lane"
            )
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=cancel_futures)


def _close_thread_connections() -> None:
    """Close the database connections this thread opened (Django keeps one per thread)."""
    for conn in connections.all(initialized_only=True):
        conn.close()


class Engine:
    """Runs widget evaluations. One instance per process: :data:`engine`."""

    def __init__(self) -> None:
        self._flights: dict[tuple[str, bool], _Flight] = {}
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._writer = _CacheWriter()
        #: The widgets' circuit breakers (this process's copy; see :meth:`_share_circuit`).
        self.breakers = WidgetBreakers()
        #: One thread copying changed circuits to a shared cache, off the event loops.
        self._circuit_writer: concurrent.futures.ThreadPoolExecutor | None = None
        #: The evaluation lock's client, per event loop (in practice: the widget loop's).
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, locks.RedisLock] = (
            weakref.WeakKeyDictionary()
        )
        #: The dashboard cache's backend, one per alias for the whole process (see _cache).
        self._caches: dict[str, BaseCache] = {}

    # -- resources ------------------------------------------------------------------------

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The bounded pool sync widgets run on, created on first use."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    size = int(conf.get("THREAD_POOL_SIZE"))
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=size, thread_name_prefix="smallstack-widget"
                    )
                    telemetry.pool_size(size)
        return self._pool

    def reset(self) -> None:
        """Forget in-flight evaluations and replace the pool (settings changes, tests)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._flights.clear()
            self._caches.clear()
        self.breakers.reset()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        cache_breaker.reset()
        lock_breaker.reset()

    def in_flight(self) -> int:
        """How many evaluations are running right now."""
        return len(self._flights)

    def _cache(self) -> BaseCache:
        """The dashboard cache: one backend instance shared by every thread and request.

        ``caches[alias]`` gives each thread and each async context (each request) its own
        instance, and Django closes it when the request ends. For Redis that is a new connection
        pool, so a new connection, per request: an API poll cost 2.5 times the CPU. The built-in
        backends are thread-safe (redis-py's pool, local memory's lock), so one serves all.
        """
        alias = str(conf.get("CACHE"))
        cache = self._caches.get(alias)
        if cache is None:
            cache = self._caches.setdefault(alias, caches.create_connection(alias))
        return cache

    @staticmethod
    def cache_key(key: str, with_extras: bool) -> str:
        return f"smallstack:widget:{key}:{'api' if with_extras else 'card'}"

    def shared_cache(self) -> bool:
        """Whether the dashboard cache is seen by other processes (not local memory)."""
        return not isinstance(self._cache(), _LOCAL_CACHES)

    def shares_evaluations(self, registration: Registration) -> bool:
        """Whether this widget is evaluated by one process at a time (see the module's notes)."""
        return (
            bool(registration.widget.cache_ttl)
            and bool(locks.lock_url())
            and self.shared_cache()
            and lock_breaker.allows()
            and cache_breaker.allows()
        )

    # -- public entry point ---------------------------------------------------------------

    async def start(
        self,
        registrations: Iterable[Registration],
        *,
        with_extras: bool = False,
        fresh: bool = False,
        force: bool = False,
    ) -> Batch:
        """Begin evaluating the registrations concurrently; see :class:`Batch`.

        ``with_extras`` merges ``get_api_extras()`` into ``data`` (the API's view of a widget);
        for a widget that has no such method both views are the same, and so are their
        evaluations and cached results.
        ``fresh`` skips reusing results younger than ``cache_ttl`` (an explicit refresh); a
        fresh card also outdates the API's view of a widget with extras.
        ``force`` evaluates widgets paused by their circuit breaker too (a trial each).
        """
        registrations = list(registrations)
        loop = asyncio.get_running_loop()
        extras = [with_extras and r.has_api_extras for r in registrations]
        cache_keys = [
            self.cache_key(r.key, view) for r, view in zip(registrations, extras, strict=True)
        ]
        if fresh and not with_extras:
            outdated = [self.cache_key(r.key, True) for r in registrations if r.has_api_extras]
            if outdated:
                await self.acache_call("delete_many", outdated)
                await self.acache_call(
                    "set", RESULTS_VERSION_KEY, _new_version(), timeout=conf.get("STALE_TTL")
                )
        stored = await self.acache_call("get_many", cache_keys) if registrations else None
        stored = stored or {}
        now = time.time()
        contexts: list[asyncio.Future[WidgetContext] | None] = []
        # The widgets to evaluate: (index in contexts, registration, its view, last good entry).
        pending: list[tuple[int, Registration, bool, dict | None]] = []
        for registration, view, cache_key in zip(registrations, extras, cache_keys, strict=True):
            entry = stored.get(cache_key)
            if entry is not None and not _is_entry(entry):
                entry = None  # not ours (another version wrote it): evaluate
            ttl = registration.widget.cache_ttl
            if entry is not None and ttl and not fresh and now - entry["at"] < ttl:
                context = self._context(
                    registration, Outcome(OK, entry["data"], None, entry["ms"], entry["at"])
                )
                context.cached = True
                contexts.append(_done(loop, context))
            else:
                pending.append((len(contexts), registration, view, entry))
                contexts.append(None)  # its future comes below
        telemetry.cache_lookups(len(registrations) - len(pending), len(pending))
        if pending and not force and self.shared_cache():
            await self._adopt_shared_circuits([registration for _, registration, _, _ in pending])
        async_jobs: list[tuple[Coroutine[Any, Any, None], _Flight]] = []
        started, deliveries = time.monotonic(), _Deliveries.of(loop)
        all_done: asyncio.Future[None] = loop.create_future()  # once every pending one is
        one_done = _CountDown(len(pending), functools.partial(_set_done, all_done))
        new_flights: dict[float, list[_Flight]] = {}  # by timeout
        for index, registration, view, entry in pending:
            pause = None if force else self.breakers.pause(registration.key)
            if pause is not None:
                context = self._context(registration, Outcome(ERROR, error=pause.message), entry)
                context.breaker = pause.info
                contexts[index] = _done(loop, context)
                one_done()
            else:
                seen = entry["at"] if entry is not None else None
                flight = self._flight(
                    registration,
                    view,
                    loop,
                    async_jobs,
                    seen,
                    (started, deliveries, fresh),
                    new_flights,
                )
                contexts[index] = self._context_future(flight, registration, entry, loop, one_done)
        for flights in new_flights.values():
            _Deadline(loop, flights)
            telemetry.evaluation_started(len(flights))
        if async_jobs:  # one hand-over for all the async widgets of the batch
            coroutines, async_flights = zip(*async_jobs, strict=True)
            widget_loop.spawn(coroutines, functools.partial(_cancel_at_deadline, async_flights))
        return Batch(contexts, all_done)  # type: ignore[arg-type]  # no None is left

    def paused(self, key: str) -> str | None:
        """Why the widget is paused by its circuit breaker, or None if it is not."""
        pause = self.breakers.pause(key)
        return pause.message if pause is not None else None

    # -- circuit breakers -----------------------------------------------------------------

    async def _adopt_shared_circuits(self, registrations: list[Registration]) -> None:
        """Take the newer circuits other processes stored in the shared cache (one read)."""
        keys = [BREAKER_PREFIX + r.key for r in registrations]
        found = await self.acache_call("get_many", keys) or {}
        for registration, name in zip(registrations, keys, strict=True):
            circuit = Circuit.from_dict(found.get(name))
            if circuit is not None:
                self.breakers.merge(registration.key, circuit)

    def _finished(self, registration: Registration, outcome: Outcome) -> None:
        """Any thread, once per evaluation: count it, and update the widget's circuit."""
        key = registration.key
        if not outcome.cached:  # taken from another process's evaluation: not one of ours
            telemetry.evaluation_finished(
                key, registration.group, registration.app_label, outcome.state, outcome.elapsed_ms
            )
        circuit = self.breakers.record(registration.widget, key, outcome.state == OK)
        if circuit is None:
            return
        if circuit.clean:
            logger.info("Dashboard widget %s recovered; its circuit breaker is closed", key)
        elif circuit.until and circuit.opened_at == circuit.changed:  # opened by this one
            logger.warning(
                "Dashboard widget %s failed %d times in a row; paused for %g s",
                key,
                circuit.failures,
                circuit.until - circuit.opened_at,
            )
        self._share_circuit(key, circuit)

    def _share_circuit(self, key: str, circuit: Circuit) -> None:
        """Copy a changed circuit to the shared cache, from a thread of its own (any caller)."""
        if not self.shared_cache():
            return
        if self._circuit_writer is None:
            with self._lock:
                if self._circuit_writer is None:
                    self._circuit_writer = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="smallstack-breakers"
                    )
        self._circuit_writer.submit(
            self.cache_call,
            "set",
            BREAKER_PREFIX + key,
            circuit.as_dict(),
            timeout=conf.get("STALE_TTL"),
        )

    async def evaluate(
        self,
        registrations: Iterable[Registration],
        *,
        with_extras: bool = False,
        fresh: bool = False,
        force: bool = False,
    ) -> list[WidgetContext]:
        """Evaluate the registrations concurrently and return their contexts, in order.

        The options are :meth:`start`'s.
        """
        batch = await self.start(registrations, with_extras=with_extras, fresh=fresh, force=force)
        # Cancelling this caller (a closed connection) cancels all_done only, never the
        # evaluations: their results still reach the cache.
        await batch.all_done
        return [future.result() for future in batch.contexts]

    def _context_future(
        self,
        flight: _Flight,
        registration: Registration,
        entry: dict | None,
        loop: asyncio.AbstractEventLoop,
        then: Callable[[], None],
    ) -> asyncio.Future[WidgetContext]:
        """A future for the widget's context, done when its flight has an outcome; ``then()``
        right after."""
        if flight.loop is not loop:
            task = loop.create_task(self._context_elsewhere(flight, registration, entry))
            task.add_done_callback(lambda _: then())
            return task
        future = loop.create_future()

        def done(outcome: Outcome) -> None:
            try:
                future.set_result(self._context(registration, outcome, fallback=entry))
            except Exception as exc:
                future.set_exception(exc)
            then()

        flight.when_resolved(done)
        return future

    async def _context_elsewhere(
        self, flight: _Flight, registration: Registration, entry: dict | None
    ) -> WidgetContext:
        outcome = flight.outcome or await flight.wait_elsewhere()
        return self._context(registration, outcome, fallback=entry)

    # -- one widget -------------------------------------------------------------------------

    def _timeout(self, registration: Registration) -> float:
        timeout = registration.widget.timeout
        return float(timeout if timeout is not None else conf.get("WIDGET_TIMEOUT"))

    def _flight(
        self,
        registration: Registration,
        with_extras: bool,
        loop: asyncio.AbstractEventLoop,
        async_jobs: list,
        seen: float | None,
        batch: tuple[float, _Deliveries, bool],
        new_flights: dict[float, list[_Flight]],
    ) -> _Flight:
        """The widget's flight in progress, or a new one started on ``loop``.

        ``batch``: what the flights a batch starts share (:class:`_Flight`'s ``started``,
        ``deliveries`` and ``fresh``). A new flight is added to ``new_flights`` (by timeout),
        for the caller to give a timer. A new async evaluation (or a coordinated one, see
        :meth:`_run_coordinated`) is appended to ``async_jobs``, for the caller to spawn.
        ``seen``: the time of the cached result the caller found too old (or None), so that
        only a newer one counts as another's result.
        """
        flight_key = (registration.key, with_extras)
        timeout = self._timeout(registration)
        with self._lock:
            flight = self._flights.get(flight_key)
            if flight is not None and flight.joinable(registration.widget.cache_ttl):
                return flight
            flight = _Flight(
                registration.key,
                timeout,
                loop,
                functools.partial(self._finished, registration),
                *batch,
            )
            self._flights[flight_key] = flight
        new_flights.setdefault(timeout, []).append(flight)
        self._start(flight_key, flight, registration, with_extras, async_jobs, seen)
        return flight

    def _start(
        self,
        flight_key: tuple[str, bool],
        flight: _Flight,
        registration: Registration,
        with_extras: bool,
        async_jobs: list,
        seen: float | None = None,
    ) -> None:
        landed = False

        def land(_: object = None) -> None:
            nonlocal landed
            with self._lock:
                if landed:
                    return
                landed = True
                if self._flights.get(flight_key) is flight:
                    del self._flights[flight_key]
            telemetry.evaluation_landed()

        if self.shares_evaluations(registration):
            coroutine = self._run_coordinated(flight, registration, with_extras, land, seen)
            async_jobs.append((coroutine, flight))
        elif registration.is_async:
            coroutine = self._run_async(flight, registration, with_extras, land)
            async_jobs.append((coroutine, flight))
        else:
            self._submit_sync(flight, registration, with_extras, land)

    def _submit_sync(
        self,
        flight: _Flight,
        registration: Registration,
        with_extras: bool,
        land: Callable[..., None],
    ) -> None:
        """Run a sync widget on the pool; ``land()`` once it is done and its result stored."""
        try:
            future = self.pool.submit(self._run_sync, flight, registration, with_extras)
        except RuntimeError as exc:  # pool shut down by reset()
            flight.finish(Outcome(ERROR, error=short_error(exc)))
            land()
        else:
            future.add_done_callback(land)

    # -- one evaluation across processes ----------------------------------------------------

    def _evaluation_lock(self) -> locks.RedisLock:
        """This event loop's client for the evaluation locks (a new one if the URL changed)."""
        loop, url = asyncio.get_running_loop(), locks.lock_url()
        lock = self._locks.get(loop)
        if lock is None or lock.url != url:
            if lock is not None:
                loop.create_task(lock.close())
            lock = self._locks[loop] = locks.RedisLock(url, EVALUATION_LOCK_PREFIX)
        return lock

    async def _run_coordinated(
        self,
        flight: _Flight,
        registration: Registration,
        with_extras: bool,
        land: Callable[..., None],
        seen: float | None,
    ) -> None:
        """Widget loop: evaluate a ``cache_ttl`` widget unless another process is doing it.

        Takes the widget's lock until the flight's deadline. Taken: evaluates as usual and
        releases the lock once the result is stored. Held elsewhere: waits for the lock to go
        (released with a stored result, or expired), then takes a result newer than ``seen``
        from the cache; with none (that evaluation failed, or its process died), contends for
        the lock again. A result that lands between the caller's cache read and taking the lock
        is used too. If Redis fails, evaluates without the lock.
        """
        name = self.cache_key(registration.key, with_extras)
        token = secrets.token_hex(8)
        held = False
        lock: locks.RedisLock | None = None
        try:
            lock = self._evaluation_lock()
            while True:
                seconds = flight.deadline - time.monotonic()
                if seconds <= 0:
                    flight.expire()
                    land()
                    return
                try:
                    wait = await lock.acquire(name, seconds, token)
                    if wait:
                        await _wait_released(lock, name, flight.deadline)
                except Exception as exc:
                    lock_breaker.failed(exc, f"the lock of {registration.key}")
                    break  # evaluate without it
                lock_breaker.succeeded()
                held = not wait
                entry = await self.acache_call("get", name)
                if entry is not None and _is_entry(entry) and entry["at"] != seen:
                    if held:
                        await self._release(lock, name, token)
                    flight.finish(
                        Outcome(OK, entry["data"], None, entry["ms"], entry["at"], cached=True)
                    )
                    land()
                    return
                if held:
                    break
        except (asyncio.CancelledError, GeneratorExit):
            flight.expire()  # the deadline came while waiting for another process
            land()
            raise
        finished = land
        if held and lock is not None:
            finished = functools.partial(self._land_and_release, land, lock, name, token)
        if registration.is_async:
            await self._run_async(flight, registration, with_extras, finished)
        else:
            self._submit_sync(flight, registration, with_extras, finished)

    def _land_and_release(
        self,
        land: Callable[..., None],
        lock: locks.RedisLock,
        name: str,
        token: str,
        _: object = None,
    ) -> None:
        """Any thread, once the held evaluation's result is stored: let the waiters take it."""
        land()
        asyncio.run_coroutine_threadsafe(self._release(lock, name, token), widget_loop.loop)

    @staticmethod
    async def _release(lock: locks.RedisLock, name: str, token: str) -> None:
        try:
            await lock.release(name, token)
        except Exception as exc:  # it expires at the deadline anyway
            lock_breaker.failed(exc, f"releasing the lock of {name}")

    def _run_sync(self, flight: _Flight, registration: Registration, with_extras: bool) -> None:
        """Pool thread: call a sync widget, close what it opened, resolve the flight."""
        telemetry.thread_busy(1)
        try:
            widget, kwargs = registration.widget, self._kwargs(registration)
            data = widget.get_data(**kwargs)
            if asyncio.iscoroutine(data):
                data.close()
                raise InvalidWidgetData("get_data() returned a coroutine from a plain def")
            data = validate_data(widget, data)
            if with_extras:
                extras = widget.get_api_extras(**kwargs)
                if asyncio.iscoroutine(extras):
                    extras = async_to_sync(_await)(extras)
                data = merge_extras(data, validate_extras(extras))
            outcome = Outcome(OK, data, elapsed_ms=(time.monotonic() - flight.started) * 1000)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: this card's error only
            outcome = self._failure(registration, exc, flight)
        finally:
            _close_thread_connections()
            telemetry.thread_busy(-1)
        flight.finish(outcome)
        if outcome.state == OK:
            # Still on the pool thread, so a plain cache call. The flight lands only after
            # this, so no request can start a second evaluation before the result is stored.
            self._store_sync(registration, with_extras, outcome, flight.fresh)

    async def _run_async(
        self, flight: _Flight, registration: Registration, with_extras: bool, land
    ) -> None:
        """Widget loop: await an async widget inside its own lane, then release the lane."""
        lane = _Lane()
        meter = StepMeter()
        outcome = Outcome(ERROR, error="evaluation cancelled")
        try:
            async with ThreadSensitiveContext(executor=lane):
                outcome = await widget_loop.drive(
                    self._call_async(flight, registration, with_extras), meter
                )
            limit = float(conf.get("LOOP_BLOCK_LIMIT"))
            if meter.longest > limit:  # not interrupted: blocked inside C, or caught it
                raise LoopBlocked(meter.longest)
        except (asyncio.CancelledError, GeneratorExit):
            flight.expire()  # cancelled at the deadline (or the loop is closing)
            raise
        except LoopBlocked as exc:
            exc.seconds = max(exc.seconds, meter.blocked_for())
            outcome = self._blocked(registration, exc, flight)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: this card's error only
            outcome = self._failure(registration, exc, flight)
        finally:
            flight.finish(outcome)
            # The flight lands once its result is stored (no second evaluation can start before
            # the cache has it) and its lane's thread is free (a hung query never gets a twin).
            # Neither waits on this event loop, which may close first (sync callers).
            steps = [outcome.state == OK, lane.used].count(True)
            landing = _CountDown(steps, land)
            if outcome.state == OK:
                key = self.cache_key(registration.key, with_extras)
                self._writer.put(key, outcome, landing, flight.fresh)
            if lane.used:
                lane.submit(_close_thread_connections).add_done_callback(landing)
            lane.shutdown(wait=False)

    async def _call_async(
        self, flight: _Flight, registration: Registration, with_extras: bool
    ) -> Outcome:
        """Await an async widget. No timeout here: the flight's timer cancels the task."""
        widget, kwargs = registration.widget, self._kwargs(registration)
        result = widget.get_data(**kwargs)
        data = validate_data(widget, await result if isinstance(result, Awaitable) else result)
        if with_extras:
            extras = widget.get_api_extras(**kwargs)
            if asyncio.iscoroutine(extras):
                extras = await extras
            else:
                extras = await asyncio.get_running_loop().run_in_executor(
                    self.pool, _call_closing, widget.get_api_extras, kwargs
                )
            data = merge_extras(data, validate_extras(extras))
        return Outcome(OK, data, elapsed_ms=(time.monotonic() - flight.started) * 1000)

    @staticmethod
    def _kwargs(registration: Registration) -> dict[str, Any]:
        return {"model_class": registration.model} if registration.model is not None else {}

    def _blocked(self, registration: Registration, exc: LoopBlocked, flight: _Flight) -> Outcome:
        """An async widget held the widget loop: its error, and a pause (no evaluation)."""
        cooldown = float(conf.get("LOOP_BLOCK_COOLDOWN"))
        circuit = self.breakers.trip(registration.key, cooldown, str(exc))
        self._share_circuit(registration.key, circuit)
        logger.error(
            "Dashboard widget %s %s without awaiting; paused for %g s",
            registration.key,
            exc,
            cooldown,
            exc_info=exc,
        )
        return Outcome(ERROR, error=str(exc), elapsed_ms=(time.monotonic() - flight.started) * 1000)

    @staticmethod
    def _failure(registration: Registration, exc: BaseException, flight: _Flight) -> Outcome:
        if isinstance(exc, InvalidWidgetData):
            logger.error("Dashboard widget %s returned invalid data: %s", registration.key, exc)
        else:
            logger.exception("Dashboard widget %s raised", registration.key, exc_info=exc)
        return Outcome(
            ERROR, error=short_error(exc), elapsed_ms=(time.monotonic() - flight.started) * 1000
        )

    # -- contexts and cache ---------------------------------------------------------------

    def _context(
        self, registration: Registration, outcome: Outcome, fallback: dict | None = None
    ) -> WidgetContext:
        data, stale = outcome.data, False
        at: float | None = outcome.at
        if outcome.state != OK:
            if fallback is not None:
                data, at, stale = fallback["data"], fallback["at"], True
            else:
                at = None
        return WidgetContext(
            registration=registration,
            state=outcome.state,
            data=data,
            error=outcome.error,
            elapsed_ms=outcome.elapsed_ms,
            evaluated_at=datetime.fromtimestamp(at, UTC) if at is not None else None,
            stale=stale,
            cached=outcome.cached,
            url=resolve_url(registration),
        )

    def cache_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a method of the dashboard cache, blocking; failures are logged, never raised.

        None when it fails, or while a shared cache that failed is left alone (``RETRY_AFTER``).
        """
        cache = self._cache()
        if isinstance(cache, _LOCAL_CACHES):
            try:
                return getattr(cache, method)(*args, **kwargs)
            except Exception:
                logger.exception("Dashboard cache failed (%s); carrying on without it", method)
                return None
        if not cache_breaker.allows():
            return None
        try:
            result = getattr(cache, method)(*args, **kwargs)
        except Exception as exc:
            cache_breaker.failed(exc, method)
            return None
        cache_breaker.succeeded()
        return result

    async def acache_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`cache_call` from an event loop, which it never blocks.

        A process-local memory cache is called right here (a dict behind a lock, no I/O);
        any other backend (Redis, Memcached, database, files) from a thread.
        """
        if isinstance(self._cache(), _LOCAL_CACHES):
            return self.cache_call(method, *args, **kwargs)
        if not cache_breaker.allows():
            return None
        return await sync_to_async(self.cache_call, thread_sensitive=False)(method, *args, **kwargs)

    def _store_sync(
        self, registration: Registration, with_extras: bool, outcome: Outcome, early: bool
    ) -> None:
        entry = {self.cache_key(registration.key, with_extras): _entry(outcome)}
        self.store_results(entry, early=early)

    def store_results(self, entries: dict[str, Any], *, early: bool = False) -> None:
        """Blocking: store results in the dashboard cache.

        ``early``: they replace results that may still be within their ``cache_ttl`` (an
        explicit refresh), so the :meth:`results_version` changes with them.
        """
        if early:
            entries = {**entries, RESULTS_VERSION_KEY: _new_version()}
        self.cache_call("set_many", entries, timeout=conf.get("STALE_TTL"))

    async def results_version(self) -> str:
        """A token that changes whenever a stored result is replaced or dropped before its
        ``cache_ttl`` is over (an explicit refresh, by any process sharing the cache).

        Other results are stored only once the one they replace is ``cache_ttl`` old (or gone),
        so something made of results and kept no longer than their ``cache_ttl`` (the API's
        whole-list snapshots) stays right while this stays the same. Read it *before* reading
        the results. A cache that lost it (cleared, restarted) gets a new one; a cache that
        fails gives a new token each time, which matches nothing.
        """
        version = await self.acache_call("get", RESULTS_VERSION_KEY)
        if isinstance(version, str):
            return version
        version = _new_version()
        await self.acache_call("add", RESULTS_VERSION_KEY, version, timeout=conf.get("STALE_TTL"))
        return version


def _done(loop: asyncio.AbstractEventLoop, context: WidgetContext) -> asyncio.Future:
    future = loop.create_future()
    future.set_result(context)
    return future


def _new_version() -> str:
    """A new :meth:`Engine.results_version` token."""
    return secrets.token_hex(8)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled by its awaiter, who went away
        future.set_result(None)


def _cancel_at_deadline(flights: Sequence[_Flight], tasks: list[asyncio.Task]) -> None:
    """Widget loop: cancel the batch's async evaluations still running at their deadline.

    The widget loop's own timer, not the server loop's: a caller's loop may be gone by then
    (``async_to_sync`` closes its loop when the call returns). One timer per deadline the batch
    has (its flights share one per timeout), not one per task.
    """
    by_deadline: dict[float, list[asyncio.Task]] = {}
    for flight, task in zip(flights, tasks, strict=True):
        by_deadline.setdefault(flight.deadline, []).append(task)
    loop, now = tasks[0].get_loop(), time.monotonic()
    for deadline, group in by_deadline.items():
        loop.call_later(max(0.0, deadline - now), _cancel_all, group)


def _cancel_all(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()  # nothing for those already done


def _entry(outcome: Outcome) -> dict[str, Any]:
    return {"data": outcome.data, "at": outcome.at, "ms": outcome.elapsed_ms}


def _is_entry(value: Any) -> bool:
    return isinstance(value, dict) and {"data", "at", "ms"} <= value.keys()


async def _wait_released(lock: locks.RedisLock, name: str, deadline: float) -> None:
    """Poll until the lock is free (released or expired), or ``deadline`` (monotonic) passes."""
    delay = 0.01
    while True:
        remaining = await lock.remaining(name)
        left = deadline - time.monotonic()
        if remaining <= 0 or left <= 0:
            return
        await asyncio.sleep(min(delay, remaining, left))
        delay = min(delay * 1.5, 0.1)


class _CountDown:
    """Calls ``then`` once it has been called ``steps`` times (from any threads)."""

    def __init__(self, steps: int, then: Callable[[], object]) -> None:
        self._left, self._then, self._lock = steps, then, threading.Lock()
        if steps == 0:
            then()

    def __call__(self, *_: object) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._then()


class _CacheWriter:
    """A background thread storing async widgets' good results, in batches.

    Results finishing in one pass of an event loop are handed over together (one thread wake-up,
    one ``set_many``), which keeps cache I/O and GIL contention off the loop. The hand-over is
    scheduled with ``call_soon`` right after the flight is resolved, so it runs before the
    request awaiting that flight resumes — and before a short-lived loop (``async_to_sync``)
    can close.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._buffers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list] = (
            weakref.WeakKeyDictionary()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, key: str, outcome: Outcome, done: Callable[[], object], early: bool) -> None:
        """Queue a result from the event loop's thread; ``done()`` runs once it is stored.

        ``early``: see :meth:`Engine.store_results`.
        """
        loop = asyncio.get_running_loop()
        buffer = self._buffers.get(loop)
        if buffer is None:
            buffer = self._buffers[loop] = []
            loop.call_soon(self._hand_over, loop)
        buffer.append((key, _entry(outcome), done, early))

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue.put(self._buffers.pop(loop))
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="smallstack-cache-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            with contextlib.suppress(queue.Empty):
                while True:
                    batch += self._queue.get_nowait()
            try:
                engine.store_results(
                    {key: entry for key, entry, _, _ in batch},
                    early=any(early for *_, early in batch),
                )
            finally:
                for _, _, done, _ in batch:
                    done()


async def _await(awaitable):
    return await awaitable


def _call_closing(fn, kwargs):
    try:
        return fn(**kwargs)
    finally:
        _close_thread_connections()


engine = Engine()


def _on_setting_changed(*, setting: str, **_: object) -> None:
    if setting in {"SMALLSTACK_DASHBOARD", "CACHES"}:
        engine.reset()


setting_changed.connect(_on_setting_changed)
