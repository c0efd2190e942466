"""What the request log stores."""

from __future__ import annotations

from django.db import models


class RequestLog(models.Model):
    """One answered request. Written in batches by :mod:`smallstack.activity.writer`."""

    time = models.DateTimeField(db_index=True, help_text="When the request arrived.")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500, help_text="Without the query string.")
    status = models.PositiveSmallIntegerField()
    duration_ms = models.FloatField()
    user_id = models.BigIntegerField(
        null=True, blank=True, help_text="Only when the request had already loaded its user."
    )
    token_prefix = models.CharField(max_length=8, blank=True, help_text="API token used, if any.")

    class Meta:
        ordering = ["-time"]
        indexes = [models.Index(fields=["status", "time"], name="activity_status_time")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status}"


class RequestLogDrop(models.Model):
    """Rows a process could not keep: dropped from a full buffer, or lost to a failed write."""

    BUFFER_FULL = "buffer_full"
    WRITE_FAILED = "write_failed"

    time = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField()
    reason = models.CharField(
        max_length=20,
        choices=[(BUFFER_FULL, "buffer full"), (WRITE_FAILED, "write failed")],
        default=BUFFER_FULL,
    )

    class Meta:
        ordering = ["-time"]

    def __str__(self) -> str:
        return f"{self.count} request log rows not kept ({self.reason})"
