"""Backups (smallstack/backups/) on SQLite: an online backup while a writer commits rows, restore
(verified, refused, forced, into a fresh file), pruning, failures, concurrent runs, the card, the
page, downloads, the "Back up now" button with and without CSRF, the serving lock, the seed and
the system checks. PostgreSQL is in test_backups_postgres.py, a real uvicorn in
test_backups_uvicorn.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hashlib
import os
import re
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.handlers.asgi import ASGIHandler
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.utils import ConnectionHandler
from django.test import Client
from django.utils import timezone

from smallstack.backups import checks as backup_checks
from smallstack.backups import files, humanize, service, serving, sqlite
from smallstack.backups.models import BackupRecord
from smallstack.backups.seed import seed_backup
from tests.servers import run_manage

pytestmark = pytest.mark.django_db(transaction=True)

ITEM = "/api/dashboard/widgets/smallstack.backups/"
PAGE = "/smallstack/backups/"
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    """Backups of this test go to a directory of its own. Earlier tests that drove the real ASGI
    handler in this process marked the test database as served: that mark is dropped."""
    serving.release_all()
    directory = tmp_path / "backups"
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(directory)}
    yield directory
    serving.release_all()
    serving.lock_path(db_path()).unlink(missing_ok=True)


def db_path() -> Path:
    return Path(connection.settings_dict["NAME"])


def unpack(backup: Path, into: Path) -> Path:
    """The SQLite database inside a backup file."""
    target = into / f"{backup.name}.sqlite3"
    with gzip.open(backup, "rb") as packed:
        target.write_bytes(packed.read())
    return target


def row_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def integrity(path: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


def listed(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def raw_execute(sql: str, params: tuple = ()) -> list[tuple]:
    """A statement on the test database through a connection of its own (not Django's)."""
    with contextlib.closing(sqlite3.connect(db_path(), timeout=20)) as db:
        rows = db.execute(sql, params).fetchall()
        db.commit()
        return rows


class Writer(threading.Thread):
    """Commits one row per transaction into ``probe`` until stopped, counting commits."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.committed, self.error = path, 0, None
        self.halt = threading.Event()

    def run(self) -> None:
        db = sqlite3.connect(self.path, timeout=20, isolation_level=None)
        try:
            while not self.halt.is_set():
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO probe (payload) VALUES (?)", (os.urandom(64).hex(),))
                db.execute("COMMIT")
                self.committed += 1
                time.sleep(0.0005)  # back to back, it would starve other writers of the lock
        except Exception as exc:  # surfaced by the test
            self.error = exc
        finally:
            db.close()


@pytest.fixture
def probe_tables():
    """``probe`` (the writer's) and ``ballast`` (about 8 MB that take a while to copy)."""
    raw_execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    raw_execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    with contextlib.closing(sqlite3.connect(db_path(), timeout=20)) as db:
        db.executemany(
            "INSERT INTO ballast (data) VALUES (?)", ((os.urandom(400),) for _ in range(20_000))
        )
        db.commit()
    yield
    raw_execute("DROP TABLE probe")
    raw_execute("DROP TABLE ballast")


def backup_file(record: BackupRecord, directory: Path) -> Path:
    return directory / record.file_name


# -- taking a backup while the site writes ---------------------------------------------------


def test_backup_while_a_writer_commits_rows(probe_tables, backup_dir, tmp_path):
    writer = Writer(db_path())
    writer.start()
    try:
        while writer.committed < 50:  # the writer is up to speed
            time.sleep(0.01)
        before = writer.committed
        started = time.monotonic()
        call_command("backup")
        elapsed = time.monotonic() - started
        after = writer.committed
    finally:
        writer.halt.set()
        writer.join(10)
    assert writer.error is None, writer.error
    assert after > before, "the writer was blocked for the whole backup"

    record = BackupRecord.objects.get()
    path = backup_file(record, backup_dir)
    assert record.status == "ok" and record.vendor == "sqlite" and record.database == "default"
    assert path.stat().st_size == record.size
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256
    assert 0 < record.duration <= elapsed
    assert listed(backup_dir) == [record.file_name]  # no temporary file left

    copy = unpack(path, tmp_path)
    assert integrity(copy) == [("ok",)]
    with contextlib.closing(sqlite3.connect(copy)) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM probe ORDER BY id")]
        assert db.execute("SELECT count(*) FROM ballast").fetchone()[0] == 20_000
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file
    # One snapshot: every row committed before the backup began, then a gapless run of rows.
    assert len(ids) >= before
    assert ids == list(range(1, len(ids) + 1))


def test_restore_into_a_fresh_database_file(probe_tables, backup_dir, tmp_path):
    raw_execute("INSERT INTO probe (payload) VALUES ('one'), ('two'), ('three')")
    record = service.backup()
    path = backup_file(record, backup_dir)
    fresh = tmp_path / "fresh"
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SMALLSTACK_DATA_DIR": str(fresh),
        "BACKUP_DIR": str(backup_dir),
    }
    # The fresh database has no backup records: only an unverified restore is possible.
    refused = run_manage(environ, "restore", record.file_name)
    assert refused.returncode != 0
    assert "--no-verify" in refused.stderr and "no backup record" in refused.stderr

    done = run_manage(environ, "restore", record.file_name, "--no-verify")
    assert done.returncode == 0, done.stderr
    assert "not verified" in done.stdout and str(fresh / "db.sqlite3") in done.stdout
    restored = fresh / "db.sqlite3"
    assert integrity(restored) == [("ok",)]
    expected = row_counts(unpack(path, tmp_path))
    assert expected["probe"] == 3 and expected["ballast"] == 20_000
    assert row_counts(restored) == expected

    # Restoring again needs --force now that the database has tables.
    again = run_manage(environ, "restore", record.file_name, "--no-verify")
    assert again.returncode != 0 and "--force" in again.stderr
    assert run_manage(environ, "restore", str(path), "--no-verify", "--force").returncode == 0


def test_restore_needs_force_and_then_verifies_and_replaces(backup_dir, django_user_model):
    django_user_model.objects.create_user("kept")
    record = service.backup()
    django_user_model.objects.create_user("after-the-backup")
    newer = service.backup()

    with pytest.raises(CommandError, match=r"is not empty \(\d+ tables\): pass --force"):
        call_command("restore", record.file_name)
    assert django_user_model.objects.filter(username="after-the-backup").exists()

    out = _call("restore", record.file_name, force=True)
    assert "SHA-256 verified against its record" in out
    assert "The 2 backup records the database had before were kept." in out
    usernames = set(django_user_model.objects.values_list("username", flat=True))
    assert "kept" in usernames and "after-the-backup" not in usernames
    # The history still describes the files on disk, the newer backup included.
    assert set(BackupRecord.objects.values_list("file_name", flat=True)) == {
        record.file_name,
        newer.file_name,
    }


def _call(*args, **options) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_a_damaged_file_fails_verification_and_changes_nothing(backup_dir, django_user_model):
    record = service.backup()
    django_user_model.objects.create_user("still-here")
    path = backup_file(record, backup_dir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError) as caught:
        call_command("restore", record.file_name, force=True)
    message = str(caught.value)
    assert "does not match its record" in message
    assert record.sha256 in message and hashlib.sha256(data).hexdigest() in message
    # --no-verify gets as far as unpacking it, which fails just as clearly.
    with pytest.raises(CommandError, match="not a complete gzip-compressed backup"):
        call_command("restore", record.file_name, force=True, no_verify=True)
    assert django_user_model.objects.filter(username="still-here").exists()


def test_restore_refuses_what_is_not_a_backup(backup_dir, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("not a database")
    with pytest.raises(CommandError, match="neither a gzip-compressed SQLite backup"):
        call_command("restore", str(stray), no_verify=True, force=True)
    with pytest.raises(CommandError, match="no backup file"):
        call_command("restore", "missing.sqlite3.gz", force=True)
    dump = tmp_path / "other.pgdump"
    dump.write_bytes(b"PGDMP\x01\x0e\x00")
    with pytest.raises(
        CommandError, match="is a postgresql backup; the database default is sqlite"
    ):
        call_command("restore", str(dump), no_verify=True, force=True)


# -- pruning, failures, concurrency ---------------------------------------------------------


def test_keep_prunes_to_exactly_n_good_backups(backup_dir):
    made = [service.backup() for _ in range(4)]
    old_failure = BackupRecord.objects.create(
        created_at=made[0].created_at + timedelta(microseconds=1), status="error", vendor="sqlite"
    )
    stale, fresh_temp = backup_dir / ".partial-stale.part", backup_dir / ".partial-busy.part"
    stale.write_bytes(b"left by a killed run")
    fresh_temp.write_bytes(b"another run, now")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))

    call_command("backup", keep=3, stdout=open(os.devnull, "w"))  # noqa: SIM115

    good = list(BackupRecord.objects.filter(status="ok").order_by("-created_at"))
    assert len(good) == 3
    newest = [*made[2:], good[0]]
    assert {r.file_name for r in good} == {r.file_name for r in newest[-3:]}
    assert {p for p in listed(backup_dir) if not p.startswith(".")} == {r.file_name for r in good}
    assert not BackupRecord.objects.filter(pk=old_failure.pk).exists()  # older than all kept
    assert not stale.exists() and fresh_temp.exists()

    call_command("backup", keep=1, stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert BackupRecord.objects.filter(status="ok").count() == 1
    assert len([p for p in listed(backup_dir) if not p.startswith(".")]) == 1
    with pytest.raises(CommandError, match="invalid positive value"):
        call_command("backup", "--keep", "0")


def test_keep_setting_applies_without_the_option(settings, backup_dir):
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(backup_dir), "KEEP": 2}
    for _ in range(3):
        service.backup()
    assert BackupRecord.objects.filter(status="ok").count() == 2
    assert len(listed(backup_dir)) == 2


def test_a_failed_backup_is_recorded_and_leaves_no_file(monkeypatch, backup_dir):
    written = []
    real_write = files.HashingWriter.write

    def disk_fills_up(self, data):
        if written:  # the first chunk lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(data))
        return real_write(self, data)

    monkeypatch.setattr(files.HashingWriter, "write", disk_fills_up)
    with pytest.raises(CommandError, match=r"backup failed: OSError: .*No space left on device"):
        call_command("backup")
    assert written, "the failure came before anything was written"
    record = BackupRecord.objects.get()
    assert record.status == "error" and record.file_name == "" and record.sha256 == ""
    assert "No space left on device" in record.error and record.vendor == "sqlite"
    assert listed(backup_dir) == []  # neither the partial file nor the uncompressed copy


def test_a_backup_dir_that_cannot_be_made_is_a_recorded_failure(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(blocker / "backups")}
    with pytest.raises(CommandError, match="backup failed: NotADirectoryError"):
        call_command("backup")
    failed = BackupRecord.objects.get()
    assert failed.status == "error" and "NotADirectoryError" in failed.error


def test_concurrent_backups_do_not_collide(backup_dir, tmp_path):
    barrier = threading.Barrier(3)
    results: list[BackupRecord] = []

    def run():
        barrier.wait()
        results.append(service.run_in_thread())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3
    names = {r.file_name for r in results}
    assert len(names) == 3 and set(listed(backup_dir)) == names
    for record in results:
        path = backup_file(record, backup_dir)
        assert files.sha256_of(path) == record.sha256
        assert integrity(unpack(path, tmp_path)) == [("ok",)]


# -- the card -------------------------------------------------------------------------------


def card(client) -> dict:
    response = client.get(ITEM)
    assert response.status_code == 200, response.content
    item = response.json()
    assert item["state"] == "ok", item
    assert item["title"] == "Backups" and item["order"] == 40
    return item["data"]


def record(hours_ago: float, status: str = "ok", size: int = 24 * MB, **fields) -> BackupRecord:
    return BackupRecord.objects.create(
        created_at=timezone.now() - timedelta(hours=hours_ago),
        status=status,
        size=size if status == "ok" else 0,
        file_name=fields.pop("file_name", files.new_name("default", "sqlite", timezone.now()))
        if status == "ok"
        else "",
        vendor="sqlite",
        **fields,
    )


def test_card_without_backups_is_unknown(staff_client):
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("No backups yet", "unknown")


def test_card_with_a_recent_backup_is_ok(staff_client):
    record(27)
    record(3.2)
    data = card(staff_client)
    assert data == {
        **data,
        "headline": "Last backup 3 h ago",
        "detail": "2 stored · 48 MB",
        "status": "ok",
    }
    assert data["extra"]["stored"] == 2 and data["extra"]["total_bytes"] == 48 * MB


def test_card_warns_when_the_newest_good_backup_is_too_old(staff_client, settings):
    record(30)
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("Last backup 30 h ago", "warning")
    settings.SMALLSTACK_BACKUPS = {**settings.SMALLSTACK_BACKUPS, "MAX_AGE_HOURS": 48}
    caches["default"].clear()  # the card is cached for 30 s
    assert card(staff_client)["status"] == "ok"


def test_card_is_an_error_when_the_last_run_failed(staff_client):
    record(5)
    record(1, status="error", error="pg_dump exited with status 1: connection refused")
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("Last backup failed 1 h ago", "error")
    assert data["detail"] == "1 stored · 24 MB"
    assert "connection refused" in data["extra"]["last_error"]


def test_card_links_to_the_page_in_the_monitoring_group(staff_client):
    item = staff_client.get(ITEM).json()
    assert item["url"] == PAGE and item["group"] == "Monitoring"
    assert item["icon"].startswith("<svg")


# -- the page, downloads, the button ---------------------------------------------------------


def test_page_lists_records_newest_first_escaped(staff_client):
    old = record(50, duration=1.5)
    record(20, status="error", error="<script>alert(1)</script> went wrong")
    new = record(2, size=3 * MB)
    html = staff_client.get(PAGE).content.decode()
    ids = [int(i) for i in re.findall(r'<tr class="backup" data-id="(\d+)"', html)]
    assert ids == list(BackupRecord.objects.order_by("-created_at").values_list("pk", flat=True))
    assert "&lt;script&gt;alert(1)&lt;/script&gt; went wrong" in html
    assert "<script>alert" not in html
    assert "3.0 MB" in html and "1.50 s" in html
    # Records whose file is not on disk say so, and offer no download.
    assert html.count("file missing") == 2
    assert f"/smallstack/backups/{new.pk}/download/" not in html
    assert f"/smallstack/backups/{old.pk}/download/" not in html
    assert 'action="/smallstack/backups/run/"' in html and "csrfmiddlewaretoken" in html


def test_page_offers_downloads_of_files_on_disk(staff_client, backup_dir):
    made = service.backup()
    html = staff_client.get(PAGE).content.decode()
    assert f'href="/smallstack/backups/{made.pk}/download/"' in html
    assert made.sha256 in html and "file missing" not in html
    # A file name this app would not write is never offered, even if such a file exists.
    odd = record(1, file_name="notes.txt")
    (backup_dir / "notes.txt").write_text("not a backup")
    html = staff_client.get(PAGE).content.decode()
    assert f"/smallstack/backups/{odd.pk}/download/" not in html


def test_page_is_staff_only(client, plain_user):
    assert client.get(PAGE).status_code == 302  # to the login page
    client.force_login(plain_user)
    assert client.get(PAGE).status_code == 403


async def _body(response) -> bytes:
    return b"".join([chunk async for chunk in response.streaming_content])


async def test_download_streams_the_file_as_an_attachment(staff_async_client, backup_dir):
    made = await sync_to_async(service.backup)()
    response = await staff_async_client.get(f"/smallstack/backups/{made.pk}/download/")
    assert response.status_code == 200
    assert response.streaming and response.is_async  # read on a thread, chunk by chunk
    assert response["Content-Disposition"] == f'attachment; filename="{made.file_name}"'
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Length"] == str(made.size)
    assert response["Cache-Control"] == "private, no-store"
    body = await _body(response)
    assert hashlib.sha256(body).hexdigest() == made.sha256


async def test_download_refuses_non_staff_and_anything_but_a_good_record(
    async_client, plain_user, staff_async_client, backup_dir
):
    made = await sync_to_async(service.backup)()
    failed = await BackupRecord.objects.acreate(
        created_at=timezone.now(), status="error", vendor="sqlite", error="boom"
    )
    url = f"/smallstack/backups/{made.pk}/download/"
    anonymous = Client()
    assert (await sync_to_async(anonymous.get)(url)).status_code == 302
    outsider = Client()
    await sync_to_async(outsider.force_login)(plain_user)
    assert (await sync_to_async(outsider.get)(url)).status_code == 403

    # A record naming a file outside the backup directory (written by hand) is never followed.
    (backup_dir.parent / "secret.sqlite3").write_bytes(b"outside the backup directory")
    escaping = await BackupRecord.objects.acreate(
        created_at=timezone.now(), status="ok", vendor="sqlite", file_name="../secret.sqlite3"
    )
    assert (backup_dir / escaping.file_name).is_file()
    for bad in (
        f"/smallstack/backups/{escaping.pk}/download/",
        f"/smallstack/backups/{failed.pk}/download/",
        f"/smallstack/backups/{made.pk + 1000}/download/",
        "/smallstack/backups/..%2F..%2Fdb.sqlite3/download/",
        "/smallstack/backups/-1/download/",
    ):
        response = await staff_async_client.get(bad)
        assert response.status_code == 404, bad


async def test_download_of_a_record_whose_file_is_gone_is_a_clear_404(
    staff_async_client, backup_dir, settings
):
    settings.DEBUG = False
    made = await sync_to_async(service.backup)()
    (backup_dir / made.file_name).unlink()
    response = await staff_async_client.get(f"/smallstack/backups/{made.pk}/download/")
    assert response.status_code == 404
    settings.DEBUG = True  # the technical 404 page shows the message
    response = await staff_async_client.get(f"/smallstack/backups/{made.pk}/download/")
    assert response.status_code == 404
    assert "is no longer in the backup directory" in response.content.decode()


def test_back_up_now_needs_csrf(staff_user, backup_dir):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    assert browser.post("/smallstack/backups/run/").status_code == 403
    assert not BackupRecord.objects.exists() and listed(backup_dir) == []

    page = browser.get(PAGE).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post("/smallstack/backups/run/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == PAGE
    made = BackupRecord.objects.get()
    assert made.status == "ok" and listed(backup_dir) == [made.file_name]
    html = browser.get(PAGE).content.decode()
    assert f"Backed up to {made.file_name}" in html


def test_back_up_now_is_post_only_and_staff_only(client, plain_user, staff_client):
    assert staff_client.get("/smallstack/backups/run/").status_code == 405
    client.force_login(plain_user)
    assert client.post("/smallstack/backups/run/").status_code == 403
    assert not BackupRecord.objects.exists()


async def test_back_up_now_runs_off_the_event_loop(staff_async_client, monkeypatch):
    seen = {}
    real = service.backup

    def spy(**options):
        seen["thread"] = threading.get_ident()
        try:
            asyncio.get_running_loop()
            seen["loop"] = True
        except RuntimeError:
            seen["loop"] = False
        return real(**options)

    monkeypatch.setattr(service, "backup", spy)
    response = await staff_async_client.post("/smallstack/backups/run/")
    assert response.status_code == 302
    assert seen == {"thread": seen["thread"], "loop": False}
    assert seen["thread"] != threading.get_ident()
    assert await BackupRecord.objects.filter(status="ok").acount() == 1


def test_back_up_now_reports_a_failure_and_one_at_a_time(staff_client, settings, tmp_path):
    service.button_lock.acquire()
    try:
        response = staff_client.post("/smallstack/backups/run/", follow=True)
    finally:
        service.button_lock.release()
    assert "A backup is already running" in response.content.decode()
    assert not BackupRecord.objects.exists()

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(blocker)}
    html = staff_client.post("/smallstack/backups/run/", follow=True).content.decode()
    assert "Backup failed: FileExistsError" in html
    assert BackupRecord.objects.get().status == "error"


# -- the serving lock ------------------------------------------------------------------------


def test_restore_is_refused_while_this_database_is_served(backup_dir):
    made = service.backup()
    serving.on_request_started(sender=Client().handler.__class__)  # the test client: no lock
    call_command("restore", made.file_name, force=True, stdout=open(os.devnull, "w"))  # noqa: SIM115

    serving.on_request_started(sender=ASGIHandler)  # a real server's first request
    with pytest.raises(CommandError, match=rf"a server is running on .*process {os.getpid()}"):
        call_command("restore", made.file_name, force=True)
    serving.release_all()
    call_command("restore", made.file_name, force=True, stdout=open(os.devnull, "w"))  # noqa: SIM115


# -- seed, settings, helpers ----------------------------------------------------------------


def test_seed_takes_one_backup_when_there_is_none(backup_dir):
    assert seed_backup().startswith("Demo backup: backup-default-")
    assert seed_backup() == "Demo backup present."
    assert BackupRecord.objects.filter(status="ok").count() == 1 and len(listed(backup_dir)) == 1


def backup_messages(id_: str | None = None) -> list:
    return [m for m in run_checks() if m.id.startswith("backups.") and (id_ is None or m.id == id_)]


def test_the_projects_configuration_passes():
    assert backup_messages() == []


@pytest.mark.parametrize(
    ("value", "id_", "text"),
    [
        (["BACKUP_DIR"], "backups.E001", "must be a dict"),
        ({"MAX_AGE": 3}, "backups.E002", "Did you mean 'MAX_AGE_HOURS'?"),
        ({"MAX_AGE_HOURS": 0}, "backups.E003", "a positive number of hours"),
        ({"KEEP": 0}, "backups.E003", "a positive integer, or None"),
        ({"KEEP": True}, "backups.E003", "a positive integer, or None"),
    ],
)
def test_bad_settings_are_reported(settings, value, id_, text):
    settings.SMALLSTACK_BACKUPS = value
    [message] = backup_messages(id_)
    assert text in message.msg + (message.hint or "")


def test_a_backup_dir_that_is_a_file_is_reported(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(blocker)}
    [message] = backup_messages("backups.E004")
    assert "is not a directory" in message.msg
    settings.SMALLSTACK_BACKUPS = {"BACKUP_DIR": str(blocker / "below")}
    [message] = backup_messages("backups.E004")
    assert "cannot be created" in message.msg


@pytest.fixture
def other_database(monkeypatch):
    def use(settings_dict):
        handler = ConnectionHandler({"default": settings_dict})
        monkeypatch.setattr(backup_checks, "connections", handler)

    return use


def test_postgresql_without_pg_dump_is_reported(settings, tmp_path, other_database):
    pytest.importorskip("psycopg")
    other_database({"ENGINE": "django.db.backends.postgresql", "NAME": "app"})
    empty = tmp_path / "bin"
    empty.mkdir()
    settings.SMALLSTACK_BACKUPS = {**settings.SMALLSTACK_BACKUPS, "PG_BIN_DIR": str(empty)}
    [message] = backup_messages("backups.E005")
    assert "pg_dump and pg_restore are not in" in message.msg and str(empty) in message.msg
    (empty / "pg_dump").write_text("#!/bin/sh\n")
    (empty / "pg_dump").chmod(0o755)
    [message] = backup_messages("backups.E005")
    assert "pg_restore is not in" in message.msg


def test_an_unsupported_database_is_reported(other_database):
    other_database({"ENGINE": "django.db.backends.dummy"})
    [message] = backup_messages("backups.E006")
    assert "SQLite and PostgreSQL" in message.msg


def test_human_forms():
    assert [humanize.age(timedelta(seconds=s)) for s in (5, 125, 3 * 3600 + 59, 3 * 86400)] == [
        "just now",
        "2 min ago",
        "3 h ago",
        "3 d ago",
    ]
    assert [humanize.size(n) for n in (512, 9.5 * 1024, 48 * MB, 1.25 * 1024 * MB)] == [
        "512 B",
        "9.5 KB",
        "48 MB",
        "1.2 GB",
    ]
    assert humanize.seconds(0.4213) == "0.42 s" and humanize.seconds(245) == "4 min 5 s"


def test_file_names_are_unique_and_recognised():
    now = timezone.now()
    names = {files.new_name("default", "sqlite", now) for _ in range(100)}
    assert len(names) == 100 and all(files.is_backup_name(n) for n in names)
    assert not files.is_backup_name("../db.sqlite3")
    assert not files.is_backup_name("backup-default-x/../../etc.pgdump")
    assert sqlite.database_path({"NAME": "file:/tmp/x.db?mode=rw"}) == Path("/tmp/x.db")


def deployed_arguments(name: str) -> list[str]:
    """The arguments after ``manage.py`` in a deploy/ file's command line."""
    text = (Path(__file__).resolve().parent.parent / "deploy" / name).read_text()
    [line] = [
        line
        for line in text.splitlines()
        if "manage.py backup" in line and not line.lstrip().startswith("#")
    ]
    return line.split("manage.py", 1)[1].split()


def test_the_deploy_files_run_a_working_backup_command(backup_dir):
    from io import StringIO

    service_args = deployed_arguments("smallstack-backup.service")
    cron_args = deployed_arguments("smallstack-backup.cron")
    assert service_args[:3] == cron_args[:3] == ["backup", "--keep", "14"]
    out = StringIO()
    call_command(*service_args, stdout=out)
    assert "sha256" in out.getvalue()  # a journal line for each run
    quiet = StringIO()
    call_command(*cron_args, stdout=quiet)
    assert quiet.getvalue() == ""  # cron mails only failures
    assert BackupRecord.objects.filter(status="ok").count() == 2


def test_an_unknown_database_alias_is_a_clear_error(backup_dir):
    with pytest.raises(CommandError, match="there is no database 'nope' in DATABASES"):
        call_command("backup", database="nope")
    made = service.backup()
    with pytest.raises(CommandError, match="there is no database 'nope' in DATABASES"):
        call_command("restore", made.file_name, database="nope", force=True)
    assert listed(backup_dir) == [made.file_name]
