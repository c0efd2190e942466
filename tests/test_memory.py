"""Memory of the HTTP path: large responses must not accumulate in the server (issue 8).

Django's ASGI handler left every request in a reference cycle holding its response, freed only
by CPython's rare full collections, so polled large API responses piled up by the hundred; and
glibc kept what was freed. ``smallstack.asgi`` and ``smallstack.memory`` fix both.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from smallstack import memory
from smallstack.asgi import ASGIHandler
from tests.conftest import wait_until

# -- in process: the handler ---------------------------------------------------------------

_responses: list[weakref.ref] = []
_view_events: dict[str, object] = {}


def _sized(request, size: int):
    response = HttpResponse(b"x" * size, content_type="application/octet-stream")
    _responses.append(weakref.ref(response))
    return response


async def _slow(request):
    _view_events["started"].set()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        _view_events["cancelled"] = True
        raise
    return HttpResponse("too late")


urlpatterns = [
    path("sized/<int:size>/", _sized),
    path("slow/", _slow),
]


def _scope(url: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


class _Connection:
    """One HTTP exchange as uvicorn runs it: after the response, ``receive()`` says disconnect."""

    def __init__(self, disconnect_after: asyncio.Event | None = None) -> None:
        self.sent: list[dict] = []
        self.complete = asyncio.Event()
        self._disconnect_after = disconnect_after
        self._requested = False

    async def receive(self) -> dict:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self._disconnect_after is not None:
            await self._disconnect_after.wait()  # the client goes away
        else:
            await self.complete.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


@override_settings(ROOT_URLCONF=__name__)
async def test_a_response_is_freed_as_soon_as_it_is_sent_without_the_garbage_collector():
    handler = ASGIHandler()
    _responses.clear()
    connection = _Connection()
    gc.disable()  # only reference counting may free it
    try:
        await handler(_scope("/sized/300000/"), connection.receive, connection.send)
        assert connection.sent[0]["status"] == 200
        assert len(connection.body()) == 300_000
        [response] = _responses
        assert response() is None, "the response outlived its request (a reference cycle)"
    finally:
        gc.enable()


@override_settings(ROOT_URLCONF=__name__)
async def test_a_client_leaving_before_the_response_still_cancels_the_view():
    handler = ASGIHandler()
    started = asyncio.Event()
    _view_events.clear()
    _view_events["started"] = started
    connection = _Connection(disconnect_after=started)
    await asyncio.wait_for(handler(_scope("/slow/"), connection.receive, connection.send), 5)
    assert _view_events.get("cancelled") is True
    assert connection.sent == []


@pytest.mark.skipif(not memory.available(), reason="no malloc_trim in this C library")
@override_settings(ROOT_URLCONF=__name__)
def test_only_a_large_response_asks_for_a_trim_and_gets_one():
    handler = ASGIHandler()

    def serve(size: int) -> None:
        connection = _Connection()
        asyncio.run(handler(_scope(f"/sized/{size}/"), connection.receive, connection.send))
        assert len(connection.body()) == size

    assert wait_until(lambda: not memory.pending(), memory.DELAY + 5)  # an earlier test's trim
    serve(memory.LARGE_RESPONSE - 1)
    assert not memory.pending()

    trims = memory.trims()
    serve(memory.LARGE_RESPONSE)
    assert memory.pending()
    assert wait_until(lambda: memory.trims() > trims, memory.DELAY + 5)
