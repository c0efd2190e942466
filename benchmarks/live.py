"""Live push fan-out and the page's render budget, on real uvicorn (one worker).

The server is one uvicorn worker serving ``tests.live_settings`` (the test widgets of
``tests/liveapp``: a "Live value" card that shows a file's text, and a "Live bench" group of 20
instant widgets plus one that takes 5 s) over its own migrated SQLite, in-memory channel layer.
This process is the client side, so client work never competes with the server's event loop:

- fan-out: ``LIVE_CLIENTS`` (default 500) websocket clients, signed in and subscribed; the file
  changes, one more socket asks the server to refresh the card, and we time until the last of
  the clients has the new card. Target: < 1 s.
- TTFB: time to the first byte of the "Live bench" page, where one widget takes 5 s. Target:
  ``RENDER_BUDGET`` + 50 ms (the slow card arrives later over the websocket).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import websockets

from tests.servers import LiveServer, prepare_data_dir

CLIENTS = int(os.environ.get("LIVE_CLIENTS", "500"))
ROUNDS = 5
RENDER_BUDGET = 0.3
TARGET_FANOUT_S = 1.0
TTFB_TARGET_MS = RENDER_BUDGET * 1000 + 50


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


async def _open(url: str, headers: dict[str, str]):
    socket = await websockets.connect(url, additional_headers=headers, max_queue=None)
    assert json.loads(await socket.recv())["type"] == "status"
    await socket.send(json.dumps({"type": "subscribe", "group": "Live"}))
    assert json.loads(await socket.recv())["type"] == "subscribed"
    return socket


async def _until(socket, headline: str) -> float:
    while True:
        message = json.loads(await socket.recv())
        if message["type"] == "widget.update" and message["widget"]["data"]["headline"] == headline:
            return time.perf_counter()


def session_headers(server: LiveServer) -> dict[str, str]:
    cookie = server.login().cookies["sessionid"]
    return {"Cookie": f"sessionid={cookie}", "Origin": server.url}


async def fan_out(server: LiveServer, value_file: Path, headers: dict[str, str]) -> list[float]:
    url = f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/"
    sockets = []
    for start in range(0, CLIENTS, 50):  # connect in batches
        batch = min(50, CLIENTS - start)
        sockets += await asyncio.gather(*(_open(url, headers) for _ in range(batch)))
    trigger = await _open(url, headers)
    results = []
    try:
        for round_ in range(ROUNDS):
            headline = f"round {round_}"
            await asyncio.to_thread(value_file.write_text, headline)
            waiters = [asyncio.ensure_future(_until(s, headline)) for s in sockets]
            started = time.perf_counter()
            await trigger.send(json.dumps({"type": "refresh", "key": "live-value"}))
            arrivals = await asyncio.wait_for(asyncio.gather(*waiters), 30)
            results.append(max(arrivals) - started)
            await asyncio.sleep(0.3)
    finally:
        await asyncio.gather(*(s.close() for s in [*sockets, trigger]), return_exceptions=True)
    return results


def ttfb(server: LiveServer) -> list[float]:
    client = server.login()
    path = "/smallstack/group/Live%20bench/"
    client.get(path)  # warm-up (templates, first evaluation)
    times = []
    for _ in range(10):
        started = time.perf_counter()
        with client.stream("GET", path) as response:
            next(response.iter_bytes())
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        time.sleep(0.2)
    return times


def main() -> None:
    _raise_fd_limit(CLIENTS * 2 + 256)
    with tempfile.TemporaryDirectory(prefix="smallstack-live-bench-") as tmp:
        value_file = Path(tmp) / "value.txt"
        value_file.write_text("start")
        environ = prepare_data_dir(
            Path(tmp) / "data",
            DJANGO_SETTINGS_MODULE="tests.live_settings",
            SMALLSTACK_LIVE_VALUE_FILE=str(value_file),
            SMALLSTACK_RENDER_BUDGET=str(RENDER_BUDGET),
            SMALLSTACK_WIDGET_TIMEOUT="10",
        )
        server = LiveServer(environ).start()
        try:
            print(f"\nLive push: {CLIENTS} websocket clients on one uvicorn worker")
            seconds = asyncio.run(fan_out(server, value_file, session_headers(server)))
            print(
                f"  refresh -> last client updated: median {statistics.median(seconds) * 1000:.0f}"
                f" ms, worst {max(seconds) * 1000:.0f} ms over {ROUNDS} rounds"
                f" (target < {TARGET_FANOUT_S * 1000:.0f} ms)"
                f" {'OK' if max(seconds) < TARGET_FANOUT_S else 'MISSED'}"
            )
            times = ttfb(server)
            median_ms = statistics.median(times) * 1000
            print("Page with one 5 s widget among 20 instant ones (render budget 300 ms)")
            print(
                f"  time to first byte: median {median_ms:.0f} ms, worst {max(times) * 1000:.0f}"
                f" ms over {len(times)} requests (target < {TTFB_TARGET_MS:.0f} ms)"
                f" {'OK' if max(times) * 1000 < TTFB_TARGET_MS else 'MISSED'}"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    from benchmarks import setup

    setup()
    main()
