"""Django's ASGI handler, minus a reference cycle that kept every response alive until a full GC.

Django 5.2's ``ASGIHandler.handle()`` runs the view and a ``listen_for_disconnect()`` watcher
as two tasks. Once the response is sent, uvicorn answers the watcher's ``receive()`` with
``http.disconnect`` (as the ASGI spec says), so the watcher raises ``RequestAborted`` on every
request. ``handle()`` then fetches that exception with ``task.result()`` and ignores it, but by
then the exception's traceback holds ``handle()``'s frame, whose locals hold the task list, whose
watcher task holds the exception: a cycle. Through that frame it keeps the request, the response
and its body (``response.content``) alive until CPython's *full* (generation 2) collection runs,
and that runs rarely in a Django process: only once the objects surviving younger collections
add up to a quarter of the hundreds of thousands of long-lived ones. Big API responses therefore
piled up by the hundred: polling ten 200 KB widgets 200 times, 20 at a time, took uvicorn from
70 MB to 260 MB (two 5 MB widgets: to 1.1 GB), and it stayed there while idle (issue 8). One full
collection ran in those 200 polls.

:class:`ASGIHandler` watches what is sent, and its watcher returns quietly instead of raising
when the disconnect only means "the response is complete": no exception, no cycle, and the
response is freed by reference counting as soon as ``handle()`` returns. A disconnect that comes
before the response is complete (the client went away) still raises ``RequestAborted``, so
cancelling an abandoned view works exactly as in Django.
"""

from __future__ import annotations

import django
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler

from smallstack import memory

__all__ = ["ASGIHandler", "get_asgi_application"]


class _Exchange:
    """One request's ``receive`` (the instance itself) and ``send``, noting the response's end."""

    __slots__ = ("_receive", "_send", "body_bytes", "response_complete")

    def __init__(self, receive, send) -> None:
        self._receive, self._send = receive, send
        self.body_bytes = 0
        self.response_complete = False

    async def __call__(self):
        return await self._receive()

    async def send(self, message) -> None:
        await self._send(message)
        if message["type"] == "http.response.body":
            self.body_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.response_complete = True


class ASGIHandler(DjangoASGIHandler):
    """Django's handler; a completed response no longer leaves a reference cycle behind."""

    async def handle(self, scope, receive, send) -> None:
        exchange = _Exchange(receive, send)
        await super().handle(scope, exchange, exchange.send)
        # The response is freed by now; give its buffers back to the OS soon (see memory).
        if exchange.body_bytes >= memory.LARGE_RESPONSE:
            memory.release_soon()

    async def listen_for_disconnect(self, receive) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            if isinstance(receive, _Exchange) and receive.response_complete:
                return  # the normal end of a request: nothing to abort, nothing to raise
            raise RequestAborted()
        # As Django's: handle() closes the body and re-raises an AssertionError.
        raise AssertionError(f"Invalid ASGI message after request body: {message['type']}")


def get_asgi_application() -> ASGIHandler:
    """:func:`django.core.asgi.get_asgi_application`, with :class:`ASGIHandler`."""
    django.setup(set_prefix=False)
    return ASGIHandler()
