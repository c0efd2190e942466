"""The dashboard's websocket: ``/ws/smallstack/dashboard/``.

Client → server (JSON text, at most ``LIVE_MAX_MESSAGE`` characters):

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
``{"type": "status", "push": "live" | "unavailable"}`` and ``{"type": "error", "error": "…"}``.
Anonymous users are closed with code 4401, signed-in non-staff users with 4403.

A message the server cannot act on (not JSON, too large, nested too deeply, an unknown type or
field) is answered with an ``error`` saying what was wrong; an unexpected exception while
handling one is logged and answered with an ``error`` pointing to the server log. Either way the
connection stays open. However the consumer ends (a close, an exception escaping a handler, its
task being cancelled), it stops watching its widgets, leaves the broadcast group and cancels its
own refreshes and snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from smallstack import conf, live
from smallstack.refresher import refresher
from smallstack.registry import registry

logger = logging.getLogger("smallstack.live")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
#: Refreshes one socket may have running at once.
MAX_REFRESHES_IN_PROGRESS = 8


class ClientError(ValueError):
    """A message the server cannot act on; reported back, the connection stays open."""


class DashboardConsumer(AsyncWebsocketConsumer):
    """One open dashboard: follows a scope and forwards the updates of its widgets."""

    keys: frozenset[str] = frozenset()
    scope_filters: dict[str, Any] | None = None
    _joined = False
    _snapshot: asyncio.Task | None = None

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

    # -- channel-layer receive that survives the layer going away --------------------------

    @property
    def channel_receive(self):
        return self._receive_from_layer

    @channel_receive.setter
    def channel_receive(self, receive) -> None:
        self._layer_receive = receive

    async def _receive_from_layer(self) -> dict[str, Any]:
        # Channels ends the consumer (and so the socket) when this raises, e.g. with Redis
        # down. Report it to the hub instead and wait until the hub has re-joined the group.
        while True:
            try:
                return await _cancel_surely(self._layer_receive())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await live.hub().lost(exc)
                await live.hub().wait_recovered()

    # -- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        # Accept first: a close before accepting reaches the browser as a bare HTTP 403,
        # while these codes let the page tell "signed out" from "not allowed".
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not (user.is_active and user.is_staff):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self._joined = True
        self._follow({}, live_registrations(dashboard_only=True))
        available = await live.hub().join(self)
        await self._send({"type": "status", "push": "live" if available else "unavailable"})

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
        keys, self.keys = self.keys, frozenset()
        refresher().unwatch(keys)
        await asyncio.shield(live.hub().leave(self))

    async def push_state_changed(self, available: bool) -> None:
        await self._send({"type": "status", "push": "live" if available else "unavailable"})

    # -- client messages ------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if not self._joined:
            return
        kind = None
        try:
            message = self._parse(text_data, bytes_data)
            kind = message.get("type")
            if kind == "subscribe":
                await self._subscribe(message)
            elif kind == "snapshot":
                self._start_snapshot(message)
            elif kind == "refresh":
                await self._refresh(message)
            else:
                shown = repr(kind) if kind is None or isinstance(kind, str) else "(not a string)"
                raise ClientError(
                    f"unknown message type {shown}; expected subscribe, snapshot or refresh"
                )
        except ClientError as exc:
            await self._send({"type": "error", "error": str(exc)})
        except Exception:
            # A bug of ours, not the client's: log it, say so, and keep serving the socket.
            logger.exception(
                "Dashboard socket: handling a %s message failed",
                repr(kind) if isinstance(kind, str) else "client",
            )
            await self._send(
                {
                    "type": "error",
                    "error": "internal error handling the message; see the server log",
                }
            )

    @staticmethod
    def _parse(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise ClientError("binary messages are not supported; send JSON text")
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

    async def _subscribe(self, message: dict[str, Any]) -> None:
        unknown = set(message) - {"type", "group", "app"}
        if unknown:
            raise ClientError(f"unexpected field(s) in subscribe: {', '.join(sorted(unknown))}")
        group, app = message.get("group"), message.get("app")
        if group is not None and app is not None:
            raise ClientError("subscribe to a group or to an app, not both")
        for name, value in (("group", group), ("app", app)):
            if value is not None and not isinstance(value, str):
                raise ClientError(f"'{name}' must be a string")
        if group is not None:
            if group not in registry.groups():
                raise ClientError(f"unknown group {group!r}")
            filters: dict[str, Any] = {"group": group}
        elif app is not None:
            if app not in registry.app_labels():
                raise ClientError(f"unknown app {app!r}")
            filters = {"app": app}
        else:
            filters = {}
        registrations = live_registrations(**filters, dashboard_only=not filters)
        self._follow(filters, registrations)
        await self._send(
            {"type": "subscribed", "scope": filters, "keys": [r.key for r in registrations]}
        )

    def _follow(self, filters: dict[str, Any], registrations) -> None:
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

    def _start_snapshot(self, message: dict[str, Any]) -> None:
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
        self._snapshot = asyncio.get_running_loop().create_task(self._run_snapshot(registrations))

    async def _run_snapshot(self, registrations) -> None:
        try:
            count = await live.stream(registrations, self._send)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Dashboard snapshot failed")
            await self._send({"type": "error", "error": "snapshot failed; see the server log"})
            return
        await self._send({"type": "snapshot.done", "count": count})

    async def _refresh(self, message: dict[str, Any]) -> None:
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
            await self._send({"type": "error", "error": f"unknown widget {key!r}"})
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Dashboard refresh of %s failed", key)
            await self._send(
                {"type": "error", "error": f"refresh of {key!r} failed; see the server log"}
            )
            return
        if key in self.keys:
            await self._send(update)
        await self._send({"type": "refreshed", "key": key, "state": context.state})

    # -- channel-layer events ---------------------------------------------------------------

    async def user_revoked(self, event: dict[str, Any]) -> None:
        """Its user lost staff access (any session), or its session signed out: close."""
        user = self.scope.get("user")
        if user is None or str(user.pk) != event.get("user_id"):
            return
        if "session" in event and event["session"] != self._session_digest():
            return  # another session of the same user signed out
        await self.close(code=event["code"])

    def _session_digest(self) -> str | None:
        """The digest of the session this socket was opened with (None: no session)."""
        session = self.scope.get("session")
        key = session.session_key if session is not None else None
        return live.session_digest(key) if key else None

    async def widget_update(self, event: dict[str, Any]) -> None:
        # A socket's own refresh was sent to it directly (see _run_refresh).
        if event.get("key") in self.keys and event.get("origin") != self.channel_name:
            await self.send(text_data=event["text"])

    async def _send(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":")))


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


def live_registrations(**filters: Any):
    return registry.select(**filters)
