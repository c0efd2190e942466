"""Short named locks that expire by themselves: per process, or shared by every process in Redis.

A lock is taken for a number of seconds and identified by a token. It ends when its holder
releases it (with the same token) or when its time is up, whichever comes first, so a holder
that dies never blocks the others for longer than the time it asked for.

- :class:`LocalLock`: a dict in this process.
- :class:`RedisLock`: ``SET key token NX PX ms`` in Redis (``SMALLSTACK_DASHBOARD["LOCK_URL"]``),
  released by a script that deletes the key only if it still holds the token. Its client is
  ``redis.asyncio``: never blocks the event loop, but belongs to the loop it was first used on.

Used by interval refreshes (:mod:`smallstack.refresher`: one run per period in all processes)
and by the engine (:mod:`smallstack.engine`: one evaluation of a ``cache_ttl`` widget at a time
in all processes).
"""

from __future__ import annotations

import time
from typing import Protocol

from smallstack import conf

#: Deletes the key if it still holds the caller's token (another holder's lock stays).
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""


class Lock(Protocol):
    """What both kinds of lock offer."""

    async def acquire(self, name: str, seconds: float, token: str = "1") -> float:
        """0 if taken for ``seconds``, else the seconds until it may be tried again."""
        ...

    async def release(self, name: str, token: str) -> bool:
        """End the lock early if ``token`` still holds it; whether it did."""
        ...

    async def remaining(self, name: str) -> float:
        """Seconds the lock is still held for (0 if free)."""
        ...

    async def close(self) -> None: ...


class LocalLock:
    """A lock that only this process sees."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, str]] = {}

    async def acquire(self, name: str, seconds: float, token: str = "1") -> float:
        now = time.monotonic()
        until, _ = self._held.get(name, (0.0, ""))
        if now < until:
            return until - now
        self._held[name] = (now + seconds, token)
        return 0.0

    async def release(self, name: str, token: str) -> bool:
        until, holder = self._held.get(name, (0.0, ""))
        if holder == token and time.monotonic() < until:
            del self._held[name]
            return True
        return False

    async def remaining(self, name: str) -> float:
        until, _ = self._held.get(name, (0.0, ""))
        return max(0.0, until - time.monotonic())

    async def close(self) -> None:
        self._held.clear()


class RedisLock:
    """The same lock in Redis, shared by every process using the URL (keys ``prefix + name``)."""

    def __init__(self, url: str, prefix: str = "smallstack:lock:") -> None:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError

        self.url, self.prefix = url, prefix
        self._client = redis.asyncio.from_url(
            url,
            socket_timeout=1,
            socket_connect_timeout=1,
            # Once more on a broken connection (Redis restarted since it was pooled); a Redis
            # that does not answer is not waited for twice.
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        )
        self._release = self._client.register_script(_RELEASE)

    async def acquire(self, name: str, seconds: float, token: str = "1") -> float:
        key = self.prefix + name
        milliseconds = max(1, int(seconds * 1000))
        if await self._client.set(key, token.encode(), nx=True, px=milliseconds):
            return 0.0
        remaining = await self._client.pttl(key)
        # -2: released in between; -1 (no expiry) cannot come from this class.
        return max(remaining, 1) / 1000 if remaining and remaining > 0 else 0.01

    async def release(self, name: str, token: str) -> bool:
        return bool(await self._release(keys=[self.prefix + name], args=[token.encode()]))

    async def remaining(self, name: str) -> float:
        milliseconds = await self._client.pttl(self.prefix + name)
        return milliseconds / 1000 if milliseconds and milliseconds > 0 else 0.0

    async def close(self) -> None:
        await self._client.aclose()


def lock_url() -> str:
    """The Redis URL locks are shared through, or "" for this process only."""
    return str(conf.get("LOCK_URL") or "")


def make_lock(prefix: str = "smallstack:lock:") -> LocalLock | RedisLock:
    """A lock of the configured kind (to be used on one event loop)."""
    url = lock_url()
    return RedisLock(url, prefix) if url else LocalLock()
