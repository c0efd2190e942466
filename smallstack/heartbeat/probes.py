"""Health checks: the built-in ones, the registration hook, and running them all concurrently.

A check is a plain or ``async def`` function taking no arguments. It returns a status
(``"ok"``, ``"warning"`` or ``"error"``), a ``(status, message)`` pair, or ``None`` (ok), and
reports failure by raising. Each runs under its own timeout; plain functions run on a small
thread pool of their own (never the event loop), and any database connection they open there is
closed afterwards. A check that raises, times out or returns something else is an ``error``
result for that check only.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import close_old_connections, connections

import smallstack.heartbeat.conf as conf

STATUSES = ("ok", "warning", "error")
#: Worst first: the overall status is the first of these any check reports.
SEVERITY = {"error": 2, "warning": 1, "ok": 0}

CheckFunc = Callable[[], Any]


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: its status, how long it took, and what it said."""

    name: str
    status: str
    ms: float
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["name"]
        return data


@dataclass(frozen=True)
class Check:
    name: str
    func: CheckFunc
    timeout: float | None = None
    critical: bool = True

    @property
    def deadline(self) -> float:
        return float(self.timeout if self.timeout is not None else conf.get("CHECK_TIMEOUT"))


# -- running sync code off the event loop ------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
POOL_SIZE = 8


def pool() -> ThreadPoolExecutor:
    """The threads plain checks run on (created on first use, shared by every event loop)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="heartbeat")
        return _pool


def _closing(func: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        try:
            return func()
        finally:
            # The connection this pool thread opened is closed, not left to leak.
            for conn in connections.all(initialized_only=True):
                conn.close()

    return run


async def in_thread(func: Callable[[], Any]) -> Any:
    """Run ``func`` on the check pool; database connections it opens are closed afterwards."""
    return await asyncio.get_running_loop().run_in_executor(pool(), _closing(func))


# -- the built-in checks -------------------------------------------------------------------------


def _database_roundtrip() -> None:
    close_old_connections()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")


async def check_database() -> str:
    """A ``SELECT 1`` round trip on the default database."""
    await in_thread(_database_roundtrip)
    return "ok"


def _cache_roundtrip() -> None:
    cache = caches["default"]
    key, value = f"heartbeat:{uuid.uuid4().hex}", uuid.uuid4().hex
    cache.set(key, value, 30)
    try:
        got = cache.get(key)
    finally:
        cache.delete(key)
    if got != value:
        raise RuntimeError("a value written to the cache did not read back")


async def check_cache() -> str:
    """Write, read back and delete a key in the default cache."""
    await in_thread(_cache_roundtrip)
    return "ok"


def channel_layer_configured() -> bool:
    return bool(getattr(settings, "CHANNEL_LAYERS", {}).get("default"))


async def check_channel_layer() -> str:
    """Send a message on a fresh channel of the default channel layer and receive it back.

    The round trip uses a layer instance of its own (with its own connections, closed
    afterwards): the process's shared instance may be receiving on another event loop (the
    server's consumers), and a Redis layer refuses receives from two loops at once.
    """
    from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    try:
        channel = await layer.new_channel("heartbeat.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "heartbeat.ping", "token": token})
        message = await layer.receive(channel)
    finally:
        close = getattr(layer, "close_pools", None)
        if close is not None:
            await close()
    if message.get("token") != token:
        raise RuntimeError("received another message than the one sent")
    return "ok"


def _disk_free() -> tuple[str, str]:
    path = conf.data_dir()
    usage = shutil.disk_usage(path)
    free_mb = usage.free / 1024 / 1024
    threshold = float(conf.get("DISK_WARNING_MB"))
    message = f"{free_mb / 1024:.1f} GB free of {usage.total / 1024**3:.1f} GB"
    if free_mb < threshold:
        return "warning", f"{message}, under {threshold:g} MB"
    return "ok", message


async def check_disk() -> tuple[str, str]:
    """Free space on the data directory's disk: a warning under ``DISK_WARNING_MB``."""
    return await in_thread(_disk_free)


# -- the registry ------------------------------------------------------------------------------

_registry: dict[str, Check] = {}
_registry_lock = threading.Lock()


def register_check(
    name: str, func: CheckFunc, *, timeout: float | None = None, critical: bool = True
) -> None:
    """Add a check that every heartbeat, the status card and the status page run.

    ``func`` is a plain or ``async def`` function without arguments returning ``"ok"``,
    ``"warning"``, ``"error"``, a ``(status, message)`` pair or ``None`` (ok); raising reports an
    error with the exception as its message. ``timeout`` (seconds) defaults to
    ``SMALLSTACK_HEARTBEAT["CHECK_TIMEOUT"]``. ``critical=False`` is for a dependency the
    service keeps working without: its failures (an error, raising, timing out) count as
    ``warning``, degraded rather than down. Registering a name again replaces the check.
    """
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ValueError("a check needs a name: a non-empty string of at most 64 characters")
    if not callable(func):
        raise TypeError(f"check {name!r}: {func!r} is not callable")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"check {name!r}: timeout must be a positive number of seconds")
    with _registry_lock:
        _registry[name] = Check(name, func, timeout, bool(critical))


def unregister_check(name: str) -> None:
    """Remove a registered check (built-in ones included); unknown names are ignored."""
    with _registry_lock:
        _registry.pop(name, None)


def registered_checks() -> list[Check]:
    """The checks a run performs: the built-in ones, then the registered ones.

    ``channel_layer`` is left out (skipped) when no channel layer is configured.
    """
    with _registry_lock:
        checks = list(_registry.values())
    return [c for c in checks if c.name != "channel_layer" or channel_layer_configured()]


def _register_builtins() -> None:
    register_check("database", check_database)
    register_check("cache", check_cache)
    # Without the layer only live push stops; pages and the API still answer: degraded.
    register_check("channel_layer", check_channel_layer, critical=False)
    register_check("disk", check_disk)


_register_builtins()


# -- running them -----------------------------------------------------------------------------


def _interpret(returned: Any) -> tuple[str, str]:
    if returned is None:
        return "ok", ""
    if isinstance(returned, str):
        status, message = returned, ""
    elif isinstance(returned, tuple) and len(returned) == 2:
        status, message = returned
    else:
        return "error", f"returned {type(returned).__name__}, not a status"
    if status not in STATUSES:
        return "error", f"returned status {status!r}, not one of {', '.join(STATUSES)}"
    return status, str(message or "")


async def _call(check: Check) -> Any:
    if asyncio.iscoroutinefunction(check.func):
        return await check.func()
    returned = await in_thread(check.func)
    if inspect.isawaitable(returned):  # a plain function returning a coroutine
        return await returned
    return returned


async def _outcome(check: Check) -> tuple[str, Any]:
    """Whatever the check does (``SystemExit`` included) becomes a value inside this task."""
    try:
        return "returned", await _call(check)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # a check's failure is its own result
        return "raised", exc


async def run_check(check: Check) -> CheckResult:
    """Run one check under its own timeout; a non-critical check's errors are warnings."""
    result = await _run_check(check)
    if result.status == "error" and not check.critical:
        return CheckResult(result.name, "warning", result.ms, result.message)
    return result


async def _run_check(check: Check) -> CheckResult:
    started = time.perf_counter()
    try:
        kind, value = await asyncio.wait_for(_outcome(check), check.deadline)
    except TimeoutError:
        kind, value = "timeout", None
    ms = round((time.perf_counter() - started) * 1000, 2)
    if kind == "timeout":
        return CheckResult(check.name, "error", ms, f"timed out after {check.deadline:g} s")
    if kind == "raised":
        text = str(value).strip().splitlines()[0][:300] if str(value).strip() else ""
        return CheckResult(check.name, "error", ms, f"{type(value).__name__}: {text}".rstrip(": "))
    status, message = _interpret(value)
    return CheckResult(check.name, status, ms, message[:300])


async def run_checks(checks: list[Check] | None = None) -> list[CheckResult]:
    """Run every check concurrently, each under its own timeout; results in check order."""
    selected = registered_checks() if checks is None else checks
    return list(await asyncio.gather(*(run_check(c) for c in selected)))


def overall(results: list[CheckResult]) -> str:
    """The worst status of ``results`` (``ok`` when there are none)."""
    return max((r.status for r in results), key=SEVERITY.__getitem__, default="ok")


def worst(results: list[CheckResult]) -> list[CheckResult]:
    """The results with the overall (worst) status, when that is not ``ok``."""
    status = overall(results)
    return [] if status == "ok" else [r for r in results if r.status == status]
