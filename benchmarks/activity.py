"""The request log's cost: API requests/s with the activity middleware and without it.

Two uvicorn servers over the same database and settings as ``benchmarks/api.py`` (production
settings, ten cached widgets in group "Bench"); one runs with ``SMALLSTACK_ACTIVITY=0`` (the
middleware removes itself). 100 keep-alive clients poll the API back to back, alternating
between the servers in slices so that load from elsewhere hits both alike. Target: with the
log >= 0.95 times without. ``BENCH_SECONDS`` (default 20) per server.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
from pathlib import Path

from benchmarks.api import API_PATH, ROUNDS, Run, _api_ok, _measure
from tests.servers import LiveServer, create_api_key, prepare_data_dir

TARGET_RATIO = 0.95


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", "20"))
    with tempfile.TemporaryDirectory(prefix="smallstack-bench-activity-") as data_dir:
        environ = prepare_data_dir(
            Path(data_dir),
            DJANGO_SETTINGS_MODULE="benchmarks.api_settings",
            SECRET_KEY="benchmark-only",
            DEBUG="0",
            SECURE_COOKIES="0",
        )
        auth = {"Authorization": f"Bearer {create_api_key(environ, 'bench')}"}
        db = Path(data_dir) / "db.sqlite3"
        with sqlite3.connect(db) as conn:
            logged_before = conn.execute("SELECT COUNT(*) FROM activity_requestlog").fetchone()[0]
        servers = {
            "without the request log": LiveServer({**environ, "SMALLSTACK_ACTIVITY": "0"}),
            "with the request log": LiveServer(environ),
        }
        runs = {name: Run(f"API {name}") for name in servers}
        try:
            for server in servers.values():
                server.start()
            for _ in range(ROUNDS):
                for name, server in servers.items():
                    asyncio.run(
                        _measure(server, runs[name], API_PATH, auth, _api_ok, seconds / ROUNDS)
                    )
        finally:
            for server in servers.values():
                server.stop()
        with sqlite3.connect(db) as conn:
            logged = conn.execute("SELECT COUNT(*) FROM activity_requestlog").fetchone()[0]
    _report(list(runs.values()), seconds, logged - logged_before)


def _report(runs: list[Run], seconds: float, logged: int) -> None:
    print(
        f"\nRequest log cost: the API, 100 keep-alive clients, {seconds:g} s per server, "
        f"one uvicorn worker each, {os.cpu_count()} CPU cores shared with the load generator."
    )
    print(f"{'':<34} {'req/s':>7} {'p50':>9} {'p99':>9} {'errors':>7} {'CPU/req':>9}")
    for run in runs:
        print(
            f"{run.name:<34} {run.rps:>7.0f} {run.percentile(0.5):>7.1f}ms "
            f"{run.percentile(0.99):>7.1f}ms {run.errors:>7} "
            f"{run.cpu_seconds * 1000 / max(1, len(run.latencies)):>7.2f}ms"
        )
        if run.first_error:
            print(f"{'':<34} first error: {run.first_error}")
    without, with_log = runs
    ratio = with_log.rps / without.rps if without.rps else 0.0
    answered = len(with_log.latencies) + with_log.errors
    checks = [
        ("zero errors", all(run.errors == 0 for run in runs)),
        (f"with >= {TARGET_RATIO:.2f} x without ({ratio:.3f})", ratio >= TARGET_RATIO),
        (f"every measured request logged ({logged} rows)", logged >= answered),
    ]
    print("Targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))


if __name__ == "__main__":
    from benchmarks import setup

    setup()
    main()
