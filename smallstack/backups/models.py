"""One row per backup run, good or failed."""

from __future__ import annotations

from django.db import models


class BackupRecord(models.Model):
    """A backup file and what is known about it, or a run that failed.

    ``file_name`` is a plain name inside the backup directory (empty for a failed run);
    ``sha256`` and ``size`` describe the file as written, so a restore can tell a damaged or
    substituted file. ``created_at`` is when the run started, ``duration`` its seconds.
    """

    OK, ERROR = "ok", "error"
    STATUSES = ((OK, "ok"), (ERROR, "error"))

    created_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=8, choices=STATUSES)
    file_name = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    duration = models.FloatField(default=0.0)
    vendor = models.CharField(max_length=32)
    database = models.CharField(max_length=100, default="default")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(
                fields=["file_name"],
                condition=~models.Q(file_name=""),
                name="backups_unique_file_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.status} {self.file_name}".strip()
