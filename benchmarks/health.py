"""``/health/ready/`` under load, next to a bare async view, in one run on real uvicorn.

The server is ``benchmarks/api.py``'s (``benchmarks.api_settings``: production settings and
middleware, ``/bench/bare/`` a bare async ``JsonResponse`` view behind the whole stack). 100
keep-alive clients poll back to back, without cookies, ``BENCH_SECONDS`` (default 20) per row in
interleaved slices: the bare view, ``/health/ready/`` (a database round trip, answered by the
health middleware first in ``MIDDLEWARE``) and ``/health/live/`` (no I/O). Target: ready >= 0.9
times the bare view's requests/s.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import httpx

from benchmarks.api import CLIENTS, ROUNDS, WORKERS, Run, _measure
from tests.servers import LiveServer, prepare_data_dir

TARGET_RATIO = 0.9


def _ready(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json()["status"] == "ok"


def _ok(response: httpx.Response) -> bool:
    return response.status_code == 200


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    with tempfile.TemporaryDirectory(prefix="smallstack-bench-health-") as data_dir:
        environ = prepare_data_dir(
            Path(data_dir),
            DJANGO_SETTINGS_MODULE="benchmarks.api_settings",
            SECRET_KEY="benchmark-only",
            DEBUG="0",
            SECURE_COOKIES="0",
        )
        server = LiveServer(environ, workers=WORKERS).start()
        rows = [
            (Run("bare async view"), "/bench/bare/", _ok),
            (Run("/health/ready/"), "/health/ready/", _ready),
            (Run("/health/live/"), "/health/live/", _ok),
        ]
        try:
            for _ in range(ROUNDS):
                for run, path, expect in rows:
                    asyncio.run(_measure(server, run, path, {}, expect, seconds / ROUNDS))
        finally:
            server.stop()
    _report([run for run, *_ in rows], seconds)


def _report(runs: list[Run], seconds: float) -> None:
    print(
        f"\nHealth endpoints: {CLIENTS} keep-alive clients, {seconds:g} s per row, "
        f"{WORKERS} uvicorn worker(s), {os.cpu_count()} CPU cores shared with the load generator."
    )
    print(f"{'':<18} {'req/s':>7} {'p50':>9} {'p99':>9} {'errors':>7} {'CPU/req':>9}")
    for run in runs:
        print(
            f"{run.name:<18} {run.rps:>7.0f} {run.percentile(0.5):>7.1f}ms "
            f"{run.percentile(0.99):>7.1f}ms {run.errors:>7} "
            f"{run.cpu_seconds * 1000 / max(1, len(run.latencies)):>7.2f}ms"
        )
        if run.first_error:
            print(f"{'':<18} first error: {run.first_error}")
    bare, ready = runs[0], runs[1]
    ratio = ready.rps / bare.rps if bare.rps else 0.0
    print(f"/health/ready/ / bare view: {ratio:.2f}x")
    checks = [
        ("zero errors", all(run.errors == 0 for run in runs)),
        (f"ready >= {TARGET_RATIO:.1f} x bare ({ratio:.2f})", ratio >= TARGET_RATIO),
    ]
    print("Targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))


if __name__ == "__main__":
    from benchmarks import setup

    setup()
    main()
