"""Repeated conditional polls, answered in front of the operation that answered them first.

A monitor asks for the same URL every few seconds, with the same query string and credentials,
and sends back the ``ETag`` it was given. While the widget list's snapshot lasts
(:mod:`smallstack.api.snapshots`), each of those polls ends in the same 304, and most of the
work on the way to it is the same every time: ninja builds the query dictionary and validates
the parameters, and the view selects the registrations of the scope they name.

:class:`ConditionalPolls` remembers, for each path and query string, the scope the view answered
it for, once ninja had validated them. Applied to an operation with ninja's ``decorate_view``,
it answers a later poll of the same path and query string with 304 before the operation runs,
when:

- the poll sends ``If-None-Match``, and that scope's snapshot is still valid
  (:meth:`~smallstack.api.snapshots.Snapshots.current`) and has a matching ETag, and
- one of the operation's own auth callbacks accepts the credentials (it sets ``request.auth``,
  as ninja does), and the operation has no throttles (they count every request).

Anything else is left to the operation, unchanged: a first poll, another ETag, a snapshot that
ended, refused credentials (the operation checks them again and answers 401 or 403), or a
query string ninja has not validated (it answers 422 as always). So a poll answered here gets
the answer the operation would have given, only sooner.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Hashable
from functools import wraps
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

from smallstack import telemetry
from smallstack.api.conditional import not_modified
from smallstack.api.snapshots import snapshots

#: Paths with query strings remembered before all are forgotten.
MAX_REMEMBERED = 1024

Run = Callable[..., Awaitable[HttpResponseBase]]


class ConditionalPolls:
    """The path and query strings a view answered from snapshots; see the module's notes."""

    def __init__(self) -> None:
        self._scopes: dict[tuple[str, str, str], Hashable] = {}

    def remember(self, request: HttpRequest, scope: Hashable) -> None:
        """Note that ``request``'s path and query string, validated, name ``scope``."""
        if len(self._scopes) >= MAX_REMEMBERED:
            self._scopes.clear()
        self._scopes[_poll_key(request)] = scope

    def forget(self) -> None:
        self._scopes.clear()

    def __call__(self, run: Run) -> Run:
        """Decorate ninja's ``operation.run`` (use with ``ninja.decorators.decorate_view``)."""
        operation: Any = getattr(run, "__self__", None)
        if not hasattr(operation, "auth_callbacks") or not hasattr(operation, "throttle_objects"):
            raise ImproperlyConfigured(
                "ConditionalPolls decorates an operation's run method: apply it with "
                "ninja's decorate_view, closest to the operation."
            )

        @wraps(run)
        async def answer_or_run(request: HttpRequest, *args: Any, **kwargs: Any):
            # Throttles count every request: an operation with any is always run.
            if not operation.throttle_objects:
                answer = await self.answer(request, operation.auth_callbacks)
                if answer is not None:
                    return answer
            return await run(request, *args, **kwargs)

        return answer_or_run

    async def answer(
        self, request: HttpRequest, auth_callbacks: list[Callable[..., Any]]
    ) -> HttpResponseBase | None:
        """The 304 for a remembered, unchanged, authenticated poll; None to run the operation."""
        if not request.META.get("HTTP_IF_NONE_MATCH"):
            return None
        scope = self._scopes.get(_poll_key(request))
        if scope is None:
            return None
        snapshot = await snapshots.current(scope)
        if snapshot is None:
            return None
        response = not_modified(request, snapshot.etag)
        if response is None or not await _authenticated(request, auth_callbacks):
            return None
        telemetry.cache_lookups(len(snapshot.registrations), 0)
        return response


async def _authenticated(request: HttpRequest, auth_callbacks: list[Callable[..., Any]]) -> bool:
    """Whether an async auth callback accepts the request, tried in order as ninja does.

    A callback that raises or is synchronous (it would run on the event loop here) ends the
    attempt: the operation then runs its checks itself and answers as it does.
    """
    for callback in auth_callbacks:
        if not (getattr(callback, "is_async", False) or inspect.iscoroutinefunction(callback)):
            return False
        try:
            pending = callback(request)
            result = None if pending is None else await pending
        except Exception:
            return False
        if result:
            request.auth = result  # type: ignore[attr-defined]
            return True
    return False


def _poll_key(request: HttpRequest) -> tuple[str, str, str]:
    meta = request.META
    return meta.get("SCRIPT_NAME", ""), request.path_info, meta.get("QUERY_STRING", "")


#: The API's remembered polls, shared by its endpoints.
polls = ConditionalPolls()
