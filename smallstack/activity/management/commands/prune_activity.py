"""``manage.py prune_activity [--days N]``: delete request log rows older than the retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from smallstack.activity import conf
from smallstack.activity.models import RequestLog, RequestLogDrop


class Command(BaseCommand):
    help = "Delete request log rows older than SMALLSTACK_ACTIVITY['RETENTION_DAYS'] (or --days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days (default: the RETENTION_DAYS setting, 30).",
        )

    def handle(self, *args: Any, days: int | None = None, **options: Any) -> None:
        days = conf.get("RETENTION_DAYS") if days is None else days
        if not isinstance(days, int) or days < 0:
            raise CommandError(f"--days must be 0 or more, not {days!r}")
        cutoff = timezone.now() - timedelta(days=days)
        deleted, _ = RequestLog.objects.filter(time__lt=cutoff).delete()
        RequestLogDrop.objects.filter(time__lt=cutoff).delete()
        self.stdout.write(f"Deleted {deleted} request log rows older than {days} days.")
