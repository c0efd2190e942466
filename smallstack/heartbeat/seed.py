"""Demo data: a realistic stretch of heartbeats."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from smallstack.heartbeat.models import Heartbeat, MaintenanceWindow

CHECKS = {  # name: median milliseconds
    "database": 1.2,
    "cache": 0.2,
    "channel_layer": 0.6,
    "disk": 0.1,
}


def seed_heartbeats(
    days: float = 1,
    *,
    interval: float = 60.0,
    now: datetime | None = None,
    seed: int | None = None,
) -> int:
    """Create ``days`` of :class:`Heartbeat` rows, one per ``interval`` s, ending ``now``.

    Mostly ok with jittered timings; a few warning beats (the disk nearly full for a while),
    one short outage of the cache (error beats), one silent stretch (the heartbeat process was
    stopped: a gap, shown as unknown time) and one maintenance window with its beats marked
    maintenance. ``seed`` makes the rows reproducible. Returns how many rows were created.
    """
    if days <= 0 or interval <= 0:
        raise ValueError("days and interval must be positive")
    rng = random.Random(seed)
    now = now or timezone.now()
    start = now - timedelta(days=days)
    total = int(days * 86400 // interval)
    span = total * interval

    def moment(fraction: float) -> datetime:
        return start + timedelta(seconds=span * fraction)

    outage = (moment(0.31), moment(0.31) + timedelta(minutes=6))
    degraded = (moment(0.55), moment(0.55) + timedelta(minutes=25))
    silence = (moment(0.72), moment(0.72) + timedelta(minutes=12))
    maintenance = (moment(0.86), moment(0.86) + timedelta(minutes=20))
    MaintenanceWindow.objects.create(
        start=maintenance[0], end=maintenance[1], note="Database upgrade (demo)"
    )

    rows = []
    for i in range(total):
        at = start + timedelta(seconds=i * interval + rng.uniform(0, 1.5))
        if silence[0] <= at < silence[1]:
            continue
        checks: dict[str, dict[str, Any]] = {
            name: {
                "status": "ok",
                "ms": round(median * rng.lognormvariate(0, 0.4), 2),
                "message": "",
            }
            for name, median in CHECKS.items()
        }
        checks["disk"]["message"] = "41.3 GB free of 78.0 GB"
        if outage[0] <= at < outage[1]:
            checks["cache"] = {
                "status": "error",
                "ms": 2000.0,
                "message": "timed out after 2 s",
            }
        if degraded[0] <= at < degraded[1]:
            checks["disk"] = {
                "status": "warning",
                "ms": 0.1,
                "message": "0.8 GB free of 78.0 GB, under 1024 MB",
            }
        statuses = {c["status"] for c in checks.values()}
        status = "error" if "error" in statuses else "warning" if "warning" in statuses else "ok"
        if maintenance[0] <= at < maintenance[1]:
            status = "maintenance"
        rows.append(
            Heartbeat(
                created_at=at,
                status=status,
                checks=checks,
                interval=interval,
                duration_ms=max(c["ms"] for c in checks.values()),
            )
        )
    Heartbeat.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
