"""The request log on a real uvicorn process: 200 concurrent requests, then SIGTERM, and every
row is in the database afterwards (the writer's interval is an hour, so only the shutdown path
can have written them)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.servers import LiveServer, create_api_key, prepare_data_dir

PAGES, API_CALLS = 150, 50


async def _load(url: str, key: str) -> list[int]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        pages = [client.get(f"/probe/{n}/?q={n}") for n in range(PAGES)]
        api = [
            client.get("/api/dashboard/status/", headers={"Authorization": f"Bearer {key}"})
            for _ in range(API_CALLS)
        ]
        responses = await asyncio.gather(*pages, *api)
    return [r.status_code for r in responses]


def _count(db: Path, sql: str, *params) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchone()[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_no_row_is_lost_across_a_clean_shutdown(tmp_path, workers):
    environ = prepare_data_dir(tmp_path, SMALLSTACK_ACTIVITY_FLUSH_INTERVAL="3600")
    key = create_api_key(environ, "activity")
    server = LiveServer(environ, workers=workers).start()
    db = tmp_path / "db.sqlite3"
    try:
        statuses = asyncio.run(_load(server.url, key))
        assert statuses.count(404) == PAGES
        assert len(statuses) == PAGES + API_CALLS and all(s in (200, 503) for s in statuses[PAGES:])
        before = _count(db, "SELECT COUNT(*) FROM activity_requestlog WHERE path LIKE '/probe/%'")
        assert before == 0  # nothing written yet: the interval is an hour
    finally:
        process = server.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(30)
        server.process = None
    log = server.log()
    assert "Traceback" not in log, log
    # uvicorn's own exit status is kept: a single process ends by SIGTERM as before.
    assert returncode == (-signal.SIGTERM if workers == 1 else 0), log
    probes = _count(db, "SELECT COUNT(*) FROM activity_requestlog WHERE path LIKE '/probe/%'")
    assert probes == PAGES
    distinct = _count(
        db, "SELECT COUNT(DISTINCT path) FROM activity_requestlog WHERE path LIKE '/probe/%'"
    )
    assert distinct == PAGES  # the query string is not part of the path
    prefix = key.split("_")[1]
    api = _count(
        db,
        "SELECT COUNT(*) FROM activity_requestlog WHERE path = ? AND token_prefix = ?",
        "/api/dashboard/status/",
        prefix,
    )
    assert api == API_CALLS
