"""One call at a time per key, its result shared by the callers that ask while it runs.

:func:`joined` runs ``call()`` for the first caller of a key; callers of the same key that come
while it runs wait for that result instead of making the call again. Each waits with
:func:`asyncio.wait`, so a waiter's cancellation leaves the others be, and if the caller making
the call is cancelled, the next waiter makes it. Only callers on the same event loop share
(a future belongs to its loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


async def joined(
    pending: dict[K, asyncio.Future[T]],
    key: K,
    call: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool] | None = None,
) -> T:
    """``call()``'s result, or the result of the same key's call in progress.

    ``pending`` holds the calls in progress by key (the caller's own dictionary). A shared
    result that ``accept`` refuses is not taken: this caller then makes the call itself.
    """
    loop = asyncio.get_running_loop()
    while (shared := pending.get(key)) is not None and shared.get_loop() is loop:
        await asyncio.wait([shared])
        if shared.cancelled():
            continue  # the caller making it went away: join the next call, or make it
        result = shared.result()
        if accept is None or accept(result):
            return result
        break
    future: asyncio.Future[T] = loop.create_future()
    pending[key] = future
    try:
        result = await call()
    except BaseException:
        future.cancel()
        raise
    finally:
        if pending.get(key) is future:
            del pending[key]
    future.set_result(result)
    return result
