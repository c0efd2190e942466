"""``manage.py backup``: an online backup of the database into the backup directory."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from smallstack.backups import conf, humanize, service
from smallstack.backups.errors import BackupError


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Back up the database while the site keeps serving (SQLite: the backup API, gzip; "
        "PostgreSQL: pg_dump --format=custom) into BACKUP_DIR, and record it. With --keep N, "
        "only the N newest good backups are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--keep",
            type=positive,
            metavar="N",
            help="afterwards delete all but the N newest good backups (files and records); "
            "default: SMALLSTACK_BACKUPS['KEEP'], else keep all",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="the database alias to back up (default: %(default)s)",
        )

    def handle(self, *args: Any, keep: int | None, database: str, **options: Any) -> None:
        try:
            record = service.backup(database=database, keep=keep)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from exc
        if options["verbosity"] < 1:  # -v0: quiet unless it fails (cron mails only failures)
            return
        self.stdout.write(
            f"{conf.backup_dir() / record.file_name}: {humanize.size(record.size)} "
            f"in {humanize.seconds(record.duration)}, sha256 {record.sha256}"
        )
