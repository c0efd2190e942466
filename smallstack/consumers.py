"""The dashboard's websocket: ``/ws/smallstack/dashboard/``.

Client → server (JSON text, at most ``LIVE_MAX_MESSAGE`` characters), one ``on_<type>`` method
per message type:

- ``{"type": "subscribe"}`` (main dashboard), ``{"type": "subscribe", "group": "…"}`` or
  ``{"type": "subscribe", "app": "…"}`` → ``{"type": "subscribed", "scope": …, "keys": […]}``.
- ``{"type": "snapshot"}`` or ``{"type": "snapshot", "keys": […]}`` → one ``widget.update`` per
  card of the scope (or of those keys) as each finishes, then ``{"type": "snapshot.done"}``.
- ``{"type": "refresh", "key": "…"}`` → re-evaluate that widget now. This socket gets the card
  as a ``widget.update`` whether or not it changed (if the widget is in its scope), then
  ``{"type": "refreshed", "key": …, "state": …}``; the other sockets get the update only if the
  card changed, as with any push. The requester's copy is sent directly and the group's copy
  is skipped by it, so the order holds however slow the channel layer is, and nobody gets a
  duplicate.

Server → client: ``{"type": "widget.update", "widget": <API item>, "html": <card>}``,
``{"type": "status", "push": "live" | "unavailable"}``, ``{"type": "error", "error": "…"}`` and
``{"type": "layout.changed", "scope": …, "keys": […]}``.

A socket follows its user's layout of the page it subscribed to (:mod:`smallstack.layouts`):
cards hidden there are not among its ``keys``, so they are neither pushed, nor snapshotted, nor
watched for it. When that user saves or resets the layout of that page (in any process), the
socket re-reads it and answers ``layout.changed`` with the keys it now follows.
Anonymous users are closed with code 4401, signed-in users the access policy refuses with 4403.

A message the server cannot act on (not JSON, too large, nested too deeply, an unknown type or
field, an unknown scope) is answered with an ``error`` saying what was wrong; an unexpected
exception while handling one is logged and answered with an ``error`` pointing to the server
log. Either way the connection stays open. However the consumer ends (a close, an exception
escaping a handler, its task being cancelled), it stops watching its widgets, leaves the
broadcast group and cancels its own refreshes and snapshot. A failing channel layer (Redis
down) does not end it either: see :class:`LayerReceiveThatRecovers`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from smallstack import conf, layouts, live, telemetry
from smallstack.access import can_use_dashboard
from smallstack.refresher import refresher
from smallstack.registry import Registration, UnknownScope, registry

logger = logging.getLogger("smallstack.live")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
#: Refreshes one socket may have running at once.
MAX_REFRESHES_IN_PROGRESS = 8
#: The client message types; each is handled by the consumer's ``on_<type>`` method.
CLIENT_MESSAGE_TYPES = ("subscribe", "snapshot", "refresh")

LayerReceive = Callable[[], Awaitable[dict[str, Any]]]


class ClientError(ValueError):
    """A message the server cannot act on; reported back, the connection stays open."""


# -- channel-layer receive that survives the layer going away --------------------------------


async def receive_through_outages(receive: LayerReceive) -> dict[str, Any]:
    """The next channel-layer message from ``receive``, waiting out failures of the layer.

    A failure is reported to the hub (which tells every open dashboard that push is unavailable
    and starts re-joining their sockets to the group), then waited out until the hub has
    recovered; the receive is then tried again.
    """
    while True:
        try:
            return await _cancel_surely(receive())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await live.hub().lost(exc)
            await live.hub().wait_recovered()


class LayerReceiveThatRecovers:
    """Holds a consumer's ``channel_receive`` and hands it back wrapped in
    :func:`receive_through_outages`.

    Channels offers no hook for a failing channel layer, so this relies on two internals of
    ``channels.consumer.AsyncConsumer.__call__`` (Channels 4.x):

    - it assigns ``self.channel_receive = functools.partial(layer.receive, self.channel_name)``;
    - it then reads ``self.channel_receive`` and passes it to
      ``channels.utils.await_many_dispatch``, which calls it for every next message and ends the
      consumer (and so closes the socket) as soon as a call raises, e.g. with Redis down.

    As a data descriptor on the consumer class it intercepts both: the assignment is kept, the
    read returns the wrapped receive. ``tests/test_ws_channels_contract.py`` fails if Channels
    stops doing either.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_of_the_layer"

    def __get__(self, consumer: Any, owner: type | None = None) -> Any:
        if consumer is None:
            return self
        try:
            receive = consumer.__dict__[self._slot]
        except KeyError:
            raise AttributeError("channel_receive: the consumer has no channel layer") from None
        return partial(receive_through_outages, receive)

    def __set__(self, consumer: Any, receive: LayerReceive) -> None:
        consumer.__dict__[self._slot] = receive


# -- the consumer ------------------------------------------------------------------------------


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    """One open dashboard: follows a scope and forwards the updates of its widgets."""

    keys: frozenset[str] = frozenset()
    scope_filters: dict[str, Any] | None = None
    #: The layout scope of the page followed ("dashboard", "group:…", "app:…").
    layout_scope: str | None = None
    _joined = False
    _snapshot: asyncio.Task | None = None

    channel_receive = LayerReceiveThatRecovers()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: set[asyncio.Task] = set()

    async def __call__(self, scope, receive, send) -> None:
        # Channels calls disconnect() only for a websocket.disconnect message: an exception
        # escaping a handler, or this task being cancelled, ends the consumer without it.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()

    # -- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close before accepting reaches the browser as a bare HTTP 403,
        # while these codes let the page tell "signed out" from "not allowed".
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not can_use_dashboard(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self._joined = True
        telemetry.socket_opened()
        self._follow({}, await self._visible({}, registry.scope()))
        available = await live.hub().join(self)
        await self.push_state_changed(available)

    async def disconnect(self, code: int) -> None:
        await self._release()

    async def _release(self) -> None:
        """Undo what connect() and the handlers set up; safe to call again (it then does nothing).

        The synchronous part comes first, so that it is done even if the task is cancelled
        again while leaving the group.
        """
        tasks = [*self._tasks, self._snapshot]
        self._snapshot = None
        for task in tasks:
            if task is not None:
                task.cancel()
        if not self._joined:
            return
        self._joined = False
        telemetry.socket_closed()
        keys, self.keys = self.keys, frozenset()
        refresher().unwatch(keys)
        await asyncio.shield(live.hub().leave(self))

    async def push_state_changed(self, available: bool) -> None:
        await self.send_json({"type": "status", "push": "live" if available else "unavailable"})

    # -- JSON in and out ------------------------------------------------------------------

    @classmethod
    async def decode_json(cls, text_data: str) -> dict[str, Any]:
        """A client message: a JSON object of at most ``LIVE_MAX_MESSAGE`` characters."""
        limit = int(conf.get("LIVE_MAX_MESSAGE"))
        if len(text_data) > limit:
            raise ClientError(f"message too large: {len(text_data)} characters, limit {limit}")
        try:
            message = json.loads(text_data)
        except RecursionError:
            # Deep nesting exhausts the parser's recursion well under the size limit.
            raise ClientError("malformed JSON: nested too deeply") from None
        except ValueError as exc:
            raise ClientError(f"malformed JSON: {exc}") from None
        if not isinstance(message, dict):
            raise ClientError("a message must be a JSON object with a 'type'")
        return message

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        return json.dumps(content, separators=(",", ":"))

    # -- client messages ------------------------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Channels' JSON receive, except that what cannot be decoded is answered, not raised.

        (Channels' own raises ``ValueError`` for a binary or empty frame, which would end the
        consumer.)
        """
        if not self._joined:
            return
        try:
            if text_data is None:
                raise ClientError("binary messages are not supported; send JSON text")
            content = await self.decode_json(text_data)
        except ClientError as exc:
            await self.send_error(str(exc))
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content.get("type")
        try:
            await self._handler_for(kind)(content)
        except ClientError as exc:
            await self.send_error(str(exc))
        except Exception:
            # A bug of ours, not the client's: log it, say so, and keep serving the socket.
            logger.exception(
                "Dashboard socket: handling a %s message failed",
                repr(kind) if isinstance(kind, str) else "client",
            )
            await self.send_error("internal error handling the message; see the server log")

    def _handler_for(self, kind: Any) -> Callable[[dict[str, Any]], Awaitable[None]]:
        if isinstance(kind, str) and kind in CLIENT_MESSAGE_TYPES:
            return getattr(self, f"on_{kind}")
        shown = repr(kind) if kind is None or isinstance(kind, str) else "(not a string)"
        expected = f"{', '.join(CLIENT_MESSAGE_TYPES[:-1])} or {CLIENT_MESSAGE_TYPES[-1]}"
        raise ClientError(f"unknown message type {shown}; expected {expected}")

    async def send_error(self, error: str) -> None:
        await self.send_json({"type": "error", "error": error})

    async def on_subscribe(self, message: dict[str, Any]) -> None:
        unknown = set(message) - {"type", "group", "app"}
        if unknown:
            raise ClientError(f"unexpected field(s) in subscribe: {', '.join(sorted(unknown))}")
        group, app = message.get("group"), message.get("app")
        if group is not None and app is not None:
            raise ClientError("subscribe to a group or to an app, not both")
        for name, value in (("group", group), ("app", app)):
            if value is not None and not isinstance(value, str):
                raise ClientError(f"'{name}' must be a string")
        try:
            registrations = registry.scope(group=group, app=app)
        except UnknownScope as exc:
            raise ClientError(str(exc)) from None
        filters = {"group": group} if group is not None else {"app": app} if app is not None else {}
        registrations = await self._visible(filters, registrations)
        self._follow(filters, registrations)
        await self.send_json(
            {"type": "subscribed", "scope": filters, "keys": [r.key for r in registrations]}
        )

    async def _visible(
        self, filters: dict[str, Any], registrations: list[Registration]
    ) -> list[Registration]:
        """The page's registrations in its user's layout, without the cards hidden there.

        A layout that cannot be read (the database failing) is logged and the page's default
        used: the page then ignores the cards it does not show.
        """
        page = layouts.scope_for(**filters)
        self.layout_scope = page.name
        try:
            _, visible, _ = await layouts.aarranged(
                self.scope.get("user"), page.name, registrations
            )
        except Exception:
            logger.exception("Dashboard socket: could not read the layout of %s", page.name)
            return registrations
        return visible

    def _follow(self, filters: dict[str, Any], registrations: list[Registration]) -> None:
        keys = frozenset(r.key for r in registrations)
        watcher = refresher()
        # self.keys always holds exactly the keys this socket is counted for, so that
        # _release() undoes just those, whatever fails in between.
        dropped, self.keys = self.keys - keys, self.keys & keys
        watcher.unwatch(dropped)
        for key in keys - self.keys:
            watcher.watch([key])
            self.keys |= {key}
        self.scope_filters = filters

    async def on_snapshot(self, message: dict[str, Any]) -> None:
        keys = message.get("keys")
        if keys is None:
            wanted = self.keys
        elif isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            wanted = self.keys & set(keys)
        else:
            raise ClientError("'keys' must be a list of widget keys")
        registrations = [r for r in registry.all() if r.key in wanted]
        if self._snapshot is not None:
            self._snapshot.cancel()
        # In the background: a later message (e.g. another snapshot) must not wait for it.
        self._snapshot = asyncio.get_running_loop().create_task(self._run_snapshot(registrations))

    async def _run_snapshot(self, registrations: list[Registration]) -> None:
        try:
            count = await live.stream(registrations, self.send_json)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Dashboard snapshot failed")
            await self.send_error("snapshot failed; see the server log")
            return
        await self.send_json({"type": "snapshot.done", "count": count})

    async def on_refresh(self, message: dict[str, Any]) -> None:
        key = message.get("key")
        if not isinstance(key, str):
            raise ClientError("'key' must be a widget key")
        if key not in registry:
            raise ClientError(f"unknown widget {key!r}")
        if len(self._tasks) >= MAX_REFRESHES_IN_PROGRESS:
            raise ClientError("too many refreshes in progress; wait for 'refreshed'")
        # In the background: a slow widget must not hold this socket's other messages.
        task = asyncio.get_running_loop().create_task(self._run_refresh(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_refresh(self, key: str) -> None:
        try:
            context, update = await live.arefresh_for(key, self.channel_name)
        except KeyError:
            await self.send_error(f"unknown widget {key!r}")
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Dashboard refresh of %s failed", key)
            await self.send_error(f"refresh of {key!r} failed; see the server log")
            return
        if key in self.keys:
            await self.send_json(update)
            telemetry.push_sent()
        await self.send_json({"type": "refreshed", "key": key, "state": context.state})

    # -- channel-layer events ---------------------------------------------------------------

    async def user_revoked(self, event: dict[str, Any]) -> None:
        """Its user lost dashboard access (any session), or its session signed out: close."""
        user = self.scope.get("user")
        if user is None or str(user.pk) != event.get("user_id"):
            return
        if "session" in event and event["session"] != self._session_digest():
            return  # another session of the same user signed out
        await self.close(code=event["code"])

    async def layout_changed(self, event: dict[str, Any]) -> None:
        """Its user saved or reset a layout (any process): re-read it if it is this page's."""
        user = self.scope.get("user")
        if (
            not self._joined
            or user is None
            or str(user.pk) != event.get("user_id")
            or event.get("scope") != self.layout_scope
            or self.scope_filters is None
        ):
            return
        filters = self.scope_filters
        try:
            registrations = registry.scope(**filters)
        except UnknownScope:
            return  # the page's last widget went away; nothing to follow
        registrations = await self._visible(filters, registrations)
        self._follow(filters, registrations)
        await self.send_json(
            {"type": "layout.changed", "scope": filters, "keys": [r.key for r in registrations]}
        )

    def _session_digest(self) -> str | None:
        """The digest of the session this socket was opened with (None: no session)."""
        session = self.scope.get("session")
        key = session.session_key if session is not None else None
        return live.session_digest(key) if key else None

    async def widget_update(self, event: dict[str, Any]) -> None:
        # Serialised once by the publisher for every socket. A socket's own refresh was sent
        # to it directly (see _run_refresh).
        if event.get("key") in self.keys and event.get("origin") != self.channel_name:
            await self.send(text_data=event["text"])
            telemetry.push_sent()


async def _cancel_surely(awaitable: Any) -> Any:
    """Await ``awaitable`` as a task; if cancelled, cancel it again until it has ended.

    A cancellation can be lost inside the Redis client when it races with the end of a
    command (Python 3.11's ``wait_for``): the channel-layer receive then carries on with its
    next blocking pop, and the consumer, which awaits it on the way out, never ends; nor does
    the server process on SIGTERM. Repeating the cancellation lands it on the next wait.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task})  # unlike ``await task``, a cancellation here is ours at once
    except asyncio.CancelledError:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if not task.cancelled():
            task.exception()  # retrieved: whatever it was, the consumer is ending anyway
        raise
    return task.result()
