"""The database and cache settings, from the values project/settings.py reads from the environment.

Pure functions of their arguments, so each rule can be checked without re-importing settings:

- :func:`database`: ``DATABASES["default"]`` from a URL. SQLite gets WAL mode, ``IMMEDIATE``
  transactions and a busy timeout; PostgreSQL (psycopg 3) may get persistent connections
  (``CONN_MAX_AGE``, health-checked) or Django's connection pool (``OPTIONS["pool"]``,
  psycopg_pool), never both.
- :func:`cache`: ``CACHES["default"]``: Django's built-in Redis cache for a ``redis://``,
  ``rediss://`` or ``unix://`` URL, local memory otherwise (``locmem://`` or nothing).
- :func:`lock_url`: the Redis the dashboard takes its short per-widget locks in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

POSTGRESQL = "django.db.backends.postgresql"
SQLITE = "django.db.backends.sqlite3"
REDIS_SCHEMES = {"redis", "rediss", "unix"}
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"

#: The embedded default: concurrent readers and writers wait for each other (a 20 s busy timeout)
#: instead of failing with "database is locked".
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

#: Redis connection options for the cache: a Redis that does not answer costs a page at most
#: this long before the dashboard stops asking it for a while (smallstack/breaker.py).
REDIS_CACHE_OPTIONS = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0}


def database(
    url: str,
    *,
    data_dir: Path,
    conn_max_age: int = 0,
    pool_min: int | None = None,
    pool_max: int = 0,
    pool_timeout: float | None = None,
) -> dict[str, Any]:
    """``DATABASES["default"]`` for ``url``.

    ``pool_max`` > 0 turns on Django's PostgreSQL connection pool, at most that many connections
    per process, ``pool_min`` kept open, ``pool_timeout`` seconds to wait for a free one.
    """
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0)
    )
    engine = config["ENGINE"]
    if engine == SQLITE:
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
        # A file, not the in-memory default: shared-cache memory databases ignore WAL and
        # raise "database table is locked" as soon as pool threads read concurrently.
        config["TEST"] = {"NAME": str(data_dir / "test-db.sqlite3")}
    if not pool_max:
        if pool_min is not None or pool_timeout is not None:
            raise ImproperlyConfigured(
                "DATABASE_POOL_MIN and DATABASE_POOL_TIMEOUT need DATABASE_POOL_MAX (the pool's "
                "size) to turn the connection pool on."
            )
        return config
    if engine != POSTGRESQL:
        raise ImproperlyConfigured(
            f"DATABASE_POOL_MAX needs PostgreSQL (DATABASE_URL=postgres://...); {engine} has "
            "no connection pool."
        )
    if conn_max_age:
        raise ImproperlyConfigured(
            "Set DATABASE_CONN_MAX_AGE or DATABASE_POOL_MAX, not both: the pool already keeps "
            "connections open (Django refuses persistent connections with a pool)."
        )
    pool_min = 0 if pool_min is None else pool_min
    if pool_min > pool_max:
        raise ImproperlyConfigured(
            f"DATABASE_POOL_MIN ({pool_min}) is larger than DATABASE_POOL_MAX ({pool_max})."
        )
    pool: dict[str, Any] = {"min_size": pool_min, "max_size": pool_max}
    if pool_timeout is not None:
        pool["timeout"] = pool_timeout
    config.setdefault("OPTIONS", {})["pool"] = pool
    return config


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def cache(cache_url: str, redis_url: str) -> dict[str, Any]:
    """``CACHES["default"]``: ``cache_url`` if set, else ``redis_url``, else local memory."""
    url = cache_url or redis_url
    if not url or _scheme(url) == "locmem":
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "smallstack",
        }
    if _scheme(url) not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"CACHE_URL={url!r}: use redis://, rediss:// or unix:// for Redis, or locmem:// for "
            "this process's memory."
        )
    return {
        "BACKEND": REDIS_CACHE,
        "LOCATION": url,
        "OPTIONS": dict(REDIS_CACHE_OPTIONS),
    }


def lock_url(cache_url: str, redis_url: str) -> str:
    """Where the per-widget locks live: ``redis_url``, else a Redis ``cache_url``, else ""."""
    if redis_url:
        return redis_url
    if cache_url and _scheme(cache_url) in REDIS_SCHEMES:
        return cache_url
    return ""
