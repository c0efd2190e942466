"""gunicorn configuration for the SmallStack dashboard: ``gunicorn -c deploy/gunicorn.conf.py``.

gunicorn supervises the processes (restarts a worker that dies or hangs, graceful reloads on
SIGHUP, graceful stop on SIGTERM); each worker is a uvicorn server running the ASGI application,
so one worker serves many requests and websockets at once.

Environment (all optional):

- ``GUNICORN_BIND``: where to listen, comma-separated (``127.0.0.1:8000``; ``unix:/run/x.sock``).
- ``WEB_CONCURRENCY``: worker processes (default: one per CPU this process may use, at least 2).
- ``GUNICORN_GRACEFUL_TIMEOUT``: seconds a stopping worker has to finish its requests and write
  its request log before the master kills it (30).
- ``GUNICORN_TIMEOUT``: seconds a silent worker lives before the master restarts it (30).
- ``GUNICORN_KEEPALIVE``: seconds an idle client connection stays open (75: longer than the
  nginx upstream's keepalive_timeout, so nginx never reuses a connection the worker is closing).
- ``GUNICORN_ACCESS_LOG``: ``-`` (standard output, the default), a file path, or empty for none.
- ``GUNICORN_LOG_LEVEL``: ``info`` by default.
- ``GUNICORN_CONTROL_SOCKET``: path of the control socket for ``gunicornc`` (none if unset).
- ``FORWARDED_ALLOW_IPS``: addresses whose ``X-Forwarded-For``/``-Proto`` headers are believed
  (gunicorn's own variable; default 127.0.0.1, the nginx on the same host).
- ``PROMETHEUS_MULTIPROC_DIR``: where the workers keep their metrics for ``GET /api/metrics``
  (emptied at start; default: a new directory on a memory file system, removed at exit).

``DJANGO_SETTINGS_MODULE`` and every setting come from the environment as usual; the service
reads them from an ``EnvironmentFile`` (``deploy/env.example``).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

from uvicorn_worker import UvicornWorker

#: Seconds of the graceful timeout kept for writing the request log once uvicorn stops waiting
#: for requests (a write takes milliseconds; this leaves room for a slow database).
_FLUSH_RESERVE = 5.0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(2, cpus)


class SmallStackWorker(UvicornWorker):
    """uvicorn worker without the ASGI lifespan protocol (Django's handler does not speak it,
    as ``make run``'s ``--lifespan off``), and with a bound on how long a stopping worker waits
    for its requests, so there is time left to write the request log before the master's
    SIGKILL at ``graceful_timeout``."""

    CONFIG_KWARGS: dict[str, Any] = {**UvicornWorker.CONFIG_KWARGS, "lifespan": "off"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        graceful = float(self.cfg.graceful_timeout)
        self.config.timeout_graceful_shutdown = max(1.0, graceful - _FLUSH_RESERVE)


wsgi_app = "project.asgi:application"
worker_class = SmallStackWorker  # gunicorn takes a class object as well as a dotted path

bind = [
    address.strip()
    for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
    if address.strip()
]
workers = _env_int("WEB_CONCURRENCY", _default_workers())
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
timeout = _env_int("GUNICORN_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)

# gunicorn 25.1+ listens on a control socket for `gunicornc` (worker status, scaling, reload);
# by default in $XDG_RUNTIME_DIR or ~/.gunicorn/, which a hardened service cannot write and
# two instances would share. Set GUNICORN_CONTROL_SOCKET (the systemd unit uses its
# RuntimeDirectory) to have one; without it there is none.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not control_socket

# Each worker imports the project itself (no preload): Django, its thread pool, its database
# connections and the request log's SIGTERM hook then all belong to the worker process.
preload_app = False
# The workers' heartbeat files on a memory file system (a container's /tmp may be a slow disk).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# -- logging -----------------------------------------------------------------------------------
# uvicorn workers write their access lines through gunicorn's "gunicorn.access" handlers, as
# uvicorn formats them (client, request line, status); gunicorn's access_log_format does not
# apply. The formatters below add the time and the worker's pid to every line.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
errorlog = "-"

_access_handler: dict[str, Any] = (
    {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "access"}
    if accesslog in (None, "-")
    else {"class": "logging.handlers.WatchedFileHandler", "filename": accesslog}
    | {"formatter": "access"}
)
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
        "access": {
            "format": "%(asctime)s [%(process)d] %(message)s",
            "datefmt": "%Y-%m-%dT%H:%M:%S%z",
        },
    },
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "generic",
        },
        # Records that reach the root logger (Django's request errors among them, which
        # otherwise go nowhere with DEBUG off): warnings and worse only.
        "root_console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "generic",
            "level": "WARNING",
        },
        "access": _access_handler,
    },
    "loggers": {
        "gunicorn.error": {
            "level": loglevel.upper(),
            "handlers": ["error_console"],
            "propagate": False,
        },
        "gunicorn.access": {
            "level": "INFO",
            "handlers": ["access"] if accesslog else [],
            "propagate": False,
        },
    },
    "root": {"level": "WARNING", "handlers": ["root_console"]},
}


def on_starting(server: Any) -> None:
    server.log.info(
        "SmallStack: %d uvicorn workers on %s, graceful timeout %d s",
        workers,
        ", ".join(bind),
        graceful_timeout,
    )
    _prepare_metrics_dir(server)


# -- Prometheus metrics (GET /api/metrics) ---------------------------------------------------------
# prometheus-client's multiprocess mode: each worker keeps its counters and gauges in files of
# PROMETHEUS_MULTIPROC_DIR, and a scrape answered by any worker sums the files of all of them.
# The variable must be set before a worker first imports prometheus-client, so the master sets
# it here, once at start (not again on a reload), and the workers it forks inherit it.


def _prepare_metrics_dir(server: Any) -> None:
    """Use the operator's PROMETHEUS_MULTIPROC_DIR, emptied of an earlier run's files, or make
    one (removed again by :func:`on_exit`)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix="smallstack-metrics-", dir=worker_tmp_dir)
        server.smallstack_metrics_dir = path  # ours to remove at exit
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    server.log.info("SmallStack: worker metrics in %s", path)


def child_exit(server: Any, worker: Any) -> None:
    """A worker ended: drop its live gauges (open sockets, evaluations in flight…); its
    counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    made = getattr(server, "smallstack_metrics_dir", None)
    if made:
        shutil.rmtree(made, ignore_errors=True)
