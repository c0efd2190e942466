"""Personal layouts end to end: real uvicorn servers, a signed-in session with its CSRF token
(as the page's script sends it), real websockets; with Redis, a layout saved on one server
reaches the user's socket on another."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings

from tests.conftest import require_binary
from tests.servers import LiveServer, prepare_data_dir
from tests.test_live_redis import RedisServer

LAYOUT = "/api/dashboard/layout/?scope=group:Live"
SOCKET = "/ws/smallstack/dashboard/"


def _environ(data_dir: Path, value_file: Path, **env: str) -> dict[str, str]:
    value_file.write_text("first")
    return prepare_data_dir(
        data_dir,
        DJANGO_SETTINGS_MODULE="tests.live_settings",
        SMALLSTACK_LIVE_VALUE_FILE=str(value_file),
        SMALLSTACK_LIVE_LATE_SECONDS="0.05",
        **env,
    )


@pytest.fixture
def server(tmp_path):
    value_file = tmp_path / "value.txt"
    live = LiveServer(_environ(tmp_path / "data", value_file)).start()
    yield live, value_file
    live.stop()


class Session:
    """The demo staff user signed in on ``server``: an async HTTP client carrying the session
    and CSRF cookies, and the headers a browser's websocket would send."""

    def __init__(self, server: LiveServer, signed_in: httpx.Client) -> None:
        self.server = server
        self.cookies = signed_in.cookies
        self.csrf = signed_in.cookies[settings.CSRF_COOKIE_NAME]
        self.http = httpx.AsyncClient(base_url=server.url, cookies=self.cookies, timeout=30)

    @classmethod
    async def sign_in(cls, server: LiveServer) -> Session:
        return cls(server, await asyncio.to_thread(server.login))

    def socket_headers(self, server: LiveServer | None = None) -> dict[str, str]:
        server = server or self.server
        name = settings.SESSION_COOKIE_NAME
        return {"Cookie": f"{name}={self.cookies[name]}", "Origin": server.url}

    async def open_socket(self, subscribe: dict, server: LiveServer | None = None):
        server = server or self.server
        socket = await websockets.connect(
            f"ws://127.0.0.1:{server.port}{SOCKET}",
            additional_headers=self.socket_headers(server),
        )
        assert (await _next(socket, "status"))["push"] == "live"
        await socket.send(json.dumps({"type": "subscribe", **subscribe}))
        subscribed = await _next(socket, "subscribed")
        return socket, subscribed["keys"]


async def _next(socket, kind: str, within: float = 5.0) -> dict:
    """The next message of type ``kind`` (others, such as pushes, are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == kind:
                return message


async def _updates_of(socket, key: str, within: float) -> list[dict]:
    """Every ``widget.update`` of ``key`` the socket gets within ``within`` seconds."""
    found = []
    try:
        async with asyncio.timeout(within):
            while True:
                message = json.loads(await socket.recv())
                if message["type"] == "widget.update" and message["widget"]["key"] == key:
                    found.append(message)
    except TimeoutError:
        pass
    return found


async def _refresh(socket, value_file: Path, value: str) -> None:
    """Change the live value and have ``socket`` refresh it (pushed to all, as it changed)."""
    await asyncio.to_thread(value_file.write_text, value)
    await socket.send(json.dumps({"type": "refresh", "key": "live-value"}))
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == "refreshed" and message["key"] == "live-value":
                return


def _grid(html: str) -> list[str]:
    grid = html.split('<section class="grid"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<article class="card[^"]*" data-key="([^"]+)"', grid)


async def test_a_saved_layout_shapes_the_page_the_api_and_the_open_socket(server):
    live, value_file = server
    session = await Session.sign_in(live)
    group_page, keys = await session.open_socket({"group": "Live"})
    assert keys == ["live-value", "late-card"]
    main_page, _ = await session.open_socket({})  # the main dashboard, where nothing is hidden

    # Without the CSRF token the session may not change anything.
    body = {"order": ["late-card", "live-value"], "hidden": ["live-value"]}
    refused = await session.http.put(LAYOUT, json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    saved = await session.http.put(LAYOUT, json=body, headers={"X-CSRFToken": session.csrf})
    assert saved.status_code == 200, saved.text
    assert saved.json()["hidden"] == ["live-value"]

    # The open page's socket follows at once, without reconnecting.
    changed = await _next(group_page, "layout.changed")
    assert changed == {"type": "layout.changed", "scope": {"group": "Live"}, "keys": ["late-card"]}
    await _refresh(main_page, value_file, "second")
    assert not await _updates_of(group_page, "live-value", within=1.0), "a hidden card was pushed"

    # The page and the API follow the layout too.
    page = await session.http.get("/smallstack/group/Live/?wait=1")
    assert _grid(page.text) == ["late-card"]
    assert 'data-key="live-value"' in page.text  # in the list of hidden cards
    listed = await session.http.get("/api/dashboard/widgets/?group=Live&layout=1")
    assert [w["key"] for w in listed.json()["widgets"]] == ["late-card"]

    # A reset brings the card back to the open socket.
    reset = await session.http.delete(LAYOUT, headers={"X-CSRFToken": session.csrf})
    assert reset.status_code == 200 and reset.json()["hidden"] == []
    assert (await _next(group_page, "layout.changed"))["keys"] == ["live-value", "late-card"]
    await _refresh(main_page, value_file, "third")
    [update] = await _updates_of(group_page, "live-value", within=1.0)
    assert update["widget"]["data"]["headline"] == "third"

    for socket in (group_page, main_page):
        await socket.close()
    await session.http.aclose()
    assert "Traceback" not in live.log(), live.log()


@pytest.fixture
def two_servers(tmp_path):
    redis = RedisServer(require_binary("redis-server"), tmp_path).start()
    value_file = tmp_path / "value.txt"
    environ = _environ(tmp_path / "data", value_file, REDIS_URL=redis.url)
    servers = [LiveServer(environ).start(), LiveServer(environ).start()]
    yield servers, value_file
    for live in servers:
        live.stop()
    redis.stop()


@pytest.mark.redis
async def test_a_layout_saved_on_one_server_reaches_the_socket_on_another(two_servers):
    (saving, watching), value_file = two_servers
    session = await Session.sign_in(saving)
    group_page, keys = await session.open_socket({"group": "Live"}, server=watching)
    assert "live-value" in keys
    main_page, _ = await session.open_socket({}, server=watching)

    saved = await session.http.put(
        LAYOUT, json={"hidden": ["live-value"]}, headers={"X-CSRFToken": session.csrf}
    )
    assert saved.status_code == 200, saved.text
    changed = await _next(group_page, "layout.changed")
    assert changed["keys"] == ["late-card"]
    await _refresh(main_page, value_file, "elsewhere")
    assert not await _updates_of(group_page, "live-value", within=1.0)

    for socket in (group_page, main_page):
        await socket.close()
    await session.http.aclose()
    for live in (saving, watching):
        assert "Traceback" not in live.log(), live.log()
