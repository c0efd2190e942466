"""``sleep(seconds)`` in SQL, on whichever database the suite runs: a query that holds its
connection for a while, as a slow report would.

SQLite gets a Python function on every new connection; PostgreSQL a PL/pgSQL function around
``pg_sleep`` in the test database (returning 0, like the SQLite one, so it can be selected).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.signals import connection_created

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION sleep(seconds double precision) RETURNS integer
LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(seconds); RETURN 0; END $$
"""


def _on_sqlite_connection(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("sleep", 1, lambda s: time.sleep(s) or 0)


@contextmanager
def sql_sleep() -> Iterator[None]:
    """``sleep()`` is available in SQL inside the block (needs database access)."""
    connection_created.connect(_on_sqlite_connection)
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(POSTGRES_FUNCTION)
        yield
    finally:
        connection_created.disconnect(_on_sqlite_connection)
