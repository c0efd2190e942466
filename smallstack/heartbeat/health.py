"""``/health/live/`` and ``/health/ready/`` for load balancers and orchestrators, no login.

:class:`HealthMiddleware` goes first in ``MIDDLEWARE`` and answers these two paths itself, so
they cost none of the stack behind it: no session, CSRF, authentication or messages, no request
log row, no URL resolution, no ``ALLOWED_HOSTS`` check (a probe may address the process by IP).

- ``/health/live/``: 200 ``{"status": "ok"}`` at once, no I/O: the process answers.
- ``/health/ready/``: the database (``SELECT 1``) and, when Redis is configured
  (``settings.REDIS_URL``, or a ``channels_redis`` layer in ``CHANNEL_LAYERS``), a Redis
  ``PING``, concurrently, each within ``SMALLSTACK_HEARTBEAT["READY_TIMEOUT"]``. 200
  ``{"status": "ok", "checks": {...}}`` or 503 ``{"status": "error", "failed": [names],
  "checks": {...}}``; a failure is a short message, never a traceback.

Requests arriving while a readiness probe is in flight share its result (one probe at a time
per process and event loop), so a flood of polls costs one database query per probe duration.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from smallstack.heartbeat import conf, probes

LIVE_PATH, READY_PATH = "/health/live/", "/health/ready/"
_HEADERS = {"Cache-Control": "no-store"}


def redis_url() -> str:
    """The Redis the service depends on: ``settings.REDIS_URL``, else the channel layer's."""
    url = getattr(settings, "REDIS_URL", "") or ""
    if url:
        return str(url)
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get("default", {})
    if "redis" not in str(layer.get("BACKEND", "")).lower():
        return ""
    hosts = layer.get("CONFIG", {}).get("hosts") or ["redis://localhost:6379"]
    host = hosts[0]
    if isinstance(host, dict):
        host = host.get("address", "")
    if isinstance(host, (tuple, list)):
        host = f"redis://{host[0]}:{host[1]}"
    return str(host)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


async def ping_redis(url: str, seconds: float) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url, socket_connect_timeout=seconds, socket_timeout=seconds)
    try:
        if not await client.ping():
            raise RuntimeError("PING was not answered")
    finally:
        await client.aclose()


async def _timed(name: str, coro: Any, seconds: float) -> tuple[str, dict[str, Any]]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(coro, seconds)
        status, message = "ok", ""
    except TimeoutError:
        status, message = "error", f"no answer within {seconds:g} s"
    except Exception as exc:
        status, message = "error", f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
    ms = round((time.perf_counter() - started) * 1000, 2)
    return name, {"status": status, "ms": ms, "message": message}


async def readiness() -> dict[str, Any]:
    """Probe the database and (if configured) Redis; the JSON body of ``/health/ready/``."""
    timeout = float(conf.get("READY_TIMEOUT"))
    probes_ = [_timed("database", probes.check_database(), timeout)]
    url = redis_url()
    if url:
        probes_.append(_timed("redis", ping_redis(url, timeout), timeout))
    checks = dict(await asyncio.gather(*probes_))
    if url and checks["redis"]["message"]:
        checks["redis"]["message"] += f" ({_safe(url)})"
    failed = [name for name, result in checks.items() if result["status"] != "ok"]
    body: dict[str, Any] = {"status": "error" if failed else "ok"}
    if failed:
        body["failed"] = failed
    body["checks"] = checks
    return body


_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]] = (
    weakref.WeakKeyDictionary()
)


async def shared_readiness() -> dict[str, Any]:
    """:func:`readiness`, joined by every request that arrives while it runs."""
    loop = asyncio.get_running_loop()
    future = _in_flight.get(loop)
    if future is None:
        future = asyncio.ensure_future(readiness())
        _in_flight[loop] = future
        future.add_done_callback(lambda _f: _in_flight.pop(loop, None))
    return await asyncio.shield(future)


def live_response() -> JsonResponse:
    return JsonResponse({"status": "ok"}, headers=_HEADERS)


async def ready_response() -> JsonResponse:
    try:
        body = await shared_readiness()
    except Exception as exc:  # never a traceback, whatever failed
        body = {"status": "error", "failed": ["readiness"], "error": type(exc).__name__}
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503, headers=_HEADERS)


class HealthMiddleware:
    """Answers ``/health/live/`` and ``/health/ready/`` before the rest of ``MIDDLEWARE``.

    Async only (under WSGI, Django adapts it). Put it first in ``MIDDLEWARE``.
    """

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if path == LIVE_PATH:
            return live_response()
        if path == READY_PATH:
            return await ready_response()
        return await self.get_response(request)
