"""The request log's buffer and the thread that writes it to the database.

Requests only append a tuple to an in-memory deque (under a lock held for O(1) work, never
during I/O). A daemon thread wakes every ``FLUSH_INTERVAL`` seconds, or as soon as
``BATCH_SIZE`` rows are waiting, takes the whole deque and writes it with ``bulk_create``,
then closes its database connection. When the deque holds ``BUFFER_SIZE`` rows, each new row
pushes out the oldest one; the drops are counted, logged and stored as
:class:`~smallstack.activity.models.RequestLogDrop` rows with the next write.

Shutdown. Buffered rows must reach the database before the process ends, and what runs at
the end differs by server:

- uvicorn (0.54) and gunicorn's ``UvicornWorker`` handle SIGTERM by finishing the requests in
  flight, then restore the SIGTERM handler that was installed before the server started and
  send the signal again (``signal.raise_signal``). With the default handler the process dies
  right there: no ``atexit`` hook and no event-loop teardown runs.
- So :func:`install_shutdown_hooks` chains a SIGTERM handler in front of whatever is installed
  when the app loads. Loaded before the server starts (single-process uvicorn, gunicorn
  workers), it is the handler the server restores and re-raises into: it waits for the
  writer to write everything buffered, then hands the signal to the previous handler (the
  default one ends the process with the usual SIGTERM status). Loaded while the server is
  already running (``uvicorn --workers N`` children), it runs first on SIGTERM: it writes the
  buffer, marks the writer as stopping and calls the server's handler; from then on every
  request, once its response is sent (``request_finished``), waits until its row is written,
  and the server waits for those requests before it exits.
- ``atexit`` covers a normal interpreter exit (Ctrl-C, management commands).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from django.db import connections

logger = logging.getLogger("smallstack.activity")

#: (time.time(), method, path, status, duration in ms, user id or None, token prefix or "").
Row = tuple[float, str, str, int, float, int | None, str]


class RequestLogWriter:
    """Buffers rows from any thread and writes them from one background thread."""

    def __init__(
        self, capacity: int = 10_000, batch_size: int = 500, flush_interval: float = 2.0
    ) -> None:
        self.capacity, self.batch_size, self.flush_interval = capacity, batch_size, flush_interval
        self._rows: collections.deque[Row] = collections.deque()
        self._lock = threading.Lock()  # the deque and the counters; never held during I/O
        self._write_lock = threading.Lock()  # one write at a time
        self._written = threading.Condition()  # notified after each write
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: Rows ever added, and rows settled (written, dropped or lost), in this process.
        self.added = 0
        self.settled = 0
        #: Rows dropped because the buffer was full, and rows lost to failed writes.
        self.dropped = 0
        self.failed = 0
        self._unreported_drops = 0
        #: Set once the process is terminating: requests then wait for their rows.
        self.stopping = False

    def configure(self, *, capacity: int, batch_size: int, flush_interval: float) -> None:
        with self._lock:
            self.capacity, self.batch_size = capacity, batch_size
            self.flush_interval = flush_interval
            while len(self._rows) > capacity:
                self._drop_oldest()

    # -- the request side -------------------------------------------------------------------

    def add(self, row: Row) -> None:
        """Queue one row; O(1), no I/O. A full buffer drops its oldest row."""
        with self._lock:
            if len(self._rows) >= self.capacity:
                self._drop_oldest()
            self._rows.append(row)
            self.added += 1
            wake = len(self._rows) >= self.batch_size
        if self._thread is None:
            self._start()
        if wake and not self._wake.is_set():
            self._wake.set()

    def _drop_oldest(self) -> None:
        self._rows.popleft()
        self.dropped += 1
        self._unreported_drops += 1

    def pending(self) -> int:
        """Rows waiting to be written."""
        return len(self._rows)

    # -- the writing side -------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = self._thread = threading.Thread(
                target=self._run, name="smallstack-activity-writer", daemon=True
            )
        thread.start()

    def after_fork(self) -> None:
        """In a forked child: no writer thread exists there, and no lock may stay held."""
        self._lock, self._write_lock = threading.Lock(), threading.Lock()
        self._written, self._wake = threading.Condition(), threading.Event()
        self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the writer thread die
                logger.exception("Request log writer failed")

    def flush(self) -> int:
        """Write every buffered row now, in the calling thread; the number written.

        Called by the writer thread; call it yourself only where synchronous database access
        is allowed (not on an event loop's thread).
        """
        from smallstack.activity.models import RequestLog, RequestLogDrop

        with self._write_lock:
            with self._lock:
                rows, self._rows = self._rows, collections.deque()
                drops, self._unreported_drops = self._unreported_drops, 0
            written = 0
            try:
                if rows:
                    RequestLog.objects.bulk_create(
                        [
                            RequestLog(
                                time=datetime.fromtimestamp(at, UTC),
                                method=method,
                                path=path,
                                status=status,
                                duration_ms=duration_ms,
                                user_id=user_id,
                                token_prefix=token_prefix,
                            )
                            for at, method, path, status, duration_ms, user_id, token_prefix in rows
                        ],
                        batch_size=self.batch_size,
                    )
                    written = len(rows)
                if drops:
                    logger.warning(
                        "Request log buffer full (%d rows): dropped the %d oldest rows "
                        "(%d in this process so far)",
                        self.capacity,
                        drops,
                        self.dropped,
                    )
                    RequestLogDrop.objects.create(
                        time=datetime.now(UTC), count=drops, reason=RequestLogDrop.BUFFER_FULL
                    )
            except Exception:
                lost = len(rows) - written
                with self._lock:
                    self.failed += lost
                logger.exception("Could not write the request log; %d rows lost", lost)
                if lost:
                    self._record_failure(lost)
            finally:
                connections.close_all()  # this thread's connections only
                with self._written:
                    self.settled += len(rows) + drops
                    self._written.notify_all()
            return written

    @staticmethod
    def _record_failure(lost: int) -> None:
        from smallstack.activity.models import RequestLogDrop

        try:
            RequestLogDrop.objects.create(
                time=datetime.now(UTC), count=lost, reason=RequestLogDrop.WRITE_FAILED
            )
        except Exception:
            logger.warning("Could not record the %d lost request log rows either", lost)

    def wait_written(self, timeout: float) -> bool:
        """Block until every row added before this call is written (or dropped, or lost).

        Returns False if ``timeout`` seconds pass first. Wakes the writer thread; if none is
        running in this process, writes in the calling thread.
        """
        with self._lock:
            target = self.added
            thread_running = self._thread is not None and self._thread.is_alive()
        if not thread_running:
            try:
                self._start()
            except RuntimeError:  # no new threads at interpreter shutdown: write here
                self.flush()
                return self.settled >= target
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._written:
            while self.settled < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._written.wait(left)
        return True

    def reset(self) -> None:
        """Forget buffered rows and counters (tests)."""
        with self._lock:
            self._rows.clear()
            self.added = self.settled = self.dropped = self.failed = 0
            self._unreported_drops = 0
            self.stopping = False


#: The process's writer, used by the middleware.
writer = RequestLogWriter()

_hooks_installed = False


def _after_fork() -> None:
    global _hooks_installed
    _hooks_installed = False
    writer.after_fork()


os.register_at_fork(after_in_child=_after_fork)


def _shutdown_timeout() -> float:
    from smallstack.activity import conf

    return float(conf.get("SHUTDOWN_TIMEOUT"))


def _finish(reason: str) -> None:
    if writer.added == writer.settled:
        return
    try:
        done = writer.wait_written(_shutdown_timeout())
    except Exception:
        logger.exception("Request log: %s, and the last rows could not be written", reason)
        return
    if not done:
        logger.error(
            "Request log: %s, and %d rows were not written in time", reason, writer.pending()
        )


def _chain_sigterm() -> None:
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        writer.stopping = True
        _finish("terminating")
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # the default action: end the process with the SIGTERM status
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def install_shutdown_hooks() -> None:
    """Make sure buffered rows are written when this process ends (once per process).

    Installs the SIGTERM handler only from the main thread (elsewhere Python refuses); the
    ``atexit`` hook always.
    """
    global _hooks_installed
    if _hooks_installed or threading.current_thread() is not threading.main_thread():
        return
    _hooks_installed = True
    _chain_sigterm()
    atexit.register(_finish, "exiting")


def on_request_finished(**kwargs: Any) -> None:
    """``request_finished`` receiver: when terminating, wait until the row is written."""
    if writer.stopping:
        _finish("terminating")
