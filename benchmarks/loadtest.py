"""Load and faults: good and bad clients against two uvicorn workers, SQLite and a real Redis.

``run(seconds=60, scale=1.0)`` returns a report dict; ``python -m benchmarks.loadtest`` (``make
loadtest``) prints it as tables and exits 1 if a hard check fails. ``tests/test_loadfault.py``
runs it smaller and shorter.

The server: ``uvicorn --workers 2`` (uvicorn 0.30+ replaces a worker that dies) serving
``tests.fault_settings`` — the test server's settings plus ``tests/faultapp``, whose "Faults"
widgets (fast, 0.5 s, hung, raising, ``refresh_interval=1``, and two that are fine until told
otherwise) read their behaviour from files in the data directory — over a fresh SQLite
database, with ``REDIS_URL`` set (channel layer and refresh lock) to a redis-server on a
loopback port. This process is the good clients; the bad ones run in another process
(:mod:`benchmarks.loadtest_bad`). At scale 1:

- 200 API pollers, one bearer key and one keep-alive connection each, one poll a second with
  ``If-None-Match`` (half the main dashboard's list, a quarter the "Faults" group, a quarter one
  widget);
- 300 dashboards on websockets, as ``dashboard.js`` does: subscribe, snapshot, reconnect with
  exponential backoff and jitter, a snapshot after every reconnect and after push comes back;
- 20 page loads a second of ``/smallstack/`` with a staff session (open loop).

The run has three phases of ``seconds / 3``: good clients alone; good + bad clients; good + bad
clients + faults (a widget starts hanging, another starts raising, Redis is restarted, one worker
is killed with SIGKILL). Then the load stops, the dashboards must all be in sync, and after a
short idle no worker may hold the database open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets

from benchmarks import loadtest_bad
from benchmarks.loadtest_procs import (
    ProcStats,
    RedisServer,
    open_db_fds,
    proc_stats,
    uvicorn_workers,
)
from tests.faultapp.widgets import FAST, WILL_HANG, WILL_RAISE, fault_widgets, set_mode
from tests.servers import LiveServer, prepare_data_dir, run_manage

POLLERS, DASHBOARDS, PAGES_PER_SECOND, BAD_KEYS, BAD_SOCKETS = 200, 300, 20, 10_000, 10
POLL_INTERVAL = 1.0
WARMUP = 3.0
KILL_WINDOW = 2.0  # connection errors of requests in flight at the kill, within this long
REPLACEMENT_SETTLE = 3.0  # a new worker's "start" figures are taken this long after it appears
SETTLE_TIMEOUT = 40.0  # after the load: time for every dashboard to be back in sync
REPLACEMENT_TIMEOUT = 15.0  # seconds after the kill for uvicorn to start a new worker
STOP_TIMEOUT = 5.0  # SIGTERM to the master; then SIGKILL (a healthy stop takes < 1 s)
IDLE = 2.0  # then this long with no client before the database check
TARGET_P99_RATIO = 1.2
TARGET_GROWTH = 0.10
HTTP_TIMEOUT = 10.0
PAGE = "/smallstack/"
SOCKET = "/ws/smallstack/dashboard/"
#: What the pollers poll, in turn: (path, client label). "api" answers wait for the slowest
#: widget of the list (the 0.5 s one); "api-fast" ones need only widgets that answer at once, so
#: their latency is the server's own.
POLL_PATHS = (
    ("/api/dashboard/widgets/?dashboard_only=1", "api"),
    (f"/api/dashboard/widgets/{FAST}/", "api-fast"),
    ("/api/dashboard/widgets/?group=Faults", "api"),
    ("/api/dashboard/status/?group=Monitoring", "api-fast"),
    ("/api/dashboard/widgets/?dashboard_only=1", "api"),
    (f"/api/dashboard/widgets/{WILL_HANG}/", "api-fast"),
)
CLIENTS = ("api", "api-fast", "page")
PHASES = ("alone", "bad", "faults")
PHASE_TITLES = {
    "warmup": "warm-up",
    "alone": "good clients alone",
    "bad": "good + bad clients",
    "faults": "good + bad + faults",
}
_KEYS_SCRIPT = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from smallstack.tokens import create_token
User = get_user_model()
demo = User.objects.get(username="demo")
for i in range({count}):
    print("good", create_token(demo, name=f"poller-{{i}}")[1])
token, key = create_token(demo, name="revoked")
token.revoked = timezone.now(); token.save()
print("revoked", key)
print("expired", create_token(demo, name="expired",
      expires=timezone.now() - timedelta(days=1))[1])
plain = User.objects.create_user("plain-loadtest", password="not-staff-123")
print("nonstaff", create_token(plain, name="not staff")[1])
"""


# -- recording --------------------------------------------------------------------------------


@dataclass
class Failure:
    client: str
    started: float
    ended: float
    phase: str
    what: str


@dataclass
class Recorder:
    """What the good clients saw, by phase."""

    phase: str = "warmup"
    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    five_xx: list[Failure] = field(default_factory=list)
    transport: list[Failure] = field(default_factory=list)  # connection errors and timeouts
    wrong: list[Failure] = field(default_factory=list)  # unexpected status or body
    ws_updates: Counter = field(default_factory=Counter)
    phase_started: dict[str, float] = field(default_factory=dict)

    def start_phase(self, name: str) -> None:
        self.phase = name
        self.phase_started[name] = time.monotonic()

    def answer(self, client: str, phase: str, started: float, status: int, ok: bool, what=""):
        ended = time.monotonic()
        self.statuses[(client, phase)][status] += 1
        if status >= 500:
            self.five_xx.append(Failure(client, started, ended, phase, f"{status} {what}"[:300]))
        elif not ok:
            self.wrong.append(Failure(client, started, ended, phase, f"{status} {what}"[:300]))
        else:
            self.latencies[(client, phase)].append(ended - started)

    def transport_error(self, client: str, phase: str, started: float, exc: Exception) -> None:
        self.statuses[(client, phase)][type(exc).__name__] += 1
        self.transport.append(Failure(client, started, time.monotonic(), phase, repr(exc)[:300]))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- good clients -----------------------------------------------------------------------------


async def poller(
    index: int,
    url: str,
    key: str,
    count: int,
    rec: Recorder,
    go: asyncio.Event,
    stop: asyncio.Event,
):
    """One monitor: one keep-alive connection, one poll a second, ``If-None-Match``.

    It polls while ``go`` is set (a pause lets the server idle), until ``stop``.
    """
    path, label = POLL_PATHS[index % len(POLL_PATHS)]
    expect_key = "widgets" if "widgets/?" in path else "key" if "widgets/" in path else "healthy"
    client = httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=HTTP_TIMEOUT,
        limits=httpx.Limits(max_connections=1),
    )
    etag = None
    tick = time.monotonic() + POLL_INTERVAL * index / count
    try:
        while not stop.is_set():
            if not go.is_set():
                await _either(go, stop)
                tick = time.monotonic() + POLL_INTERVAL * index / count
                continue
            await _sleep_until(tick, stop)
            if stop.is_set() or not go.is_set():
                continue
            tick = max(tick + POLL_INTERVAL, time.monotonic())
            phase, started = rec.phase, time.monotonic()
            try:
                response = await client.get(path, headers={"If-None-Match": etag} if etag else {})
                content = response.content
            except httpx.TransportError as exc:
                rec.transport_error(label, phase, started, exc)
                continue
            ok, what = response.status_code in (200, 304), ""
            if response.status_code == 200:
                try:
                    body = json.loads(content)
                    ok = bool(body[expect_key]) or expect_key == "healthy"
                except (ValueError, KeyError, TypeError) as exc:
                    ok, what = False, f"bad body: {exc!r}"
                etag = response.headers.get("ETag")
            elif not ok:
                what = content[:200].decode(errors="replace")
            rec.answer(label, phase, started, response.status_code, ok, what)
    finally:
        await client.aclose()


async def page_loads(
    url: str, cookie: str, rate: float, rec: Recorder, go: asyncio.Event, stop: asyncio.Event
):
    """``rate`` page loads a second, open loop (a slow answer does not delay the next start)."""
    client = httpx.AsyncClient(
        base_url=url,
        headers={"Cookie": cookie},
        timeout=HTTP_TIMEOUT,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    )
    in_flight: set[asyncio.Task] = set()

    async def load() -> None:
        phase, started = rec.phase, time.monotonic()
        try:
            response = await client.get(PAGE)
        except httpx.TransportError as exc:
            rec.transport_error("page", phase, started, exc)
            return
        ok = response.status_code == 200 and b"data-live-socket" in response.content
        rec.answer("page", phase, started, response.status_code, ok, response.text[:200])

    tick = time.monotonic()
    try:
        while not stop.is_set():
            if not go.is_set():
                await _either(go, stop)
                tick = time.monotonic()
                continue
            await _sleep_until(tick, stop)
            tick += 1 / rate
            if len(in_flight) < 256:
                task = asyncio.get_running_loop().create_task(load())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                rec.statuses[("page", rec.phase)]["skipped (256 in flight)"] += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=HTTP_TIMEOUT + 1)
    finally:
        await client.aclose()


class Dashboard:
    """One open dashboard page, doing on its socket what ``dashboard.js`` does."""

    BASE_DELAY, MAX_DELAY = 0.5, 30.0

    def __init__(self, url: str, headers: dict[str, str], rec: Recorder) -> None:
        self.url, self.headers, self.rec = url, headers, rec
        self.socket = None
        self.connects = 0
        self.drops: list[tuple[float, str]] = []  # (when, why)
        self.failed_connects: Counter = Counter()
        self.unavailable_seen = 0
        self.snapshots_done = 0
        self.errors: list[str] = []
        self.in_sync = False  # connected, subscribed, snapshot done, push live
        self.last_drop = 0.0
        self.last_sync = 0.0
        self.last_message = 0.0
        self.last_status = ""
        self.snapshot_pending = False
        self._unavailable = False

    def state(self) -> str:
        """A word for where this dashboard stands (for the report when it is not in sync)."""
        if self.in_sync:
            return "in sync"
        if self.socket is None:
            return "not connected"
        if self._unavailable:
            return f"connected, push {self.last_status or 'unknown'}"
        if self.snapshot_pending:
            return "connected, waiting for snapshot.done"
        return "connected, not subscribed"

    async def run(self, go: asyncio.Event, stop: asyncio.Event) -> None:
        """Keep the page open while ``go`` is set (closed by :meth:`close` for a pause)."""
        attempt = 0
        while not stop.is_set():
            if not go.is_set():
                await _either(go, stop)
                attempt = 0
                await asyncio.sleep(random.random() * 1.5)  # back from a pause: ramp up
                continue
            try:
                async with websockets.connect(
                    self.url, additional_headers=self.headers, open_timeout=HTTP_TIMEOUT
                ) as socket:
                    self.socket, attempt = socket, 0
                    self.connects += 1
                    await socket.send(json.dumps({"type": "subscribe"}))
                    async for raw in socket:
                        await self._on_message(socket, json.loads(raw))
                if stop.is_set() or not go.is_set():
                    continue  # closed by this side
                self._dropped("closed by the server")
            except websockets.ConnectionClosed as exc:
                if stop.is_set() or not go.is_set():
                    continue
                code = exc.rcvd.code if exc.rcvd is not None else "none"
                self._dropped(f"closed {code}")
                if code in (4401, 4403):
                    self.errors.append(f"closed {code}")
                    return
            except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
                self.failed_connects[type(exc).__name__] += 1
            finally:
                self.socket = None
            if stop.is_set():
                return
            step = min(self.MAX_DELAY, self.BASE_DELAY * 2**attempt)
            attempt += 1
            await _sleep_until(time.monotonic() + step / 2 + random.random() * step / 2, stop)

    def _dropped(self, why: str) -> None:
        self.in_sync, self.last_drop = False, time.monotonic()
        self.drops.append((self.last_drop, why))

    async def _on_message(self, socket, message: dict[str, Any]) -> None:
        kind = message.get("type")
        self.last_message = time.monotonic()
        if kind == "widget.update":
            self.rec.ws_updates[self.rec.phase] += 1
        elif kind == "subscribed":
            self.snapshot_pending = True
            await socket.send(json.dumps({"type": "snapshot"}))
        elif kind == "snapshot.done":
            self.snapshots_done += 1
            self.snapshot_pending = False
            if not self._unavailable:
                self.in_sync, self.last_sync = True, time.monotonic()
        elif kind == "status":
            self.last_status = str(message.get("push"))
            if message.get("push") == "live":
                if self._unavailable:  # push is back: catch up
                    self._unavailable, self.snapshot_pending = False, True
                    await socket.send(json.dumps({"type": "snapshot"}))
            else:
                self.unavailable_seen += 1
                self._unavailable, self.in_sync = True, False
        elif kind == "error":
            self.errors.append(str(message.get("error"))[:200])

    async def close(self) -> None:
        self.in_sync = False
        if self.socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.socket.close(), 5)


async def _until(predicate, within: float) -> None:
    """Wait until ``predicate()`` is true (checked every 0.1 s) or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110 — plain counters
        await asyncio.sleep(0.1)


async def _either(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _sleep_until(when: float, stop: asyncio.Event) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


# -- the server side --------------------------------------------------------------------------


@dataclass
class Workers:
    """Samples of each uvicorn worker, every half second."""

    master: int
    database: Path
    samples: dict[int, list[tuple[float, ProcStats]]] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    gone: dict[int, float] = field(default_factory=dict)
    last_cpu: dict[int, float] = field(default_factory=dict)

    def sample(self) -> dict[int, ProcStats]:
        now, current = time.monotonic(), {}
        for pid in uvicorn_workers(self.master):
            stats = proc_stats(pid, self.database)
            if stats is None:
                continue
            current[pid] = stats
            self.last_cpu[pid] = stats.cpu_s
            self.first_seen.setdefault(pid, now)
            self.samples.setdefault(pid, []).append((now, stats))
        for pid in self.samples:
            if pid not in current and pid not in self.gone:
                self.gone[pid] = now
        return current

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.sample)
            await _sleep_until(time.monotonic() + 0.5, stop)

    def at(self, pid: int, when: float) -> ProcStats | None:
        """The first sample of ``pid`` taken at or after ``when``."""
        for taken, stats in self.samples.get(pid, []):
            if taken >= when:
                return stats
        return None

    def cpu(self) -> float:
        """CPU seconds of every worker so far (a dead one's as last sampled)."""
        self.sample()
        return sum(self.last_cpu.values())

    def timeline(self, origin: float) -> dict[str, list]:
        """Per worker: [seconds since ``origin``, RSS MB, threads, db fds] every sample."""
        return {
            str(pid): [
                [round(t - origin, 1), round(s.rss_kb / 1024, 1), s.threads, s.db_fds]
                for t, s in samples
            ]
            for pid, samples in self.samples.items()
        }


def _create_keys(environ: dict[str, str], count: int) -> dict[str, list[str]]:
    completed = run_manage(environ, "shell", "-c", _KEYS_SCRIPT.format(count=count))
    if completed.returncode:
        raise RuntimeError(f"could not create API keys:\n{completed.stderr}")
    keys: dict[str, list[str]] = defaultdict(list)
    for line in completed.stdout.splitlines():
        kind, _, key = line.partition(" ")
        if key.startswith("ss_"):
            keys[kind].append(key)
    return keys


def _session_cookie(server: LiveServer) -> str:
    client = server.login()
    try:
        return f"sessionid={client.cookies['sessionid']}"
    finally:
        client.close()


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


_RECORD_START = re.compile(r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d|[A-Z]+: +)", re.MULTILINE)


def _log_findings(log: str) -> dict[str, Any]:
    """The server log, record by record: unexpected exceptions grouped by their last line.

    Expected: the raising widgets' tracebacks ("Dashboard widget … raised") and the warnings of
    the injected faults (timeouts, Redis unavailable). Unexpected: "Exception in ASGI
    application" (uvicorn: the app raised) and "Internal Server Error" (Django: a 500).
    """
    starts = [m.start() for m in _RECORD_START.finditer(log)] + [len(log)]
    records = [log[a:b] for a, b in itertools.pairwise(starts)]
    unexpected: dict[str, dict[str, Any]] = {}
    levels: Counter = Counter()
    widget_errors = 0
    for record in records:
        header = record.split("\n", 1)[0]
        level = re.search(r"\b(ERROR|WARNING|CRITICAL)\b", header)
        if level:
            logger = re.search(r"(?:ERROR|WARNING|CRITICAL) (\S+):", header)
            levels[f"{level.group(1)} {logger.group(1) if logger else 'uvicorn'}"] += 1
        if re.search(r"Dashboard widget \S+ raised", header):
            widget_errors += 1
            continue
        if "Exception in ASGI application" in record or "Internal Server Error" in record:
            lines = [line for line in record.strip().splitlines() if line.strip()]
            last = lines[-1][:200] if lines else header
            kind = "ASGI" if "Exception in ASGI application" in record else "500"
            entry = unexpected.setdefault(f"{kind}: {last}", {"count": 0, "first": record[-2500:]})
            entry["count"] += 1
    return {
        "asgi_exceptions": sum(v["count"] for k, v in unexpected.items() if k.startswith("ASGI")),
        "internal_server_errors": sum(
            v["count"] for k, v in unexpected.items() if k.startswith("500")
        ),
        "unexpected": unexpected,
        "widget_errors_logged": widget_errors,
        "records_by_level": dict(levels.most_common()),
    }


# -- the run ----------------------------------------------------------------------------------


def run(
    seconds: float = 60.0,
    scale: float = 1.0,
    *,
    redis_binary: str | None = None,
    work_dir: str | os.PathLike | None = None,
    progress=None,
    **overrides: float,
) -> dict[str, Any]:
    """Start the servers, run the three phases, stop everything; the report as a dict.

    ``scale`` multiplies the client counts and rates (1.0: 200 pollers, 300 dashboards,
    20 pages/s, 10,000 bad keys, 10 bad sockets); ``seconds`` is the total of the three
    phases. ``progress`` (e.g. ``print``) gets a line at each step.
    """
    say = progress or (lambda *_: None)
    redis_binary = redis_binary or shutil.which("redis-server")
    if not redis_binary:
        raise RuntimeError("redis-server is not installed")
    counts = {
        "pollers": max(4, round(POLLERS * scale)),
        "dashboards": max(4, round(DASHBOARDS * scale)),
        "pages_per_second": max(1.0, PAGES_PER_SECOND * scale),
        "bad_keys": max(100, round(BAD_KEYS * scale)),
        "bad_sockets": max(2, round(BAD_SOCKETS * scale)),
    }
    # e.g. dashboards=0, to see what one kind of client costs
    counts.update({k: v if k == "pages_per_second" else round(v) for k, v in overrides.items()})
    _raise_fd_limit(4 * (counts["pollers"] + counts["dashboards"]) + 1024)
    load_before = os.getloadavg()  # other work on the machine skews every figure
    with contextlib.ExitStack() as stack:
        root = Path(
            work_dir
            or stack.enter_context(tempfile.TemporaryDirectory(prefix="smallstack-loadtest-"))
        )
        data_dir = root / "data"
        redis = RedisServer(redis_binary, root / "redis").start()
        stack.callback(redis.stop)
        say(f"redis-server on port {redis.port}; preparing the database")
        environ = prepare_data_dir(
            data_dir,
            DJANGO_SETTINGS_MODULE="tests.fault_settings",
            REDIS_URL=redis.url,
            SECRET_KEY="loadtest-only",
            SECURE_COOKIES="0",
        )
        for widget in fault_widgets():  # every widget starts in its default mode
            with contextlib.suppress(FileNotFoundError):
                (data_dir / "faults" / widget.key).unlink()
        keys = _create_keys(environ, counts["pollers"] + 1)
        server = LiveServer(environ, workers=2).start()
        stack.callback(server.stop)
        say(f"uvicorn --workers 2 on {server.url} (master pid {server.process.pid})")
        cookie = _session_cookie(server)
        bad_config = loadtest_bad.BadConfig(
            port=server.port,
            good_key=keys["good"][-1],
            known_prefix=keys["good"][0].split("_")[1],
            revoked_key=keys["revoked"][0],
            expired_key=keys["expired"][0],
            non_staff_key=keys["nonstaff"][0],
            session_cookie=cookie,
            bad_keys=counts["bad_keys"],
            seconds=seconds * 2 / 3,
            ws_clients=counts["bad_sockets"],
        )
        context = multiprocessing.get_context("spawn")
        go, halt, results = context.Event(), context.Event(), context.Queue()
        bad_process = context.Process(
            target=loadtest_bad.process_main,
            args=(bad_config, go, halt, results),
            name="loadtest-bad-clients",
            daemon=True,
        )
        bad_process.start()
        stack.callback(lambda: bad_process.is_alive() and bad_process.kill())
        try:
            report = asyncio.run(
                _load(
                    server=server,
                    redis=redis,
                    data_dir=data_dir,
                    keys=keys["good"][: counts["pollers"]],
                    cookie=cookie,
                    counts=counts,
                    seconds=seconds,
                    bad=(go, halt),
                    say=say,
                )
            )
        finally:
            go.set()
            halt.set()
            for widget in fault_widgets():
                set_mode(data_dir, widget.key, widget.default_mode.replace("hang", "ok"))
        try:
            report["bad"] = results.get(timeout=30)
        except Exception as exc:  # the queue's Empty
            report["bad"] = {"crashed": f"no report from the bad clients' process: {exc!r}"}
        bad_process.join(10)
        _classify_bad(report["bad"], report["faults"].get("kill"))
        report["shutdown"] = _stop_server(server)
        report["server_log"] = _log_findings(server.log())
        report["config"] = {
            **counts,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "seconds": seconds,
            "phase_seconds": seconds / 3,
            "workers": 2,
            "cpus": os.cpu_count(),
            "scale": scale,
        }
    report["checks"] = checks(report)
    return report


def _stop_server(server: LiveServer) -> dict[str, Any]:
    """SIGTERM to uvicorn's master, as a service manager would; SIGKILL what is left after
    ``STOP_TIMEOUT``. A worker still running then would outlive its master: it is reported,
    and killed here (by pid) so that no process of the run is left behind."""
    master = server.process
    workers = uvicorn_workers(master.pid)
    started = time.monotonic()
    master.terminate()
    try:
        master.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        master.kill()
        master.wait()
    took = time.monotonic() - started
    left = [pid for pid in workers if proc_stats(pid, Path("/nonexistent")) is not None]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process = None
    return {"seconds": round(took, 2), "workers_left_running": left}


def _classify_bad(bad: dict[str, Any], kill: float | None) -> None:
    """Split the bad clients' surprises: connections cut by the worker kill are expected."""
    for name in ("http", "ws"):
        at_kill, others = [], []
        for when, what in bad.get(f"{name}_unexpected", []):
            cut = "closed" in what or "connect:" in what
            near = kill is not None and kill - 0.05 <= when <= kill + KILL_WINDOW
            (at_kill if cut and near else others).append(what)
        bad[f"{name}_cut_at_kill"] = len(at_kill)
        bad[f"{name}_unexpected"] = others[:50]
        bad[f"{name}_unexpected_count"] = len(others)
        bad[f"{name}_unexpected_kinds"] = dict(Counter(others).most_common(20))


async def _load(*, server, redis, data_dir, keys, cookie, counts, seconds, bad, say):
    rec = Recorder()
    stop_clients, stop_sampler = asyncio.Event(), asyncio.Event()
    database = data_dir / "db.sqlite3"
    workers = Workers(server.process.pid, database)
    workers.sample()
    boot_pids = sorted(workers.first_seen)
    loop = asyncio.get_running_loop()
    sampler = loop.create_task(workers.run(stop_sampler))
    phase_seconds = seconds / 3
    faults: dict[str, Any] = {}

    # Dashboards first, ramped up, each in sync before the clock starts.
    ws_url = f"ws://127.0.0.1:{server.port}{SOCKET}"
    headers = {"Cookie": cookie, "Origin": server.url}
    dashboards = [Dashboard(ws_url, headers, rec) for _ in range(counts["dashboards"])]
    go = asyncio.Event()
    go.set()
    tasks = []
    for index, dashboard in enumerate(dashboards):
        tasks.append(loop.create_task(dashboard.run(go, stop_clients)))
        if index % 25 == 24:
            await asyncio.sleep(0.05)
    await _until(lambda: all(d.in_sync for d in dashboards), 30)
    say(f"{sum(d.in_sync for d in dashboards)}/{len(dashboards)} dashboards connected and in sync")
    tasks += [
        loop.create_task(poller(i, server.url, key, len(keys), rec, go, stop_clients))
        for i, key in enumerate(keys)
    ]
    if counts["pages_per_second"] > 0:
        rate = counts["pages_per_second"]
        tasks.append(loop.create_task(page_loads(server.url, cookie, rate, rec, go, stop_clients)))
    lag = LoopLag(rec)
    tasks.append(loop.create_task(lag.run(stop_clients)))
    say(f"warm-up: every good client for {WARMUP:g} s")
    await asyncio.sleep(WARMUP)

    # The baseline: every client paused (dashboards closed), the server idle, as at the end.
    go.clear()
    await asyncio.gather(*(d.close() for d in dashboards))
    await asyncio.sleep(IDLE)
    baseline_check = await _database_check(workers, database)
    baseline = {pid: s for pid, s in (await asyncio.to_thread(workers.sample)).items()}
    go.set()
    await _until(lambda: all(d.in_sync for d in dashboards), 30)
    say(f"baseline taken idle; {sum(d.in_sync for d in dashboards)} dashboards back in sync")
    await asyncio.sleep(1.0)

    start_stats = {pid: s for pid, s in (await asyncio.to_thread(workers.sample)).items()}
    cpu_marks = {"alone": (await asyncio.to_thread(workers.cpu), time.process_time())}
    rec.start_phase("alone")
    say(f"phase 1/3: good clients alone, {phase_seconds:.0f} s")
    await asyncio.sleep(phase_seconds)

    go, halt = bad
    go.set()
    cpu_marks["bad"] = (await asyncio.to_thread(workers.cpu), time.process_time())
    rec.start_phase("bad")
    say(f"phase 2/3: good + bad clients, {phase_seconds:.0f} s")
    await asyncio.sleep(phase_seconds)

    cpu_marks["faults"] = (await asyncio.to_thread(workers.cpu), time.process_time())
    before_faults = {pid: s for pid, s in (await asyncio.to_thread(workers.sample)).items()}
    rec.start_phase("faults")
    say(f"phase 3/3: good + bad clients + faults, {phase_seconds:.0f} s")
    faults = await _inject_faults(phase_seconds, data_dir, redis, workers, say)
    cpu_marks["end"] = (await asyncio.to_thread(workers.cpu), time.process_time())
    end_stats = {pid: s for pid, s in (await asyncio.to_thread(workers.sample)).items()}
    rec.start_phase("settle")

    # The load stops; the faults are lifted (hung threads released).
    halt.set()
    for key in (WILL_HANG, WILL_RAISE):
        set_mode(data_dir, key, "ok")
    settle_started = time.monotonic()
    await _until(lambda: all(d.in_sync for d in dashboards), SETTLE_TIMEOUT)
    settled_after = time.monotonic() - settle_started
    settled = _dashboard_summary(dashboards, settled_after)
    say(
        f"load stopped; {sum(d.in_sync for d in dashboards)}/{len(dashboards)} dashboards in sync"
        f" after {settled_after:.1f} s"
    )
    stop_clients.set()
    await asyncio.gather(*(d.close() for d in dashboards))
    await asyncio.wait(tasks, timeout=HTTP_TIMEOUT + 5)

    # Idle: nobody connected. No worker may still hold the database open.
    await asyncio.sleep(IDLE)
    idle_check = await _database_check(workers, database)
    idle_stats = {pid: s for pid, s in (await asyncio.to_thread(workers.sample)).items()}
    stop_sampler.set()
    await sampler
    say("idle check done")

    return _report(
        rec=rec,
        dashboards=dashboards,
        workers=workers,
        boot_pids=boot_pids,
        baseline=baseline,
        baseline_check=baseline_check,
        start_stats=start_stats,
        before_faults=before_faults,
        end_stats=end_stats,
        idle_stats=idle_stats,
        idle_check=idle_check,
        faults=faults,
        cpu_marks=cpu_marks,
        lag=lag,
        settled=settled,
    )


class LoopLag:
    """How late this process's event loop wakes up, by phase: the load generator's own delay."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.lags: dict[str, list[float]] = defaultdict(list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.lags[self.rec.phase].append(time.monotonic() - before - 0.05)


async def _inject_faults(phase_seconds, data_dir, redis, workers, say) -> dict[str, Any]:
    """The fault schedule, as fractions of the phase: hang, raise, Redis restart, SIGKILL."""
    begin = time.monotonic()
    faults: dict[str, Any] = {}

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, begin + fraction * phase_seconds - time.monotonic()))

    set_mode(data_dir, WILL_HANG, "hang")
    faults["hang"] = time.monotonic()
    say(f"  fault: {WILL_HANG} hangs")
    await at(0.1)
    set_mode(data_dir, WILL_RAISE, "raise")
    faults["raise"] = time.monotonic()
    say(f"  fault: {WILL_RAISE} raises")
    await at(0.2)
    faults["redis_stop"] = time.monotonic()
    await asyncio.to_thread(redis.stop)
    say("  fault: Redis stopped")
    await at(0.3)
    await asyncio.to_thread(redis.start)
    faults["redis_start"] = time.monotonic()
    say(f"  fault: Redis restarted after {faults['redis_start'] - faults['redis_stop']:.1f} s")
    await at(0.45)
    victims = sorted(workers.sample())
    victim = victims[0]
    os.kill(victim, signal.SIGKILL)
    faults["kill"] = time.monotonic()
    faults["killed_pid"] = victim
    say(f"  fault: worker {victim} killed (SIGKILL)")
    replacement = None
    # Until the phase ends; past it (a short run) until the replacement shows, up to 15 s.
    while time.monotonic() < begin + phase_seconds or (
        replacement is None and time.monotonic() < faults["kill"] + REPLACEMENT_TIMEOUT
    ):
        await asyncio.sleep(0.1)
        if replacement is None:
            new = set(await asyncio.to_thread(workers.sample)) - set(victims)
            if new:
                replacement = min(new)
                faults["replacement_pid"] = replacement
                faults["replaced_after"] = time.monotonic() - faults["kill"]
                say(f"  worker {replacement} replaces it after {faults['replaced_after']:.1f} s")
    faults["relative"] = {
        name: round(faults[name] - begin, 2)
        for name in ("hang", "raise", "redis_stop", "redis_start", "kill")
    }
    return faults


async def _database_check(workers: Workers, database: Path) -> dict[str, Any]:
    """Open descriptors on the database in each worker, after the idle (retried up to 5 s)."""
    deadline = time.monotonic() + 5
    while True:
        pids = uvicorn_workers(workers.master)
        held = {pid: open_db_fds(pid, database) for pid in pids}
        if not any(held.values()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    peak = {
        pid: max((s.db_fds for _, s in samples), default=0)
        for pid, samples in workers.samples.items()
    }
    return {"held": {str(pid): fds for pid, fds in held.items()}, "peak_during_load": peak}


def _latency_row(rec: Recorder, client: str, phase: str) -> dict[str, Any]:
    values = rec.latencies.get((client, phase), [])
    return {
        "count": len(values),
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) * 1000 if values else None,
        "statuses": {str(k): v for k, v in rec.statuses.get((client, phase), {}).items()},
    }


def _report(
    *,
    rec,
    dashboards,
    workers,
    boot_pids,
    baseline,
    baseline_check,
    start_stats,
    before_faults,
    end_stats,
    idle_stats,
    idle_check,
    faults,
    cpu_marks,
    lag,
    settled,
) -> dict[str, Any]:
    kill, killed = faults.get("kill"), faults.get("killed_pid")
    replacement = faults.get("replacement_pid")

    def in_kill_window(failure: Failure) -> bool:
        return (
            kill is not None
            and failure.started <= kill + 0.5
            and kill - 0.05 <= failure.ended <= kill + KILL_WINDOW
            and "Timeout" not in failure.what
        )

    kill_window = [f for f in rec.transport if in_kill_window(f)]
    outside = [f for f in rec.transport if not in_kill_window(f)]
    marks = list(cpu_marks.items())
    phases = {}
    for (name, (server_cpu, client_cpu)), (_, (server_next, client_next)) in itertools.pairwise(
        marks
    ):
        phases[name] = {
            **{client: _latency_row(rec, client, name) for client in CLIENTS},
            "server_cpu_s": round(server_next - server_cpu, 2),
            "client_cpu_s": round(client_next - client_cpu, 2),
            "ws_updates": rec.ws_updates.get(name, 0),
            "loop_lag_p99_ms": percentile(lag.lags.get(name, []), 0.99),
        }
    ratios = {}
    for client in CLIENTS:
        alone, with_bad = phases["alone"][client]["p99_ms"], phases["bad"][client]["p99_ms"]
        ratios[client] = with_bad / alone if alone and with_bad else None

    worker_rows = []
    for pid in sorted(workers.first_seen):
        points = {
            "baseline": baseline.get(pid),
            "start": start_stats.get(pid),
            "before_faults": before_faults.get(pid),
            "end": end_stats.get(pid),
            "idle": idle_stats.get(pid),
        }
        if pid == killed:
            role = "killed"
            points["end"] = workers.samples[pid][-1][1]  # its last sample before the kill
            compare = ("baseline", "end")
        elif pid == replacement:
            role = "replacement"
            points["start"] = workers.at(pid, workers.first_seen[pid] + REPLACEMENT_SETTLE)
            compare = ("start", "end")  # it has no idle baseline: both under load
        else:
            role = "original (survived)" if pid in boot_pids else "unexpected"
            compare = ("baseline", "idle")  # both idle, no client connected
        first, last = points[compare[0]], points[compare[1]]
        worker_rows.append(
            {
                "pid": pid,
                "role": role,
                **{name: stats.__dict__ if stats else None for name, stats in points.items()},
                "compared": compare,
                "rss_growth": _growth(first, last, "rss_kb"),
                "threads_growth": _growth(first, last, "threads"),
                "rss_growth_under_load": _growth(points["start"], points["end"], "rss_kb"),
                # Phases 1 and 2: the same good load, no fault yet.
                "rss_growth_steady": _growth(points["start"], points["before_faults"], "rss_kb"),
            }
        )

    return {
        "phases": phases,
        "p99_ratio": ratios,
        "good": {
            "five_xx": len(rec.five_xx),
            "five_xx_first": [f.__dict__ for f in rec.five_xx[:5]],
            "wrong": len(rec.wrong),
            "wrong_first": [f.__dict__ for f in rec.wrong[:5]],
            "kill_window_connection_errors": len(kill_window),
            "transport_errors_outside_kill_window": len(outside),
            "transport_outside_first": [f.__dict__ for f in outside[:5]],
        },
        "dashboards": settled,
        "faults": faults,
        "workers": worker_rows,
        "database_at_baseline": baseline_check,
        "worker_timeline": workers.timeline(rec.phase_started["alone"]),
        "database": idle_check,
    }


def _dashboard_summary(dashboards: list[Dashboard], settled_after: float) -> dict[str, Any]:
    """Where the dashboards stand once the load has stopped (before they are closed)."""
    dropped = [d for d in dashboards if d.drops]
    unavailable = [d for d in dashboards if d.unavailable_seen]
    return {
        "count": len(dashboards),
        "dropped": len(dropped),
        "drop_reasons": dict(Counter(why for d in dashboards for _, why in d.drops)),
        "reconnected_and_synced": sum(d.in_sync and d.last_sync > d.last_drop for d in dropped),
        "failed_connect_attempts": _total(d.failed_connects for d in dashboards),
        "saw_push_unavailable": len(unavailable),
        "unavailable_then_synced": sum(d.in_sync for d in unavailable),
        "in_sync_at_end": sum(d.in_sync for d in dashboards),
        "settled_after_s": round(settled_after, 2),
        "snapshots_done": sum(d.snapshots_done for d in dashboards),
        "errors": dict(Counter(e for d in dashboards for e in d.errors)),
        "states_at_end": dict(Counter(d.state() for d in dashboards)),
        "silent_for_s_at_end": _silence(dashboards),
    }


def _silence(dashboards: list[Dashboard]) -> dict[str, float] | None:
    """How long the dashboards not in sync had heard nothing (median, max), at the end."""
    now = time.monotonic()
    quiet = sorted(now - d.last_message for d in dashboards if not d.in_sync)
    if not quiet:
        return None
    return {"median": round(quiet[len(quiet) // 2], 1), "max": round(quiet[-1], 1)}


def _total(counters) -> dict[str, int]:
    total: Counter = Counter()
    for counter in counters:
        total.update(counter)
    return dict(total)


def _growth(start: ProcStats | None, end: ProcStats | None, name: str) -> float | None:
    if start is None or end is None:
        return None
    return getattr(end, name) / getattr(start, name) - 1


# -- checks and printing ----------------------------------------------------------------------


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each property: name, ok, hard (a failure is a defect) or a target, and the figures."""
    good, dash, bad, log = (
        report["good"],
        report["dashboards"],
        report.get("bad", {}),
        report["server_log"],
    )
    faults = report["faults"]
    result = []

    def check(name: str, ok: bool, detail: str = "", hard: bool = True) -> None:
        result.append({"name": name, "ok": bool(ok), "hard": hard, "detail": detail})

    check(
        "zero 5xx to good clients",
        good["five_xx"] == 0,
        f"{good['five_xx']} 5xx; first: {good['five_xx_first'][:1]}",
    )
    check(
        "good clients got only expected answers",
        good["wrong"] == 0,
        f"{good['wrong']} unexpected; first: {good['wrong_first'][:1]}",
    )
    check(
        "connection errors only at the kill",
        good["transport_errors_outside_kill_window"] == 0,
        f"{good['kill_window_connection_errors']} in the kill window (allowed), "
        f"{good['transport_errors_outside_kill_window']} outside; first: "
        f"{good['transport_outside_first'][:1]}",
    )
    check(
        "a killed worker is replaced",
        "replacement_pid" in faults,
        f"after {faults.get('replaced_after', float('nan')):.1f} s",
    )
    check(
        "every dropped dashboard reconnected and got a snapshot",
        dash["dropped"] > 0 and dash["reconnected_and_synced"] == dash["dropped"],
        f"{dash['reconnected_and_synced']}/{dash['dropped']} dropped sockets back in sync",
    )
    check(
        "every dashboard in sync at the end (snapshot.done, push live)",
        dash["in_sync_at_end"] == dash["count"],
        f"{dash['in_sync_at_end']}/{dash['count']} after {dash['settled_after_s']} s; "
        f"push unavailable seen by {dash['saw_push_unavailable']}",
    )
    check("good dashboards got no error messages", not dash["errors"], str(dash["errors"])[:300])
    check("bad clients' process ran", "crashed" not in bad, str(bad.get("crashed", ""))[:300])
    http_5xx = {
        kind: {s: n for s, n in counts.items() if s.startswith("5")}
        for kind, counts in bad.get("http", {}).items()
    }
    http_5xx = {kind: counts for kind, counts in http_5xx.items() if counts}
    check("zero 5xx to bad HTTP clients", not http_5xx, str(http_5xx)[:300])
    check(
        "bad HTTP clients got the expected 4xx",
        bad.get("http_unexpected_count", 1) == 0,
        f"{bad.get('http_unexpected_count')} unexpected: {bad.get('http_unexpected_kinds')}; "
        f"{bad.get('http_cut_at_kill')} cut by the worker kill (allowed)",
    )
    check(
        "bad bearer keys sent (48 connections, paced; fewer when the server answers slowly)",
        bad.get("bad_keys_sent", 0) >= report["config"]["bad_keys"] * 0.9,
        f"{bad.get('bad_keys_sent')} sent ({bad.get('distinct_bad_keys')} distinct) of "
        f"{report['config']['bad_keys']}",
        hard=False,
    )
    check(
        "every bad websocket frame answered with an error, connection kept",
        bad.get("ws_unexpected_count", 1) == 0,
        f"{bad.get('ws_unexpected_count')} unexpected: {bad.get('ws_unexpected_kinds')}; "
        f"{bad.get('ws_cut_at_kill')} cut by the worker kill (allowed)",
    )
    check(
        "no unexpected exception in the server log",
        log["asgi_exceptions"] == 0 and log["internal_server_errors"] == 0,
        f"{log['asgi_exceptions']} 'Exception in ASGI application', "
        f"{log['internal_server_errors']} 'Internal Server Error': "
        + "; ".join(f"{n} x {v['count']}" for n, v in log["unexpected"].items()),
    )
    shutdown = report["shutdown"]
    check(
        f"the server stops within {STOP_TIMEOUT:g} s of SIGTERM, workers included",
        not shutdown["workers_left_running"] and shutdown["seconds"] < STOP_TIMEOUT,
        f"master gone after {shutdown['seconds']} s; workers still running then (killed): "
        f"{shutdown['workers_left_running']}",
    )
    held = {pid: fds for pid, fds in report["database"]["held"].items() if fds}
    held_before = {pid: fds for pid, fds in report["database_at_baseline"]["held"].items() if fds}
    check(
        "no database connection left open when idle (after the warm-up and after the run)",
        not held and not held_before,
        f"held after the run: {held}; after the warm-up: {held_before}"
        if held or held_before
        else "no worker holds the database file open",
    )
    for client in CLIENTS:
        ratio = report["p99_ratio"][client]
        check(
            f"{client} p99 with bad clients within {TARGET_P99_RATIO}x of alone",
            ratio is not None and ratio <= TARGET_P99_RATIO,
            f"{ratio:.2f}x" if ratio else "no data",
            hard=False,
        )
    for row in report["workers"]:
        if row["role"] == "killed":
            continue
        for name, limit in (("rss_growth", TARGET_GROWTH), ("threads_growth", TARGET_GROWTH)):
            value = row[name]
            check(
                f"worker {row['pid']} ({row['role']}) {name.replace('_', ' ')} <= {limit:.0%}",
                value is not None and value <= limit,
                f"{value:+.1%}" if value is not None else "no data",
                hard=False,
            )
    return result


def _ms(value: float | None) -> str:
    return f"{value:.0f} ms" if value is not None else "-"


def print_report(report: dict[str, Any], out=sys.stdout) -> None:
    config = report["config"]

    def p(*args: Any) -> None:
        print(*args, file=out)

    p(
        f"\nLoad and faults: uvicorn --workers 2, SQLite, Redis; {config['cpus']} CPU cores shared"
        f" with the load generator.\n{config['pollers']} API pollers (1/s, If-None-Match), "
        f"{config['dashboards']} dashboards on websockets, {config['pages_per_second']:g} page "
        f"loads/s; bad clients: {config['bad_keys']} bad keys + junk requests, "
        f"{config['bad_sockets']} bad sockets. Three phases of {config['phase_seconds']:.0f} s."
        f"\nLoad average before: {_loadavg(config['load_average_before'])}; after: "
        f"{_loadavg(config['load_average_after'])}."
    )
    p(
        f"\n{'phase':<22} {'client':<8} {'answers':>8} {'p50':>8} {'p99':>8} {'max':>8} "
        f"{'server CPU':>11} {'gen. CPU':>9} {'gen. lag p99':>12} {'ws updates':>10}"
    )
    for name, phase in report["phases"].items():
        seconds = config["phase_seconds"]
        for client in CLIENTS:
            row = phase[client]
            extra = (
                f"{phase['server_cpu_s'] / seconds * 100:>10.0f}% "
                f"{phase['client_cpu_s'] / seconds * 100:>8.0f}% "
                f"{_ms(phase['loop_lag_p99_ms']):>12} {phase['ws_updates']:>10}"
                if client == "api"
                else ""
            )
            p(
                f"{PHASE_TITLES[name] if client == 'api' else '':<22} {client:<8} "
                f"{row['count']:>8} {_ms(row['p50_ms']):>8} {_ms(row['p99_ms']):>8} "
                f"{_ms(row['max_ms']):>8} {extra}"
            )
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row["statuses"].items()))
            p(f"{'':<31} {statuses}")
    p(
        "p99 with bad clients / alone: "
        + ", ".join(
            f"{client} {ratio:.2f}x" if ratio else f"{client} -"
            for client, ratio in report["p99_ratio"].items()
        )
    )
    faults = report["faults"]
    p(
        f"\nFaults (seconds into phase 3): {faults.get('relative')}; worker "
        f"{faults.get('killed_pid')} killed, {faults.get('replacement_pid')} replaced it after "
        f"{faults.get('replaced_after', float('nan')):.1f} s"
    )
    good, dash = report["good"], report["dashboards"]
    p(
        f"Good clients: {good['five_xx']} 5xx, {good['wrong']} unexpected answers, "
        f"{good['kill_window_connection_errors']} connection errors at the kill, "
        f"{good['transport_errors_outside_kill_window']} elsewhere"
    )
    p(
        f"Dashboards: {dash['dropped']} dropped, {dash['reconnected_and_synced']} reconnected with "
        f"a snapshot; {dash['saw_push_unavailable']} saw push unavailable; "
        f"{dash['in_sync_at_end']}/{dash['count']} in sync {dash['settled_after_s']} s after the "
        f"load; drops: {dash['drop_reasons']}; failed connects: {dash['failed_connect_attempts']}"
    )
    if dash["in_sync_at_end"] != dash["count"]:
        p(f"  at the end: {dash['states_at_end']}; silent for {dash['silent_for_s_at_end']} s")
    p(
        "\nWorkers: RSS (MB) and threads idle after the warm-up (baseline), at the start of phase"
        " 1, before the faults, at the end of the load, and idle after the run. Growth compares"
        "\nan original worker's two idle points, the replacement's start (3 s after it appeared)"
        " and end. db fds: descriptors on the database file, idle after the run. RSS steady:"
        "\nstart of phase 1 to the end of phase 2 (same good load, no fault yet)."
    )
    p(
        f"{'worker':>8} {'role':<20} {'RSS base/start/pre-fault/end/idle':>34} {'growth':>7} "
        f"{'threads b/s/p/e/i':>18} {'growth':>7} {'db fds':>6} {'RSS steady':>10}"
    )
    held = report["database"]["held"]
    for row in report["workers"]:
        points = [row[k] or {} for k in ("baseline", "start", "before_faults", "end", "idle")]
        rss = "/".join(f"{x['rss_kb'] / 1024:.0f}" if x else "-" for x in points)
        threads = "/".join(str(x["threads"]) if x else "-" for x in points)
        fds = len(held.get(str(row["pid"]), [])) if row["role"] != "killed" else "-"
        p(
            f"{row['pid']:>8} {row['role']:<20} {rss:>34} {_pct(row['rss_growth']):>7} "
            f"{threads:>18} {_pct(row['threads_growth']):>7} {fds!s:>6} "
            f"{_pct(row['rss_growth_steady']):>10}"
        )
    bad = report.get("bad", {})
    p(
        f"\nBad clients: {bad.get('bad_keys_sent')} bad keys sent "
        f"({bad.get('distinct_bad_keys')} distinct), CPU {bad.get('cpu_seconds', 0):.1f} s"
    )
    for kind, counts in bad.get("http", {}).items():
        p(f"  {kind:<42} {counts}")
    for kind, counts in bad.get("ws", {}).items():
        p(f"  ws: {kind:<38} {counts}")
    log = report["server_log"]
    p(
        f"\nServer log: {log['widget_errors_logged']} widget errors logged (expected), "
        f"{log['asgi_exceptions']} 'Exception in ASGI application', "
        f"{log['internal_server_errors']} 'Internal Server Error'; records: "
        f"{log['records_by_level']}"
    )
    for name, entry in log["unexpected"].items():
        p(f"  {entry['count']} x {name}")
    p("\nChecks:")
    for item in report["checks"]:
        mark = "ok" if item["ok"] else ("FAILED" if item["hard"] else "MISSED (target)")
        p(f"  [{mark}] {item['name']}: {item['detail']}")


def _loadavg(values) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def _pct(value: float | None) -> str:
    return f"{value:+.1%}" if value is not None else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="total of the three phases")
    parser.add_argument("--scale", type=float, default=1.0, help="client counts and rates")
    parser.add_argument("--json", help="also write the report to this file")
    parser.add_argument("--keep", help="work directory to keep (database, logs)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=N",
        help="override a count: pollers, dashboards, pages_per_second, bad_keys, bad_sockets",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    overrides = {name: float(value) for name, _, value in (s.partition("=") for s in args.set)}
    report = run(
        seconds=args.seconds,
        scale=args.scale,
        work_dir=args.keep,
        progress=lambda m: print(m, flush=True),
        **overrides,
    )
    print_report(report)
    print(f"\nWall time: {time.monotonic() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0 if all(c["ok"] for c in report["checks"] if c["hard"]) else 1


if __name__ == "__main__":
    sys.exit(main())
