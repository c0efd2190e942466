"""Backups end to end under a real uvicorn: the demo seed's backup on the page, "Back up now"
with its CSRF token, the download over HTTP, and ``manage.py restore`` refused while the server
runs and allowed once it has stopped."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

from tests.servers import LiveServer, prepare_data_dir, run_manage


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A uvicorn server over a migrated, seeded database with its own backup directory."""
    base = tmp_path_factory.mktemp("backups-uvicorn")
    environ = prepare_data_dir(base / "data", BACKUP_DIR=str(base / "backups"))
    live = LiveServer(environ).start()
    yield live, environ, base / "backups"
    live.stop()


def records(environ: dict[str, str]) -> list[tuple]:
    """(id, status, file_name, size, sha256) of every backup record, newest first."""
    path = Path(environ["SMALLSTACK_DATA_DIR"]) / "db.sqlite3"
    with contextlib.closing(sqlite3.connect(path, timeout=20)) as db:
        return db.execute(
            "SELECT id, status, file_name, size, sha256 FROM backups_backuprecord "
            "ORDER BY created_at DESC, id DESC"
        ).fetchall()


def test_back_up_now_and_download_over_http(site, tmp_path):
    live, environ, backup_dir = site
    [(seed_id, status, seed_name, _, _)] = records(environ)  # seed_demo took one
    assert status == "ok" and (backup_dir / seed_name).is_file()

    with contextlib.closing(live.login()) as client:
        page = client.get("/smallstack/backups/")
        assert page.status_code == 200 and seed_name in page.text
        assert client.post("/smallstack/backups/run/").status_code == 403  # no CSRF token
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        done = client.post("/smallstack/backups/run/", data={"csrfmiddlewaretoken": token})
        assert done.status_code == 302 and done.headers["location"] == "/smallstack/backups/"
        new_id, status, name, size, sha256 = records(environ)[0]
        assert status == "ok" and new_id != seed_id
        assert f"Backed up to {name}" in client.get("/smallstack/backups/").text

        with client.stream("GET", f"/smallstack/backups/{new_id}/download/") as response:
            assert response.status_code == 200
            assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
            assert response.headers["content-length"] == str(size)
            body = b"".join(response.iter_bytes())
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha256
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(gzip.decompress(body))
    with contextlib.closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM auth_user WHERE username='demo'").fetchone() == (1,)


def test_restore_is_refused_while_the_server_runs(tmp_path):
    environ = prepare_data_dir(tmp_path / "data", BACKUP_DIR=str(tmp_path / "backups"))
    [(_, _, name, _, _)] = records(environ)
    live = LiveServer(environ).start()  # its first request marks the database as served
    try:
        refused = run_manage(environ, "restore", name, "--force")
        assert refused.returncode != 0
        assert "a server is running on" in refused.stderr
        assert f"process {live.process.pid}" in refused.stderr
    finally:
        live.stop()
    done = run_manage(environ, "restore", name, "--force")
    assert done.returncode == 0, done.stderr
    assert "SHA-256 verified against its record" in done.stdout
    live.start()  # and the restored database serves
    try:
        with contextlib.closing(live.login()) as client:
            assert name in client.get("/smallstack/backups/").text
    finally:
        live.stop()
