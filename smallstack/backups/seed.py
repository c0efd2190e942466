"""Demo data: one real backup, so a fresh demo's Backups card has something to show."""

from __future__ import annotations

from smallstack.backups import humanize, service
from smallstack.backups.errors import BackupError
from smallstack.backups.models import BackupRecord


def seed_backup() -> str:
    """Take one backup unless a good one exists; says what happened, in a line."""
    if BackupRecord.objects.filter(status=BackupRecord.OK).exists():
        return "Demo backup present."
    try:
        record = service.backup()
    except BackupError as exc:
        return f"Demo backup failed: {exc}"
    return f"Demo backup: {record.file_name} ({humanize.size(record.size)})."
