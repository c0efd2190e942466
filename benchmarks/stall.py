"""A CPU-bound ``async def`` widget against a real uvicorn worker: does the server still answer?

The widget (``tests.hostileapp``'s ``spins-async``) computes for 5 s without awaiting, timeout
1 s. One client requests it back to back through the API while another times
``GET /accounts/login/`` (a page that touches no widget) one request after another. Three rows,
each on a fresh worker:

- alone: the login page with no widget running;
- interrupted: the widget runs under the default ``LOOP_BLOCK_LIMIT`` (0.5 s), cooldown 0 so
  that every API request evaluates it again (the worst case: it spins half of every second);
- not interrupted: ``LOOP_BLOCK_LIMIT`` 60 s, so the widget spins its full 5 s on the widget
  loop each time.

Run: ``python -m benchmarks.stall`` (part of ``make bench``). ``STALL_SECONDS`` sets each row's
length (default 8).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.servers import LiveServer, create_api_key, prepare_data_dir

SECONDS = float(os.environ.get("STALL_SECONDS", "8"))
TARGET_P99_S = 0.25


def login_times(url: str, seconds: float) -> list[float]:
    """Durations of ``GET /accounts/login/``, one request after another, for ``seconds``."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            response = client.get("/accounts/login/")
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
            time.sleep(0.01)
    return times


def _row(data_dir: Path, name: str, spin: bool, **env: str) -> dict:
    environ = prepare_data_dir(data_dir, DJANGO_SETTINGS_MODULE="tests.hostile_settings", **env)
    key = create_api_key(environ, "stall-bench")
    server = LiveServer(environ).start()
    stop, answers = threading.Event(), []

    def spin_widget() -> None:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as api:
            while not stop.is_set():
                item = api.get("/api/dashboard/widgets/spins-async/").json()
                answers.append(item["error"] or item["state"])

    try:
        login_times(server.url, 1.0)  # warm up
        spinner = threading.Thread(target=spin_widget, daemon=True)
        if spin:
            spinner.start()
            time.sleep(0.2)
        times = login_times(server.url, SECONDS)
        stop.set()
        if spin:
            spinner.join(30)
    finally:
        server.stop()
    # A stalled server may answer only once or twice in a row's time.
    quantiles = statistics.quantiles(times, n=100) if len(times) > 1 else [times[0]] * 99
    return {
        "name": name,
        "requests": len(times),
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": max(times) * 1000,
        "widget_answers": len(answers),
        "widget_said": sorted(set(answers))[:3],
    }


def main() -> None:
    print(f"\nCPU-bound async widget vs the login page (one uvicorn worker, {SECONDS:g} s a row)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="stall-bench-") as tmp:
        rows.append(_row(Path(tmp) / "alone", "alone", spin=False))
        rows.append(
            _row(
                Path(tmp) / "interrupted",
                "spinning, interrupted at 0.5 s",
                spin=True,
                SMALLSTACK_LOOP_BLOCK_COOLDOWN="0",
            )
        )
        rows.append(
            _row(
                Path(tmp) / "free",
                "spinning, not interrupted (5 s)",
                spin=True,
                SMALLSTACK_LOOP_BLOCK_LIMIT="60",
                SMALLSTACK_LOOP_BLOCK_COOLDOWN="0",
            )
        )
    print(f"{'row':34} {'requests':>8} {'p50':>9} {'p99':>9} {'max':>9}  widget answered")
    for row in rows:
        print(
            f"{row['name']:34} {row['requests']:>8} {row['p50_ms']:>7.1f}ms {row['p99_ms']:>7.1f}ms"
            f" {row['max_ms']:>7.1f}ms  {row['widget_answers']} times: {row['widget_said']}"
        )
    worst = max(row["p99_ms"] for row in rows[1:])
    verdict = "met" if worst < TARGET_P99_S * 1000 else "MISSED"
    print(f"target: login p99 < {TARGET_P99_S * 1000:.0f} ms while the widget spins: {verdict}")


if __name__ == "__main__":
    main()
