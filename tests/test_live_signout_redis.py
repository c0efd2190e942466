"""Signing out and demotion across processes: two uvicorn servers sharing one Redis.

Signing out closes the sockets of that session only, on every server; losing staff status
closes every socket of the user, on every server, whichever process saved the user.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from django.conf import settings

from tests.servers import LiveServer, manage
from tests.test_live_redis import next_message, open_socket, redis_server, two_servers  # noqa: F401

pytestmark = pytest.mark.redis


def headers_for(client: httpx.Client, server: LiveServer) -> dict[str, str]:
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": server.url}


def sign_out_through(client: httpx.Client, server: LiveServer) -> None:
    """POST the logout form of ``server`` with the session and CSRF cookies of ``client``."""
    cookies = {
        settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME],
        settings.CSRF_COOKIE_NAME: client.cookies[settings.CSRF_COOKIE_NAME],
    }
    response = httpx.post(
        f"{server.url}/accounts/logout/",
        cookies=cookies,
        headers={"X-CSRFToken": cookies[settings.CSRF_COOKIE_NAME], "Origin": server.url},
    )
    assert response.status_code == 302, response.text


async def closed_with(socket, within: float = 5.0) -> int:
    async with asyncio.timeout(within):
        while True:
            try:
                await socket.recv()
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None


async def still_open(socket, seconds: float = 0.5) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await socket.recv())
                assert message["type"] in {"widget.update", "status"}, message
    except TimeoutError:
        return True
    except websockets.ConnectionClosed:
        return False


async def test_sign_out_closes_that_session_everywhere_and_demotion_closes_all(
    two_servers,  # noqa: F811 — the fixture imported above
):
    (first, second), value_file = two_servers
    laptop, phone = await asyncio.gather(
        asyncio.to_thread(first.login), asyncio.to_thread(second.login)
    )
    laptop_here = await open_socket(first, headers_for(laptop, first))
    laptop_there = await open_socket(second, headers_for(laptop, second))
    phone_here = await open_socket(first, headers_for(phone, first))
    phone_there = await open_socket(second, headers_for(phone, second))

    # The laptop signs out through the second server: its sockets on both servers close.
    await asyncio.to_thread(sign_out_through, laptop, second)
    assert await closed_with(laptop_here) == 4401
    assert await closed_with(laptop_there) == 4401
    assert await still_open(phone_here) and await still_open(phone_there, 0.1)

    # The phone's sockets still get pushes from either server; the requester gets its card
    # before the "refreshed" reply, over a real Redis too.
    value_file.write_text("after sign-out")
    await phone_there.send(json.dumps({"type": "refresh", "key": "live-value"}))
    update = json.loads(await asyncio.wait_for(phone_there.recv(), 5))
    assert update["type"] == "widget.update", update
    assert update["widget"]["data"]["headline"] == "after sign-out"
    refreshed = json.loads(await asyncio.wait_for(phone_there.recv(), 5))
    assert refreshed == {"type": "refreshed", "key": "live-value", "state": "ok"}
    with pytest.raises(TimeoutError):  # and not a second time through the group
        await asyncio.wait_for(phone_there.recv(), 0.5)
    update = await next_message(phone_here, "widget.update")
    assert update["widget"]["data"]["headline"] == "after sign-out"

    # Demoted by a third process (a management command): every socket of the user closes.
    await asyncio.to_thread(
        manage,
        first.environ,
        "shell",
        "-c",
        "from django.contrib.auth.models import User\n"
        "user = User.objects.get(username='demo')\n"
        "user.is_staff = False\n"
        "user.save()",
    )
    assert await closed_with(phone_here) == 4403
    assert await closed_with(phone_there) == 4403
    for server in (first, second):
        assert "Traceback" not in server.log(), server.log()
