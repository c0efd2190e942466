"""``manage.py heartbeat``: run the checks, record a Heartbeat, prune old ones."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections
from django.utils import timezone

from smallstack.heartbeat import conf, probes, service
from smallstack.heartbeat.models import Heartbeat

#: Beats kept in memory while the database cannot take them (``--loop``), written once it can.
MAX_PENDING = 1000


class Command(BaseCommand):
    help = (
        "Run the health checks once and record a heartbeat (with --loop SECONDS: every SECONDS "
        "until SIGTERM or SIGINT). Heartbeats older than RETENTION_DAYS are pruned."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            help="run as a service: one heartbeat every SECONDS until stopped",
        )
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            help="prune heartbeats older than this (default: SMALLSTACK_HEARTBEAT RETENTION_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        loop_seconds = options["loop"]
        if loop_seconds is not None and loop_seconds <= 0:
            raise CommandError("--loop needs a positive number of seconds")
        self.retention = options["retention_days"]
        self.pending: list[Heartbeat] = []
        if loop_seconds is None:
            if not self.beat(float(conf.get("INTERVAL"))):
                raise CommandError("the heartbeat could not be recorded")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.stdout.write(f"heartbeat every {loop_seconds:g} s; SIGTERM or SIGINT stops")
            while not stop.is_set():
                started = timezone.now()
                self.beat(loop_seconds)
                elapsed = (timezone.now() - started).total_seconds()
                stop.wait(max(0.0, loop_seconds - elapsed))
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self.stdout.write("heartbeat stopped")

    def beat(self, interval: float) -> bool:
        """Run the checks, record the beat (and any kept back), prune; whether it was stored."""
        at = timezone.now()
        results = asyncio.run(probes.run_checks())
        try:
            close_old_connections()
            maintenance = service.in_maintenance(at)
        except Exception:
            maintenance = False  # the database is down: the database check says so
        row = service.build(results, at, interval, maintenance)
        self.pending = [*self.pending, row][-MAX_PENDING:]
        try:
            Heartbeat.objects.bulk_create(self.pending)
            written = len(self.pending)
            self.pending = []
            pruned = service.prune(days=self.retention)
        except Exception as exc:
            self.stderr.write(
                f"{at:%Y-%m-%d %H:%M:%S} {row.status}: not recorded "
                f"({type(exc).__name__}: {exc}); {len(self.pending)} kept to retry"
            )
            return False
        finally:
            for conn in connections.all(initialized_only=True):
                conn.close()
        failing = ", ".join(f"{r.name} ({r.message})" for r in probes.worst(results))
        self.stdout.write(
            f"{at:%Y-%m-%d %H:%M:%S} {row.status}"
            + (f": {failing}" if failing else "")
            + (f"; {written} beats written" if written > 1 else "")
            + (f"; {pruned} pruned" if pruned else "")
        )
        return True
