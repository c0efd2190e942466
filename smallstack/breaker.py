"""A circuit breaker for the services the dashboard shares between processes (cache, locks).

When a shared cache or the lock's Redis fails, every page would otherwise wait for it (up to a
connect timeout, if the host does not answer) and log a traceback, again and again. A
:class:`Breaker` turns the failure into one error line and then leaves the service alone for
``RETRY_AFTER`` seconds: the dashboard evaluates without it meanwhile. The first call after that
tries again; the first success logs that the service is back. Per process, thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time

from smallstack import conf

logger = logging.getLogger("smallstack.dashboard")


class Breaker:
    """Whether to use one shared service right now, and logging of its outages."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._open_until = 0.0
        self._down_since: float | None = None
        self.failures = 0

    def allows(self) -> bool:
        """True unless the service failed less than ``RETRY_AFTER`` seconds ago."""
        return time.monotonic() >= self._open_until

    @property
    def down(self) -> bool:
        """Whether the last attempt failed (and no success came since)."""
        return self._down_since is not None

    def failed(self, exc: BaseException, doing: str) -> None:
        """Record a failure; the first of an outage is logged (an error line, no traceback)."""
        retry = float(conf.get("RETRY_AFTER"))
        with self._lock:
            self.failures += 1
            self._open_until = time.monotonic() + retry
            first = self._down_since is None
            if first:
                self._down_since = time.monotonic()
        if first:  # one line, as for the channel layer: an outage is not a bug
            logger.error(
                "Dashboard %s unavailable (%s: %s: %s); carrying on without it, next try in %g s",
                self.service,
                doing,
                type(exc).__name__,
                exc,
                retry,
            )
        else:
            logger.debug("Dashboard %s still unavailable (%s): %s", self.service, doing, exc)

    def succeeded(self) -> None:
        """Record a success; the end of an outage is logged."""
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.warning(
                "Dashboard %s available again after %.1f s", self.service, time.monotonic() - since
            )

    def reset(self) -> None:
        with self._lock:
            self._open_until, self._down_since, self.failures = 0.0, None, 0
