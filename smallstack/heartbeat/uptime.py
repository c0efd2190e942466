"""Uptime from heartbeats: pure functions over (time, status, interval) beats.

The rule, stated once:

- A beat vouches for the time from its own moment until the next beat, for at most
  ``gap_factor`` times its interval (the beat's declared seconds until the next one is due).
  Past that, until the next beat, the time is **unknown**: nothing was measured, so it counts
  neither as up nor as down, and it is reported beside the figure.
- Time covered by an ``ok`` or ``warning`` beat is **up** (a warning is degraded, not down);
  by an ``error`` beat, **down**; by a ``maintenance`` beat, **maintenance**.
- Time inside a maintenance window is maintenance, whatever the beats said (unknown included).
- Uptime = up / (up + down). Maintenance and unknown time are left out of the denominator;
  with no up or down time at all there is no figure (``None``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Kinds of time, in the order a timeline bar picks its colour (the first one present wins).
DOWN, DEGRADED, UP, MAINTENANCE, UNKNOWN = "down", "degraded", "up", "maintenance", "unknown"
BAR_PRIORITY = (DOWN, DEGRADED, UP, MAINTENANCE, UNKNOWN)
KIND_OF_STATUS = {"ok": UP, "warning": DEGRADED, "error": DOWN, "maintenance": MAINTENANCE}


@dataclass(frozen=True)
class Beat:
    at: datetime
    status: str
    interval: float  # seconds until the next beat is due


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    kind: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Uptime:
    """Seconds of each kind of time over a span, and the uptime ratio (None: no data)."""

    up: float
    degraded: float
    down: float
    maintenance: float
    unknown: float

    @property
    def measured(self) -> float:
        return self.up + self.degraded + self.down

    @property
    def ratio(self) -> float | None:
        return (self.up + self.degraded) / self.measured if self.measured else None

    @property
    def percent(self) -> str:
        """``"99.95 %"``; never rounds a ratio below 1 up to ``"100.00 %"``; ``"-"`` for none."""
        ratio = self.ratio
        if ratio is None:
            return "-"
        text = f"{ratio * 100:.2f}"
        if text == "100.00" and ratio < 1:
            text = "99.99"
        return f"{text} %"


def segments(
    beats: Sequence[Beat], start: datetime, end: datetime, gap_factor: float = 2.0
) -> list[Segment]:
    """Cover ``[start, end)`` with segments of one kind each, following the gap rule.

    ``beats`` must be sorted by time; beats before ``start`` count for what they cover after it.
    """
    out: list[Segment] = []
    cursor = start

    def add(s: datetime, e: datetime, kind: str) -> None:
        s, e = max(s, start), min(e, end)
        if e <= s:
            return
        if out and out[-1].kind == kind and out[-1].end == s:
            out[-1] = Segment(out[-1].start, e, kind)
        else:
            out.append(Segment(s, e, kind))

    for i, beat in enumerate(beats):
        if beat.at >= end:
            break
        following = beats[i + 1].at if i + 1 < len(beats) else end
        vouched_until = beat.at + timedelta(seconds=beat.interval * gap_factor)
        covered_until = min(following, vouched_until, end)
        if covered_until <= start:
            continue
        if beat.at > cursor:
            add(cursor, beat.at, UNKNOWN)
        add(beat.at, covered_until, KIND_OF_STATUS.get(beat.status, UNKNOWN))
        cursor = max(cursor, covered_until)
    add(cursor, end, UNKNOWN)
    return out


def apply_maintenance(
    parts: Iterable[Segment], windows: Iterable[tuple[datetime, datetime]]
) -> list[Segment]:
    """Turn every part of ``parts`` that lies inside a maintenance window into maintenance."""
    spans = sorted((s, e) for s, e in windows if e > s)
    out: list[Segment] = []
    for seg in parts:
        cursor = seg.start
        for w_start, w_end in spans:
            if w_end <= cursor or w_start >= seg.end:
                continue
            if w_start > cursor:
                out.append(Segment(cursor, w_start, seg.kind))
            inner_end = min(w_end, seg.end)
            out.append(Segment(max(cursor, w_start), inner_end, MAINTENANCE))
            cursor = inner_end
        if cursor < seg.end:
            out.append(Segment(cursor, seg.end, seg.kind))
    return out


def summarize(parts: Iterable[Segment]) -> Uptime:
    totals = dict.fromkeys(BAR_PRIORITY, 0.0)
    for seg in parts:
        totals[seg.kind] += seg.seconds
    return Uptime(
        up=totals[UP],
        degraded=totals[DEGRADED],
        down=totals[DOWN],
        maintenance=totals[MAINTENANCE],
        unknown=totals[UNKNOWN],
    )


def uptime(
    beats: Sequence[Beat],
    windows: Iterable[tuple[datetime, datetime]],
    start: datetime,
    end: datetime,
    gap_factor: float = 2.0,
) -> Uptime:
    """Uptime over ``[start, end)`` from sorted ``beats`` and maintenance ``windows``."""
    return summarize(apply_maintenance(segments(beats, start, end, gap_factor), windows))


@dataclass(frozen=True)
class Bar:
    start: datetime
    end: datetime
    kind: str
    uptime: Uptime


def timeline(
    beats: Sequence[Beat],
    windows: Iterable[tuple[datetime, datetime]],
    start: datetime,
    end: datetime,
    bars: int,
    gap_factor: float = 2.0,
) -> list[Bar]:
    """``bars`` equal slices of ``[start, end)``, each with the worst kind of time it holds."""
    parts = apply_maintenance(segments(beats, start, end, gap_factor), list(windows))
    width = (end - start) / bars
    out = []
    for i in range(bars):
        b_start, b_end = start + width * i, start + width * (i + 1)
        inside = [
            Segment(max(p.start, b_start), min(p.end, b_end), p.kind)
            for p in parts
            if p.end > b_start and p.start < b_end
        ]
        kinds = {p.kind for p in inside if p.seconds > 0}
        kind = next((k for k in BAR_PRIORITY if k in kinds), UNKNOWN)
        out.append(Bar(b_start, b_end, kind, summarize(inside)))
    return out
