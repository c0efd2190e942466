"""Live push: render a widget's card, send it to every open dashboard when it changed.

- Every dashboard websocket joins one channel-layer group, :data:`BROADCAST_GROUP`; an update
  carries the widget's key and each consumer forwards it only if the key is in its scope. The
  message is serialised once, so one refresh costs one ``group_send`` however many clients watch.
- Change detection: a fingerprint of the item without its timing fields is kept in the dashboard
  cache (``SMALLSTACK_DASHBOARD["CACHE"]``); an update is pushed only when it differs. With a
  shared cache (Redis, Memcached, database) all processes agree; with the default per-process
  cache each process compares against what it last pushed itself. The cache is called off the
  event loop and through the engine's breaker: unavailable, updates are pushed unconditionally.
- Channel-layer failures (Redis down) never reach the caller: they are logged, the open
  dashboards are told that push is unavailable, and a per-process recovery loop re-joins their
  sockets to the group once the layer answers again, then tells them push is live (the browser
  then asks for a snapshot, so nothing missed stays stale).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

from smallstack import cards, conf, telemetry
from smallstack.contract import WidgetContext, digest, stable_item
from smallstack.engine import engine
from smallstack.loops import PerLoop
from smallstack.registry import Registration, registry

logger = logging.getLogger("smallstack.live")

#: The channel-layer group every dashboard socket joins.
BROADCAST_GROUP = "smallstack.dashboard"
#: Where browsers connect.
SOCKET_PATH = "/ws/smallstack/dashboard/"
_RECOVERY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)

telemetry.count_channel_layer_drops()


# -- rendering ------------------------------------------------------------------------------


def render_card(context: WidgetContext) -> str:
    """The card's HTML, as the page renders it (a failing template: that card in error)."""
    return cards.render_card(context)


async def update_message(context: WidgetContext) -> dict[str, Any]:
    """``{"type": "widget.update", "widget": <item>, "html": <card>}`` for one widget.

    Rendering runs off the event loop: a widget's own template may touch the database.
    """
    html = await sync_to_async(render_card, thread_sensitive=False)(context)
    return {"type": "widget.update", "widget": context.as_item(), "html": html}


def fingerprint(item: dict[str, Any]) -> str:
    """A digest of what a card shows: the item without its timing fields."""
    return digest(stable_item(item))


def _fingerprint_key(key: str) -> str:
    return f"smallstack:live:fingerprint:{key}"


async def _last_fingerprint(key: str) -> str | None:
    """The fingerprint last pushed (None if unknown, or the cache is unavailable: push anyway)."""
    return await engine.acache_call("get", _fingerprint_key(key))


async def _remember_fingerprint(key: str, value: str) -> None:
    await engine.acache_call("set", _fingerprint_key(key), value, timeout=conf.get("STALE_TTL"))


# -- the per-process hub ----------------------------------------------------------------------


class LiveSocket(Protocol):
    """What the hub needs from a connected dashboard consumer."""

    channel_name: str

    async def push_state_changed(self, available: bool) -> None: ...


class Hub:
    """This process's live state (one per event loop): open sockets and push health."""

    def __init__(self) -> None:
        self.sockets: weakref.WeakSet[LiveSocket] = weakref.WeakSet()
        self.available = True
        self.last_error: str | None = None
        self._recovered = asyncio.Event()
        self._recovered.set()
        self._recovery: asyncio.Task | None = None

    async def join(self, socket: LiveSocket) -> bool:
        """Add a socket to the broadcast group; False (recovery started) if the layer is down."""
        self.sockets.add(socket)
        if not self.available:
            return False
        try:
            await get_channel_layer().group_add(BROADCAST_GROUP, socket.channel_name)
        except Exception as exc:
            await self.lost(exc)
            return False
        return True

    async def leave(self, socket: LiveSocket) -> None:
        self.sockets.discard(socket)
        if not self.available:
            return
        try:
            await get_channel_layer().group_discard(BROADCAST_GROUP, socket.channel_name)
        except Exception as exc:
            logger.warning("Live push: could not leave the group: %s", exc)

    async def lost(self, exc: BaseException) -> None:
        """The channel layer failed: tell every socket, and start the recovery loop once."""
        if self.available:
            self.available = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._recovered.clear()
            logger.error("Live push unavailable (channel layer failed): %s", self.last_error)
            for socket in list(self.sockets):
                await _notify(socket, False)
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def wait_recovered(self) -> None:
        await self._recovered.wait()

    async def _recover(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(_RECOVERY_DELAYS[min(attempt, len(_RECOVERY_DELAYS) - 1)])
            attempt += 1
            layer = get_channel_layer()
            try:
                # Redis may have restarted empty: every local socket joins the group again.
                sockets = list(self.sockets)
                for socket in sockets:
                    await layer.group_add(BROADCAST_GROUP, socket.channel_name)
                if not sockets:
                    await layer.group_discard(BROADCAST_GROUP, "smallstack.probe!probe")
            except Exception as exc:
                logger.debug("Live push still unavailable: %s", exc)
                continue
            break
        self.available, self.last_error = True, None
        self._recovered.set()
        logger.warning("Live push available again")
        for socket in list(self.sockets):
            await _notify(socket, True)


async def _notify(socket: LiveSocket, available: bool) -> None:
    try:
        await socket.push_state_changed(available)
    except Exception:
        telemetry.send_failed()
        logger.debug("Live push: a socket could not be told about the push state", exc_info=True)


#: ``hub()``: the running event loop's hub.
hub = PerLoop(Hub)


# -- publishing ---------------------------------------------------------------------------------


async def publish(context: WidgetContext, *, force: bool = False) -> bool:
    """Push a widget's card to every open dashboard if it changed; True if it was sent."""
    return await _publish(context.key, await update_message(context), force=force)


async def _publish(
    key: str, message: dict[str, Any], *, force: bool = False, origin: str | None = None
) -> bool:
    """:func:`publish` of a rendered ``message``.

    ``origin``: the channel name of a socket that sends this update itself (its own refresh)
    and so skips the group's copy.
    """
    stamp = fingerprint(message["widget"])
    if not force and await _last_fingerprint(key) == stamp:
        return False
    event = {
        "type": "widget.update",
        "key": key,
        "text": json.dumps(message, separators=(",", ":")),
    }
    if origin is not None:
        event["origin"] = origin
    try:
        await _group_send(event)
    except Exception as exc:
        telemetry.send_failed()
        # Not remembered: once push is back the same result still counts as a change.
        current = hub()
        if current.sockets:
            await current.lost(exc)
        else:  # e.g. refresh() from a signal handler, on a loop that serves no socket
            logger.error("Live push unavailable (channel layer failed): %r", exc)
        return False
    await _remember_fingerprint(key, stamp)
    return True


def session_digest(session_key: str) -> str:
    """How a session is named in channel-layer messages: a digest, never the key itself."""
    return hashlib.sha256(session_key.encode()).hexdigest()


async def aclose_user_sockets(user_id: Any, code: int, *, session_key: str | None = None) -> None:
    """Close open dashboards of one user, in every process, with ``code``.

    With ``session_key`` (signing out) only the sockets opened with that session are closed: the
    user's other sessions are still valid. Without it (lost staff or active status) every
    socket of the user is. A channel layer that is down is logged as an error: those sockets
    are closed when they reconnect (the handshake checks the user again).
    """
    event = {"type": "user.revoked", "user_id": str(user_id), "code": code}
    if session_key is not None:
        event["session"] = session_digest(session_key)
    try:
        await _group_send(event)
    except Exception as exc:
        telemetry.send_failed()
        logger.error("Could not close the live dashboards of user %s: %r", user_id, exc)


async def _group_send(event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    try:
        await layer.group_send(BROADCAST_GROUP, event)
    except Exception:
        # Once more: after a Redis restart the first use of a pooled connection can fail.
        await asyncio.sleep(0.05)
        await layer.group_send(BROADCAST_GROUP, event)


def _registration(key: str) -> Registration:
    registration = registry.get(key)
    if registration is None:
        raise KeyError(f"No dashboard widget is registered with key {key!r}")
    return registration


async def arefresh(key: str, *, force: bool = False) -> WidgetContext:
    """Re-evaluate the widget ``key`` now (ignoring ``cache_ttl``) and push it if it changed.

    A widget paused by its circuit breaker stays paused unless ``force`` is set: then this
    evaluation is its trial, which closes the breaker if it succeeds.
    Safe to call whether or not anyone watches and whether or not push is available.
    Raises ``KeyError`` for an unknown key.
    """
    [context] = await engine.evaluate([_registration(key)], fresh=True, force=force)
    await publish(context)
    return context


async def arefresh_for(key: str, origin: str) -> tuple[WidgetContext, dict[str, Any]]:
    """:func:`arefresh` asked for by one socket (channel name ``origin``).

    Also returns the card's ``widget.update`` message, changed or not, for that socket to send
    itself, ahead of whatever else it says about the refresh. The group's copy, sent only if the
    card changed, names the socket as its origin, so that socket does not get the card twice.
    """
    [context] = await engine.evaluate([_registration(key)], fresh=True)
    message = await update_message(context)
    await _publish(key, message, origin=origin)
    return context, message


def refresh(key: str, *, force: bool = False) -> WidgetContext:
    """Blocking twin of :func:`arefresh`, for sync code such as signal handlers."""
    return async_to_sync(arefresh)(key, force=force)


async def stream(registrations: Iterable[Registration], send) -> int:
    """Evaluate the registrations and ``await send(message)`` for each as soon as it finishes.

    An evaluation already in flight (started by a page that ran out of its render budget) is
    joined, not repeated. Returns how many cards were sent.
    """

    batch = await engine.start(registrations)
    for future in asyncio.as_completed(batch.contexts):
        await send(await update_message(await future))
        telemetry.push_sent()
    return len(batch.contexts)
