"""This process's dashboard counters and gauges, exported by ``GET /api/metrics``.

The engine, the live push and the websocket consumer call the functions below on their hot
paths, from the event loop or from pool threads, so each is a dictionary lookup and one or
two increments (a lock and, in multiprocess mode, a write to a memory-mapped file).

The metrics live in prometheus-client's default registry. When the environment variable
``PROMETHEUS_MULTIPROC_DIR`` is set before prometheus-client is first imported (gunicorn:
``deploy/gunicorn.conf.py``), prometheus-client keeps every value in a per-process file of that
directory and the endpoint adds the files of all the workers up (see :func:`multiprocess`).
The per-widget state, staleness, age and values are not kept here: the endpoint reads them
from the dashboard's cache at scrape time (``smallstack.api.metrics``).

This module imports nothing of smallstack: the engine, ``live`` and ``consumers`` import it.
"""

from __future__ import annotations

import contextlib
import logging

from prometheus_client import Counter, Gauge, values

__all__ = [
    "cache_lookups",
    "count_channel_layer_drops",
    "evaluation_finished",
    "evaluation_landed",
    "evaluation_started",
    "multiprocess",
    "pool_size",
    "push_sent",
    "send_dropped",
    "send_failed",
    "socket_closed",
    "socket_opened",
    "thread_busy",
]

WIDGET_LABELS = ("key", "group", "app")

# -- per widget ----------------------------------------------------------------------------

WIDGET_EVALUATIONS = Counter(
    "smallstack_widget_evaluations",
    "Evaluations of the widget that finished in this service since start (any outcome).",
    WIDGET_LABELS,
)
WIDGET_TIMEOUTS = Counter(
    "smallstack_widget_timeouts",
    "Evaluations of the widget that ran out of time since start.",
    WIDGET_LABELS,
)
WIDGET_ERRORS = Counter(
    "smallstack_widget_errors",
    "Evaluations of the widget that raised or returned invalid data since start.",
    WIDGET_LABELS,
)

# -- engine ----------------------------------------------------------------------------------

IN_FLIGHT = Gauge(
    "smallstack_evaluations_in_flight",
    "Widget evaluations started and not landed yet.",
    multiprocess_mode="livesum",
)
THREADS_BUSY = Gauge(
    "smallstack_sync_threads_busy",
    "Threads of the sync widget pools running a widget now.",
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "smallstack_sync_threads",
    "Threads of the sync widget pools (THREAD_POOL_SIZE per process that started its pool).",
    multiprocess_mode="livesum",
)
CACHE_HITS = Counter(
    "smallstack_cache_hits",
    "Widget results reused from the dashboard cache (younger than the widget's cache_ttl).",
)
CACHE_MISSES = Counter(
    "smallstack_cache_misses",
    "Widget results not in the dashboard cache or too old, so evaluated or joined in flight.",
)

# -- live push --------------------------------------------------------------------------------

SOCKETS_OPEN = Gauge(
    "smallstack_live_sockets_open",
    "Dashboard websockets open now.",
    multiprocess_mode="livesum",
)
PUSHES = Counter(
    "smallstack_live_pushes",
    "Card updates sent to dashboard websockets since start.",
)
SENDS_DROPPED = Counter(
    "smallstack_live_sends_dropped",
    "Card updates not sent because a websocket was too slow to take them (dropped).",
)
SENDS_FAILED = Counter(
    "smallstack_live_sends_failed",
    "Sends to dashboard websockets or to the channel layer that failed with an error.",
)

#: (key, group, app) -> the children of the per-widget counters, so the hot path skips
#: ``labels()`` (its lock and its label checks) after a widget's first evaluation.
_children: dict[tuple[str, str, str], tuple[Counter, Counter, Counter]] = {}

_in_flight_inc = IN_FLIGHT.inc
_in_flight_dec = IN_FLIGHT.dec


def multiprocess() -> bool:
    """Whether the metrics are kept in ``PROMETHEUS_MULTIPROC_DIR`` (shared by the workers)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def evaluation_started(count: int = 1) -> None:
    """``count`` new evaluations (flights) started."""
    _in_flight_inc(count)


def evaluation_landed() -> None:
    """An evaluation counted by :func:`evaluation_started` landed."""
    _in_flight_dec()


def evaluation_finished(
    key: str, group: str | None, app: str | None, state: str, elapsed_ms: float
) -> None:
    """Count one finished evaluation (any thread); ``state`` is "ok", "timeout" or "error".

    ``elapsed_ms`` is not kept here: the last evaluation's duration is in its cached result.
    """
    labels = (key, group or "", app or "")
    children = _children.get(labels)
    if children is None:
        children = _children.setdefault(
            labels,
            (
                WIDGET_EVALUATIONS.labels(*labels),
                WIDGET_TIMEOUTS.labels(*labels),
                WIDGET_ERRORS.labels(*labels),
            ),
        )
    evaluations, timeouts, errors = children
    evaluations.inc()
    if state == "timeout":
        timeouts.inc()
    elif state == "error":
        errors.inc()


def thread_busy(delta: int) -> None:
    """A sync widget started (+1) or finished (-1) on a pool thread."""
    THREADS_BUSY.inc(delta)


def pool_size(size: int) -> None:
    """The sync pool was (re)created with ``size`` threads."""
    POOL_SIZE.set(size)


def cache_lookups(hits: int, misses: int) -> None:
    """Count one batch of cache reads: results reused and results missing or too old."""
    if hits:
        CACHE_HITS.inc(hits)
    if misses:
        CACHE_MISSES.inc(misses)


def socket_opened() -> None:
    """A dashboard websocket was accepted."""
    SOCKETS_OPEN.inc()


def socket_closed() -> None:
    """A dashboard websocket counted by :func:`socket_opened` closed."""
    SOCKETS_OPEN.dec()


def push_sent(count: int = 1) -> None:
    """``count`` card updates went out to a websocket."""
    PUSHES.inc(count)


def send_dropped(count: int = 1) -> None:
    """``count`` card updates were dropped for a socket that could not keep up."""
    SENDS_DROPPED.inc(count)


def send_failed(count: int = 1) -> None:
    """``count`` sends failed with an error."""
    SENDS_FAILED.inc(count)


# -- sends the channel layer drops -----------------------------------------------------------

#: The message channels-redis logs (INFO, logger ``channels_redis.core``) after a group send
#: that some channels were over ``capacity`` for; those channels did not get the message.
_OVER_CAPACITY = "%s of %s channels over capacity in group %s"


class _OverCapacity(logging.Filter):
    """Counts the sends channels-redis dropped, from its over-capacity log record.

    ``threshold`` is the logger's level before :func:`count_channel_layer_drops` lowered it to
    INFO: records below it are counted but not passed on, so the logs read as before.
    """

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == _OVER_CAPACITY and isinstance(record.args, tuple) and record.args:
            with contextlib.suppress(TypeError, ValueError):
                send_dropped(int(str(record.args[0])))
        return record.levelno >= self.threshold


def count_channel_layer_drops() -> None:
    """Count the messages channels-redis drops for channels over capacity (idempotent).

    channels-redis reports them only in a log record, so a filter on its logger counts them.
    The in-memory channel layer drops silently: nothing to count there.
    """
    logger = logging.getLogger("channels_redis.core")
    if any(isinstance(existing, _OverCapacity) for existing in logger.filters):
        return
    threshold = logger.getEffectiveLevel()
    if threshold > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addFilter(_OverCapacity(threshold))
