"""``manage.py restore FILE``: replace the database with a backup."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from smallstack.backups import humanize, service
from smallstack.backups.errors import BackupError


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into the database. The file's SHA-256 is "
        "checked against its record first (--no-verify skips that, for a file from elsewhere); "
        "a database holding any table is only replaced with --force; a SQLite database that a "
        "running server uses is never replaced."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a backup file: a path, or a name in BACKUP_DIR")
        parser.add_argument(
            "--no-verify",
            action="store_true",
            help="restore without checking the file against its backup record",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the contents of a database that is not empty",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="the database alias to restore into (default: %(default)s)",
        )

    def handle(
        self, *args: Any, file: str, no_verify: bool, force: bool, database: str, **options: Any
    ) -> None:
        try:
            done = service.restore(
                file, database=database, verify_checksum=not no_verify, force=force
            )
        except BackupError as exc:
            raise CommandError(f"restore refused or failed: {exc}") from exc
        if done.record is not None:
            checked = (
                f"SHA-256 verified against its record of "
                f"{done.record.created_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        else:
            checked = "not verified (--no-verify)"
        self.stdout.write(
            f"Restored {done.path} ({done.vendor}, {humanize.size(done.size)}, {checked}) "
            f"into {done.target}: {len(done.tables)} tables."
        )
        if done.records_kept is not None:
            self.stdout.write(
                f"The {done.records_kept} backup records the database had before were kept."
            )
        if done.unapplied_migrations:
            self.stdout.write(
                self.style.WARNING(
                    f"The restored database lacks {done.unapplied_migrations} migrations of "
                    "this code: run `manage.py migrate`."
                )
            )
