"""Heartbeats (one row per run of the checks) and maintenance windows."""

from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """The result of one run of every check.

    ``checks`` maps each check's name to ``{"status", "ms", "message"}``. ``status`` is the
    overall one: ``ok``, ``warning``, ``error``, or ``maintenance`` for a beat taken inside a
    :class:`MaintenanceWindow`. ``interval`` is the number of seconds until the next beat is
    due; the uptime maths reads a longer silence as unknown time.
    """

    STATUSES = ("ok", "warning", "error", "maintenance")

    created_at = models.DateTimeField(db_index=True)
    status = models.CharField(max_length=16, choices=[(s, s) for s in STATUSES])
    checks = models.JSONField(default=dict)
    interval = models.FloatField(default=60.0)
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.status}"


class MaintenanceWindow(models.Model):
    """Planned work: beats taken between ``start`` and ``end`` are "maintenance", not downtime."""

    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")),
                name="heartbeat_window_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} {self.note}".strip()
