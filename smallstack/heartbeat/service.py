"""Reading and writing heartbeats: what the command records and what the card and pages show."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.utils import timezone

from smallstack.heartbeat import conf, probes, uptime
from smallstack.heartbeat.models import Heartbeat, MaintenanceWindow

T = TypeVar("T")

#: The spans the card and the pages report uptime over.
SPANS = {"24 h": timedelta(hours=24), "7 d": timedelta(days=7), "30 d": timedelta(days=30)}


def overall_status(results: Sequence[probes.CheckResult], in_maintenance: bool) -> str:
    return "maintenance" if in_maintenance else probes.overall(list(results))


def build(
    results: Sequence[probes.CheckResult], at: datetime, interval: float, in_maintenance: bool
) -> Heartbeat:
    """An unsaved :class:`Heartbeat` for one run of the checks."""
    return Heartbeat(
        created_at=at,
        status=overall_status(results, in_maintenance),
        checks={r.name: r.as_json() for r in results},
        interval=interval,
        duration_ms=max((r.ms for r in results), default=0.0),
    )


def windows_covering(at: datetime) -> Q:
    return Q(start__lte=at, end__gt=at)


def in_maintenance(at: datetime) -> bool:
    return MaintenanceWindow.objects.filter(windows_covering(at)).exists()


async def ain_maintenance(at: datetime) -> bool:
    return await MaintenanceWindow.objects.filter(windows_covering(at)).aexists()


def prune(now: datetime | None = None, days: int | None = None) -> int:
    """Delete heartbeats older than ``days`` (``RETENTION_DAYS``); how many were deleted."""
    days = int(conf.get("RETENTION_DAYS")) if days is None else days
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = Heartbeat.objects.filter(created_at__lt=cutoff).delete()
    return deleted


# -- reading ----------------------------------------------------------------------------------


async def abeats(start: datetime, end: datetime) -> list[uptime.Beat]:
    """Beats in ``[start, end)``, preceded by the last one before ``start`` (it may cover the
    span's first moments)."""
    fields = ("created_at", "status", "interval")
    before = (
        await Heartbeat.objects.filter(created_at__lt=start)
        .order_by("-created_at")
        .values_list(*fields)
        .afirst()
    )
    rows = Heartbeat.objects.filter(created_at__gte=start, created_at__lt=end)
    # One trip to the ORM's thread for up to 30 days of rows, not one per 100-row chunk.
    ordered = rows.order_by("created_at").values_list(*fields)
    found: list[tuple[datetime, str, float]] = await sync_to_async(lambda: list(ordered))()
    beats = [uptime.Beat(*row) for row in found]
    return ([uptime.Beat(*before)] if before else []) + beats


async def awindows(start: datetime, end: datetime) -> list[MaintenanceWindow]:
    return [w async for w in MaintenanceWindow.objects.filter(end__gt=start, start__lt=end)]


@dataclass
class Summary:
    """What the card and the pages need: the latest beat, uptime per span, maintenance now."""

    now: datetime
    latest: Heartbeat | None
    uptimes: dict[str, uptime.Uptime]
    maintenance_now: bool
    beats: list[uptime.Beat]
    windows: list[MaintenanceWindow]

    @property
    def latest_is_current(self) -> bool:
        """Whether the latest beat still vouches for now (the gap rule)."""
        if self.latest is None:
            return False
        limit = timedelta(seconds=self.latest.interval * float(conf.get("GAP_FACTOR")))
        return self.now - self.latest.created_at <= limit

    def timeline(self, hours: int = 24, bars: int = 96) -> list[uptime.Bar]:
        """Pure computation over the beats: call it off the event loop (see :func:`off_loop`)."""
        start = self.now - timedelta(hours=hours)
        spans = [(w.start, w.end) for w in self.windows]
        return uptime.timeline(
            since(self.beats, start), spans, start, self.now, bars, float(conf.get("GAP_FACTOR"))
        )


def since(beats: list[uptime.Beat], start: datetime) -> list[uptime.Beat]:
    """The sorted ``beats`` that matter from ``start`` on: those after it and the one before."""
    first = bisect.bisect_left(beats, start, key=lambda b: b.at)
    return beats[max(0, first - 1) :]


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run pure computation (the uptime maths over up to 30 days of beats) on a thread, so the
    event loop keeps answering meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(probes.pool(), func, *args)


async def asummary(now: datetime | None = None, spans: Sequence[str] = tuple(SPANS)) -> Summary:
    """Read the latest beat and compute uptime over ``spans`` (keys of :data:`SPANS`)."""
    now = now or timezone.now()
    longest = max(SPANS[name] for name in spans)
    beats = await abeats(now - longest, now)
    windows = await awindows(now - longest, now + timedelta(days=30))
    latest = await Heartbeat.objects.filter(created_at__lte=now).order_by("-created_at").afirst()
    gap_factor = float(conf.get("GAP_FACTOR"))
    spans_of_windows = [(w.start, w.end) for w in windows]

    def compute() -> dict[str, uptime.Uptime]:
        return {
            name: uptime.uptime(
                since(beats, now - SPANS[name]),
                spans_of_windows,
                now - SPANS[name],
                now,
                gap_factor,
            )
            for name in spans
        }

    uptimes = await off_loop(compute)
    maintenance_now = any(w.start <= now < w.end for w in windows)
    return Summary(now, latest, uptimes, maintenance_now, beats, windows)


def uptime_json(value: uptime.Uptime) -> dict[str, Any]:
    return {
        "ratio": None if value.ratio is None else round(value.ratio, 6),
        "up_seconds": round(value.up + value.degraded, 1),
        "down_seconds": round(value.down, 1),
        "maintenance_seconds": round(value.maintenance, 1),
        "unknown_seconds": round(value.unknown, 1),
    }
