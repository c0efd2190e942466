"""Multi-process push through a real Redis: two uvicorn servers, a real websocket client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings

from smallstack.refresher import LocalLock, RedisLock, Refresher
from tests.conftest import require_binary
from tests.servers import LiveServer, create_api_key, free_port, prepare_data_dir
from tests.test_ws import Counter

pytestmark = pytest.mark.redis


class RedisServer:
    """A throwaway redis-server on a loopback port; stop()/start() keep the port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(require_binary("redis-server"), tmp_path).start()
    yield server
    server.stop()


def session_headers(server: LiveServer) -> dict[str, str]:
    client = server.login()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": server.url}


async def open_socket(server: LiveServer, headers: dict[str, str]):
    socket = await websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/", additional_headers=headers
    )
    assert json.loads(await asyncio.wait_for(socket.recv(), 5)) == {
        "type": "status",
        "push": "live",
    }
    await socket.send(json.dumps({"type": "subscribe", "group": "Live"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "subscribed"
    return socket


async def next_message(socket, kind: str, within: float = 5.0, **match) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message


async def wait_for_headline(socket, headline: str, within: float) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if (
                message["type"] == "widget.update"
                and message["widget"]["key"] == "live-value"
                and message["widget"]["data"]["headline"] == headline
            ):
                return message


@pytest.fixture
def two_servers(tmp_path, redis_server):
    value_file = tmp_path / "value.txt"
    value_file.write_text("first")
    environ = prepare_data_dir(
        tmp_path / "data",
        DJANGO_SETTINGS_MODULE="tests.live_settings",
        REDIS_URL=redis_server.url,
        SMALLSTACK_LIVE_VALUE_FILE=str(value_file),
    )
    servers = [LiveServer(environ).start(), LiveServer(environ).start()]
    yield servers, value_file
    for server in servers:
        server.stop()


async def test_refresh_in_one_process_reaches_a_socket_on_the_other(two_servers, redis_server):
    (holder, trigger), value_file = two_servers
    headers = await asyncio.to_thread(session_headers, holder)
    watcher = await open_socket(holder, headers)
    refresher = await open_socket(trigger, {**headers, "Origin": trigger.url})

    value_file.write_text("second")
    started = time.monotonic()
    await refresher.send(json.dumps({"type": "refresh", "key": "live-value"}))
    message = await wait_for_headline(watcher, "second", within=5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"update took {elapsed:.2f} s across processes"
    assert ">second</p>" in message["html"]

    # Redis goes away: the page and the login keep working on both servers, and the open
    # socket is told that push is unavailable (instead of being dropped).
    await asyncio.to_thread(redis_server.stop)
    for server in (holder, trigger):
        client = await asyncio.to_thread(server.login)
        page = await asyncio.to_thread(client.get, "/smallstack/")
        assert page.status_code == 200, server.log()
        assert (await asyncio.to_thread(client.get, "/smallstack/?wait=1")).status_code == 200
    value_file.write_text("third")
    await refresher.send(json.dumps({"type": "refresh", "key": "live-value"}))
    assert (await next_message(refresher, "refreshed"))["key"] == "live-value"
    await next_message(watcher, "status", push="unavailable")

    # Redis is back (empty): both servers recover without a restart.
    await asyncio.to_thread(redis_server.start)
    await next_message(watcher, "status", within=15, push="live")
    await next_message(refresher, "status", within=15, push="live")
    value_file.write_text("fourth")
    await refresher.send(json.dumps({"type": "refresh", "key": "live-value"}))
    try:
        await wait_for_headline(watcher, "fourth", within=5)
    except TimeoutError:
        pytest.fail(f"no update after recovery:\n{holder.log()}\n---\n{trigger.log()}")
    await watcher.close()
    await refresher.close()
    for server in (holder, trigger):
        assert "Traceback" not in server.log(), server.log()


async def test_a_refresh_in_one_process_ends_the_304s_of_the_other(two_servers):
    """Repeated polls answered in front of the API operation (smallstack.api.polls) still
    follow a refresh made by another process: the results version is shared through Redis."""
    (poller, trigger), value_file = two_servers
    key = await asyncio.to_thread(create_api_key, poller.environ, "polls")
    path = f"{poller.url}/api/dashboard/widgets/?group=Live%20polls"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as client:
        first = await client.get(path)
        assert first.status_code == 200, first.text
        assert first.json()["widgets"][0]["data"]["headline"] == "first"
        etag = first.headers["ETag"]
        value_file.write_text("second")
        for _ in range(3):  # kept for 60 s: the file is not read again
            assert (await client.get(path, headers={"If-None-Match": etag})).status_code == 304

        headers = await asyncio.to_thread(session_headers, trigger)
        refresher = await open_socket(trigger, {**headers, "Origin": trigger.url})
        await refresher.send(json.dumps({"type": "refresh", "key": "live-cached"}))
        assert (await next_message(refresher, "refreshed"))["key"] == "live-cached"
        await refresher.close()
        changed = await client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200, changed.text
        assert changed.json()["widgets"][0]["data"]["headline"] == "second"
        new_etag = changed.headers["ETag"]
        assert new_etag != etag
        assert (await client.get(path, headers={"If-None-Match": new_etag})).status_code == 304
    for server in (poller, trigger):
        assert "Traceback" not in server.log(), server.log()


async def test_anonymous_socket_on_the_real_server_is_closed_4401(two_servers):
    (server, _), _ = two_servers
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/",
        additional_headers={"Origin": server.url},
    ) as socket:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
    assert closed.value.rcvd.code == 4401
    login_page = await asyncio.to_thread(httpx.get, f"{server.url}/accounts/login/")
    assert login_page.status_code == 200


async def test_redis_lock_refreshes_once_per_interval_across_processes(
    redis_server, register, group
):
    # Two refreshers stand for two server processes sharing one Redis.
    widget = Counter(refresh_interval=0.2)
    key = register(widget).key
    locks = [RedisLock(redis_server.url), RedisLock(redis_server.url)]
    refreshers = [Refresher(lock) for lock in locks]
    for refresher in refreshers:
        refresher.watch([key])
    await asyncio.sleep(1.1)
    for refresher in refreshers:
        refresher.unwatch([key])
    for lock in locks:
        await lock.close()
    runs = sum(r.runs[key] for r in refreshers)
    assert runs == widget.calls
    assert 3 <= widget.calls <= 6, f"{widget.calls} runs in 1.1 s at a 0.2 s interval"


async def test_without_a_shared_lock_each_process_would_refresh(register, group):
    # The contrast that makes the test above meaningful.
    widget = Counter(refresh_interval=0.2)
    key = register(widget).key
    refreshers = [Refresher(LocalLock()), Refresher(LocalLock())]
    for refresher in refreshers:
        refresher.watch([key])
    await asyncio.sleep(1.1)
    for refresher in refreshers:
        refresher.unwatch([key])
    assert sum(r.runs[key] for r in refreshers) >= 8
