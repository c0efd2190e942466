"""The uptime maths (smallstack/heartbeat/uptime.py) on constructed beats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smallstack.heartbeat.uptime import (
    DEGRADED,
    DOWN,
    MAINTENANCE,
    UNKNOWN,
    UP,
    Beat,
    Segment,
    apply_maintenance,
    segments,
    timeline,
    uptime,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def beats(statuses: str, start: float = 0, every: float = 1) -> list[Beat]:
    """A beat per ``every`` minutes: o ok, w warning, e error, m maintenance, . none."""
    names = {"o": "ok", "w": "warning", "e": "error", "m": "maintenance"}
    return [
        Beat(at(start + i * every), names[c], every * 60)
        for i, c in enumerate(statuses)
        if c != "."
    ]


def test_all_ok_is_100_percent():
    result = uptime(beats("o" * 60), [], at(0), at(60))
    assert result.ratio == 1.0 and result.percent == "100.00 %"
    assert result.up == 3600 and result.down == result.unknown == result.maintenance == 0


def test_an_error_beat_counts_until_the_next_beat():
    result = uptime(beats("o" * 30 + "ee" + "o" * 28), [], at(0), at(60))
    assert result.down == 120 and result.up == 3480
    assert result.ratio == pytest.approx(58 / 60)
    assert result.percent == "96.67 %"


def test_a_warning_is_up_but_degraded():
    result = uptime(beats("o" * 50 + "w" * 10), [], at(0), at(60))
    assert result.ratio == 1.0 and result.degraded == 600


def test_a_gap_up_to_twice_the_interval_is_covered_by_the_beat_before():
    # One missing beat: the previous beat vouches for 2 intervals, so nothing is unknown.
    result = uptime(beats("o" * 30 + "." + "o" * 29), [], at(0), at(60))
    assert result.unknown == 0 and result.ratio == 1.0


def test_a_longer_gap_is_unknown_excluded_and_reported():
    # Beats stop after minute 19 and resume at 30: the beat at 19 covers 19-21, 21-30 is unknown.
    result = uptime(beats("o" * 20 + "." * 10 + "e" * 30), [], at(0), at(60))
    assert result.unknown == 9 * 60
    assert result.up == 21 * 60 and result.down == 30 * 60
    assert result.ratio == pytest.approx(21 / 51)  # unknown time is not in the denominator


def test_the_gap_rule_reads_each_beats_own_interval():
    # A beat declaring a 10-minute interval vouches for 20 minutes.
    result = uptime([Beat(at(0), "ok", 600), Beat(at(15), "ok", 600)], [], at(0), at(30))
    assert result.unknown == 0 and result.up == 1800
    sparse = uptime([Beat(at(0), "ok", 60), Beat(at(15), "ok", 60)], [], at(0), at(30))
    assert sparse.unknown == (13 + 13) * 60  # 2 min covered after each beat, then unknown


def test_no_beats_is_no_figure():
    result = uptime([], [], at(0), at(60))
    assert result.ratio is None and result.percent == "-" and result.unknown == 3600


def test_time_before_the_first_beat_is_unknown_and_a_beat_before_the_span_counts():
    assert uptime(beats("o" * 30, start=30), [], at(0), at(60)).unknown == 30 * 60
    before = [Beat(at(-1), "error", 60), *beats("o" * 59, start=1)]
    result = uptime(before, [], at(0), at(60))
    assert result.down == 60 and result.unknown == 0  # the beat at -1 min covers minute 0


def test_maintenance_windows_are_excluded_whatever_the_beats_said():
    # Down for 10 minutes, but inside a planned window: not downtime.
    result = uptime(beats("o" * 20 + "e" * 10 + "o" * 30), [(at(20), at(30))], at(0), at(60))
    assert result.down == 0 and result.maintenance == 600 and result.ratio == 1.0
    # The window also swallows unknown time (the service was meant to be off).
    gap = uptime(beats("o" * 20 + "." * 10 + "o" * 30), [(at(20), at(30))], at(0), at(60))
    assert gap.unknown == 0 and gap.maintenance == 600


def test_maintenance_beats_and_partial_windows():
    result = uptime(beats("o" * 50 + "m" * 10), [], at(0), at(60))
    assert result.maintenance == 600 and result.ratio == 1.0
    half = uptime(beats("o" * 30 + "e" * 30), [(at(45), at(90))], at(0), at(60))
    assert half.down == 15 * 60 and half.maintenance == 15 * 60
    assert half.ratio == pytest.approx(30 / 45)


def test_segments_merge_and_cover_the_span_exactly():
    parts = segments(beats("oooeeoo"), at(0), at(7))
    assert [(p.kind, p.seconds) for p in parts] == [(UP, 180), (DOWN, 120), (UP, 120)]
    assert parts[0].start == at(0) and parts[-1].end == at(7)


def test_apply_maintenance_splits_segments():
    parts = apply_maintenance([Segment(at(0), at(10), UP)], [(at(2), at(4)), (at(8), at(20))])
    assert [(p.kind, p.seconds) for p in parts] == [
        (UP, 120),
        (MAINTENANCE, 120),
        (UP, 240),
        (MAINTENANCE, 120),
    ]


def test_timeline_bars_take_the_worst_kind_they_hold():
    bars = timeline(beats("o" * 14 + "e" + "w" * 15 + "." * 30), [], at(0), at(60), 4)
    # The last beat (29 min) vouches until 31 min: the third bar holds 1 min degraded.
    assert [b.kind for b in bars] == [DOWN, DEGRADED, DEGRADED, UNKNOWN]
    assert bars[0].uptime.down == 60
    assert bars[2].uptime.degraded == 60 and bars[2].uptime.unknown == 14 * 60


def test_rounding_never_shows_100_for_less():
    result = uptime(beats("o" * 99999 + "e", every=1), [], at(0), at(100000))
    assert result.ratio < 1 and result.percent == "99.99 %"
