"""Hand memory freed after large responses back to the operating system (glibc only).

A large response (the API's JSON with big widget data) goes through several buffers of its own
size: the widgets' strings, the JSON text, its bytes, the chunks sent. glibc serves buffers from
128 KiB up with ``mmap`` at first, but each one freed raises that threshold to its size, so the
later ones come from the heaps (one per thread pool arena) and, once freed, stay resident: after
200 polls (20 at a time) of a 4 MB response, uvicorn stayed 100-125 MB above its size before,
idle, with nothing left referencing that memory. ``malloc_trim(0)`` gave it back (within 16 MB
of the start; the call took 5-13 ms). Pinning the threshold with ``mallopt`` gave it back too,
but made every large response page-fault fresh memory: 1000 such polls took 45-49 s instead of
28-29 s.

So :func:`release_soon` (called by :class:`smallstack.asgi.ASGIHandler` after a response of at
least :data:`LARGE_RESPONSE` bytes) wakes a background thread that waits :data:`DELAY` seconds,
letting the rest of a burst finish, then calls ``malloc_trim(0)``: at most one trim per
``DELAY``, never on the event loop (ctypes releases the GIL during the call). Small responses
cost nothing. Where the C library has no ``malloc_trim`` (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time

__all__ = ["DELAY", "LARGE_RESPONSE", "available", "pending", "release_soon", "trims"]

logger = logging.getLogger("smallstack.memory")

#: A response body at least this large (bytes) asks for a trim: glibc's initial mmap threshold,
#: from which freed buffers start staying in the heaps.
LARGE_RESPONSE = 128 * 1024
#: Seconds between a large response and the trim; also the shortest time between two trims.
DELAY = 1.0


def _find_malloc_trim():
    try:
        function = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # not glibc, or no C library to load
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_malloc_trim = _find_malloc_trim()


def available() -> bool:
    """Whether this process can trim (its C library has ``malloc_trim``)."""
    return _malloc_trim is not None


class _Trimmer:
    """One daemon thread, started on first use, that trims once per wake-up burst."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.trims = 0

    def request(self) -> None:
        self._wanted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="smallstack-malloc-trim", daemon=True
                    )
                    self._thread.start()

    def wanted(self) -> bool:
        return self._wanted.is_set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            time.sleep(DELAY)
            # Cleared before trimming: a response freed from here on asks for the next trim.
            self._wanted.clear()
            try:
                _malloc_trim(0)
            except Exception:  # pragma: no cover - ctypes calls into libc cannot fail this way
                logger.exception("malloc_trim failed")
            self.trims += 1


_trimmer = _Trimmer()


def release_soon() -> None:
    """Ask for freed memory to be returned to the OS within about :data:`DELAY` seconds."""
    if _malloc_trim is not None:
        _trimmer.request()


def pending() -> bool:
    """Whether a trim has been asked for and not started yet."""
    return _trimmer.wanted()


def trims() -> int:
    """How many trims this process has run (for tests and diagnostics)."""
    return _trimmer.trims
