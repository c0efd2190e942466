"""The request log middleware: one row per answered request, buffered, never written inline.

Sync- and async-capable: under ASGI it is a coroutine that awaits the rest of the stack on
the event loop (no thread hop), under WSGI a plain function. After the response comes back it
appends one tuple to the in-memory buffer of :mod:`smallstack.activity.writer`; the database
is written by the writer's thread.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import LazyObject, empty

from smallstack.activity import conf
from smallstack.activity.writer import install_shutdown_hooks, writer

PATH_LENGTH = 500  # RequestLog.path's max_length


def resolved_user_id(request: HttpRequest) -> int | None:
    """The signed-in user's id if the request already loaded its user, else None.

    Never loads the user (that would be a session and a user query): a lazy ``request.user``
    that nothing evaluated, and no ``request.auser()`` result, mean "unknown".
    """
    user: Any = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        user = user._wrapped
        if user is empty:
            user = request.__dict__.get("_acached_user")  # set by request.auser()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


class RequestLogMiddleware:
    """Logs method, path, status, duration, user id and API token prefix of each request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        if not conf.get("ENABLED"):
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.excluded = conf.excluded_prefixes()
        writer.configure(
            capacity=int(conf.get("BUFFER_SIZE")),
            batch_size=int(conf.get("BATCH_SIZE")),
            flush_interval=float(conf.get("FLUSH_INTERVAL")),
        )
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        if request.path.startswith(self.excluded):
            return self.get_response(request)
        started, clock = time.time(), time.perf_counter()
        response = self.get_response(request)
        self.record(request, response, started, clock)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        install_shutdown_hooks()  # a no-op once done; needed in workers forked after loading
        if request.path.startswith(self.excluded):
            return await get_response(request)
        started, clock = time.time(), time.perf_counter()
        response = await get_response(request)
        self.record(request, response, started, clock)
        return response

    @staticmethod
    def record(
        request: HttpRequest, response: HttpResponseBase, started: float, clock: float
    ) -> None:
        token = getattr(request, "api_token", None)
        writer.add(
            (
                started,
                request.method or "",
                request.path[:PATH_LENGTH],
                response.status_code,
                (time.perf_counter() - clock) * 1000,
                resolved_user_id(request),
                getattr(token, "prefix", "") or "",
            )
        )
