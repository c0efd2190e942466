"""Aggregations over the request log, computed in the database.

Each figure is one query over an indexed time range (conditional ``COUNT``s for the buckets
and status classes, one ordered offset for a percentile), so the cost follows the rows in the
window, not the size of the table, apart from the all-time total (one ``COUNT(*)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from smallstack.activity.models import RequestLog, RequestLogDrop

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True)
class Window:
    name: str
    span: timedelta
    step: timedelta
    label_format: str

    @property
    def buckets(self) -> int:
        return int(self.span / self.step)


WINDOWS = {
    "1h": Window("1h", timedelta(hours=1), timedelta(minutes=5), "%H:%M"),
    "24h": Window("24h", timedelta(hours=24), timedelta(hours=1), "%H:00"),
    "7d": Window("7d", timedelta(days=7), timedelta(hours=6), "%a %H:00"),
}
DEFAULT_WINDOW = "24h"


def bucket_starts(window: Window, now: datetime) -> list[datetime]:
    """Start of each bucket, oldest first; the last one holds ``now`` (aligned to the step)."""
    step = window.step.total_seconds()
    last = datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, now.tzinfo)
    return [last - window.step * (window.buckets - 1 - i) for i in range(window.buckets)]


def _status_filter(name: str) -> Q:
    low = int(name[0]) * 100
    return Q(status__gte=low, status__lt=low + 100)


async def overview(window: Window, now: datetime | None = None) -> dict[str, Any]:
    """Counts per bucket and per status class, total and p95 over ``window`` ending ``now``."""
    now = now or timezone.now()
    since = now - window.span
    starts = bucket_starts(window, now)
    counts: dict[str, Any] = {
        f"b{i}": Count("pk", filter=Q(time__gte=start, time__lt=start + window.step))
        for i, start in enumerate(starts)
    }
    counts["total"] = Count("pk", filter=Q(time__gte=since))
    counts.update({name: Count("pk", filter=Q(time__gte=since) & _status_filter(name))
                   for name in STATUS_CLASSES})  # fmt: skip
    in_window = RequestLog.objects.filter(time__gte=min(since, starts[0]), time__lte=now)
    result = await in_window.aaggregate(**counts)
    total = result["total"]
    return {
        "total": total,
        "series": [result[f"b{i}"] for i in range(len(starts))],
        "series_labels": [timezone.localtime(s).strftime(window.label_format) for s in starts],
        "status": {name: result[name] for name in STATUS_CLASSES},
        "error_rate": round(result["5xx"] / total, 4) if total else 0.0,
        "p95_ms": await percentile(RequestLog.objects.filter(time__gte=since), 0.95, total),
    }


async def percentile(
    rows: QuerySet[RequestLog], q: float, count: int | None = None
) -> float | None:
    """The ``q`` quantile of ``duration_ms`` over ``rows`` (nearest rank); None if empty."""
    if count is None:
        count = await rows.acount()
    if not count:
        return None
    rank = max(0, math.ceil(q * count) - 1)
    ordered = rows.order_by("duration_ms").values_list("duration_ms", flat=True)
    values = [value async for value in ordered[rank : rank + 1]]
    return round(values[0], 1) if values else None


async def top_paths(since: datetime, limit: int = 10) -> list[dict[str, Any]]:
    """The most requested paths since ``since``: path, requests, 5xx count."""
    rows = (
        RequestLog.objects.filter(time__gte=since)
        .values("path")
        .annotate(requests=Count("pk"), errors=Count("pk", filter=Q(status__gte=500)))
        .order_by("-requests", "path")[:limit]
    )
    return [dict(row) async for row in rows]


def _slowest_paths(since: datetime, limit: int, minimum: int) -> list[dict[str, Any]]:
    quote = connection.ops.quote_name
    table = quote(RequestLog._meta.db_table)
    path, duration, time = quote("path"), quote("duration_ms"), quote("time")
    # Window functions (SQLite 3.25+, PostgreSQL): each row's rank within its path; the p95
    # is the smallest duration at or above the 95th percentile rank (nearest rank).
    sql = f"""
        SELECT {path}, MAX(n), MIN({duration}) FROM (
            SELECT {path}, {duration},
                   ROW_NUMBER() OVER (PARTITION BY {path} ORDER BY {duration}) AS r,
                   COUNT(*) OVER (PARTITION BY {path}) AS n
            FROM {table} WHERE {time} >= %s
        ) ranked
        WHERE n >= %s AND r >= n * 0.95
        GROUP BY {path}
        ORDER BY 3 DESC, 1
        LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [since, minimum, limit])
        return [
            {"path": p, "requests": n, "p95_ms": round(ms, 1)} for p, n, ms in cursor.fetchall()
        ]


async def slowest_paths(since: datetime, limit: int = 10, minimum: int = 5) -> list[dict[str, Any]]:
    """Paths with at least ``minimum`` requests since ``since``, slowest p95 first."""
    return await sync_to_async(_slowest_paths)(since, limit, minimum)


async def recent_errors(since: datetime, limit: int = 20) -> list[RequestLog]:
    """The latest 5xx answers since ``since``, newest first."""
    rows = RequestLog.objects.filter(status__gte=500, time__gte=since).order_by("-time")[:limit]
    return [row async for row in rows]


async def dropped(since: datetime) -> dict[str, int]:
    """Rows not kept since ``since``, by reason (``buffer_full``, ``write_failed``)."""
    rows = (
        RequestLogDrop.objects.filter(time__gte=since)
        .values("reason")
        .annotate(rows=Sum("count"))
        .order_by()
    )
    return {row["reason"]: row["rows"] async for row in rows}


async def card(now: datetime | None = None) -> dict[str, Any]:
    """The Activity card's data: all-time total, 24 hours per hour, status classes, p95."""
    now = now or timezone.now()
    day = await overview(WINDOWS["24h"], now)
    total = await RequestLog.objects.acount()
    return {
        "headline": f"{total:,} request{'' if total == 1 else 's'}",
        "detail": f"{day['total']:,} in the last 24 h",
        "status": "ok" if day["error_rate"] < 0.05 else "warning",
        "series": day["series"],
        "series_labels": day["series_labels"],
        "extra": {
            "total": total,
            "last_24h": day["total"],
            "status_classes": day["status"],
            "error_rate": day["error_rate"],
            "p95_ms": day["p95_ms"],
        },
    }
