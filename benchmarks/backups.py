"""A SQLite backup while the site writes: ``python -m benchmarks.backups`` (part of ``make bench``).

Builds a database of about ``BENCH_BACKUP_MB`` (default 100) MB of order-like text in a
temporary data directory, starts a writer thread committing one row per transaction with a
1 ms pause after each (a busy site's writes, as SQLite sees them), and runs ``manage.py
backup`` in its own process, as cron or the timer would. It prints the backup's time and
compressed size, the writer's commits per second before and during the backup, and its longest
wait between two commits during it; the same backup alone first, for comparison; then the time
``manage.py restore --force`` takes. Targets: the writer is never held up for 1 s (SQLite's
busy timeout here is 20 s), and keeps at least half its rate.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

from tests.servers import manage, prepare_data_dir

WORDS = ["order", "customer", "shipped", "invoice", "paid", "refund", "total", "item"]
MAX_STALL, MIN_RATE = 1.0, 0.5
PAUSE = 0.001  # seconds between two commits of the writer


def fill(path: Path, megabytes: float) -> None:
    rng = random.Random(1)
    rows = int(megabytes * 1e6 / 330)
    with contextlib.closing(sqlite3.connect(path, timeout=20)) as db:
        db.execute("CREATE TABLE ballast (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        db.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO ballast (data) VALUES (?)",
            (
                (" ".join(rng.choice(WORDS) for _ in range(40)) + os.urandom(20).hex(),)
                for _ in range(rows)
            ),
        )
        db.commit()


def _seconds(output: str) -> float:
    """The backup's own duration, from the command's line ("... in 5.12 s, sha256 ...")."""
    match = re.search(r" in (?:(\d+) min )?([\d.]+) s, sha256", output)
    assert match, output
    return int(match.group(1) or 0) * 60 + float(match.group(2))


class Writer(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.commits, self.halt = path, [], threading.Event()

    def run(self) -> None:
        with contextlib.closing(sqlite3.connect(self.path, timeout=20, isolation_level=None)) as db:
            while not self.halt.is_set():
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO probe (payload) VALUES ('row')")
                db.execute("COMMIT")
                self.commits.append(time.monotonic())
                # A pause between writes, as a busy site has: back-to-back commits would hold
                # the write lock nearly all the time and starve every other writer (the
                # command's own record among them) in SQLite's busy handler.
                time.sleep(PAUSE)


def main() -> None:
    megabytes = float(os.environ.get("BENCH_BACKUP_MB", "100"))
    with tempfile.TemporaryDirectory(prefix="smallstack-bench-backups-") as folder:
        base = Path(folder)
        database = base / "data" / "db.sqlite3"
        environ = prepare_data_dir(
            base / "data", BACKUP_DIR=str(base / "backups"), DATABASE_URL=f"sqlite:///{database}"
        )
        fill(database, megabytes)
        size_mb = database.stat().st_size / 1e6
        alone = _seconds(manage(environ, "backup", "--keep", "1"))
        writer = Writer(database)
        writer.start()
        time.sleep(2)
        started = time.monotonic()
        out = manage(environ, "backup", "--keep", "1")
        finished = time.monotonic()
        with_writer = _seconds(out)
        time.sleep(1)
        writer.halt.set()
        writer.join()
        name = Path(out.split(":", 1)[0]).name
        backup_mb = (base / "backups" / name).stat().st_size / 1e6
        restore_started = time.monotonic()
        manage(environ, "restore", name, "--force")
        restore_seconds = time.monotonic() - restore_started

    commits = writer.commits
    before = [t for t in commits if started - 2 <= t < started]
    during = [t for t in commits if started <= t < finished]
    gaps = [b - a for a, b in itertools.pairwise(commits) if started <= b < finished]
    stall = max(gaps, default=finished - started)
    rate_before, rate_during = len(before) / 2, len(during) / (finished - started)
    print(
        f"\nSQLite backup while writing ({size_mb:.0f} MB database, `manage.py backup` in its own "
        "process)\n"
        f"  backup: {alone:.2f} s alone, {with_writer:.2f} s beside the writer "
        f"({finished - started:.2f} s with the command's start-up), {backup_mb:.1f} MB compressed\n"
        f"  writer: {rate_before:.0f} commits/s before, {rate_during:.0f} during "
        f"({rate_during / rate_before:.2f}x), longest wait {stall * 1000:.0f} ms\n"
        f"  restore --force: {restore_seconds:.2f} s\n"
        f"  targets: longest wait < {MAX_STALL:.0f} s "
        f"({'met' if stall < MAX_STALL else 'MISSED'}), rate during >= {MIN_RATE}x "
        f"({'met' if rate_during >= MIN_RATE * rate_before else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
