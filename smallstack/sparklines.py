"""The sparkline chart: a series of numbers drawn as an inline SVG, with a text alternative.

No JavaScript and no chart library: the card's template calls ``{% sparkline %}``
(:mod:`smallstack.templatetags.smallstack_cards`), which returns the markup built here, so the
page and the pushed card carry the same chart. Every text in it is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

#: The drawing's own coordinates; CSS sizes the chart.
WIDTH, HEIGHT, PAD = 120.0, 36.0, 3.0


def number(value: float) -> str:
    """A value as the text alternative says it: ``1,234``, ``0.25``, ``-3``."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def describe(series: Sequence[float], labels: Sequence[str] | None = None) -> str:
    """One sentence for screen readers and the tooltip: how many points, the range, the latest."""
    if not series:
        return "no data"

    def point(index: int) -> str:
        label = f" ({labels[index]})" if labels else ""
        return f"{number(series[index])}{label}"

    if len(series) == 1:
        return f"1 point: {point(0)}"
    low = min(range(len(series)), key=series.__getitem__)
    high = max(range(len(series)), key=series.__getitem__)
    if series[low] == series[high]:
        return f"{len(series)} points, all {number(series[0])}"
    return (
        f"{len(series)} points from {point(low)} to {point(high)}, latest {point(len(series) - 1)}"
    )


def coordinates(series: Sequence[float]) -> list[tuple[float, float]]:
    """Each value's (x, y) in the drawing: oldest on the left, the highest value at the top.

    A single value sits at the right edge; a constant series (one value or many) on the middle
    line; negative values are drawn below zero like any others.
    """
    if not series:
        return []
    low, high = min(series), max(series)
    span = high - low

    def y(value: float) -> float:
        if span == 0:
            return HEIGHT / 2
        return PAD + (high - value) / span * (HEIGHT - 2 * PAD)

    if len(series) == 1:
        return [(WIDTH - PAD, y(series[0]))]
    step = (WIDTH - 2 * PAD) / (len(series) - 1)
    return [(PAD + i * step, y(v)) for i, v in enumerate(series)]


def zero_line(series: Sequence[float]) -> float | None:
    """The y of zero when the series crosses it (some values negative, some positive)."""
    if not series or not (min(series) < 0 < max(series)):
        return None
    low, high = min(series), max(series)
    return PAD + high / (high - low) * (HEIGHT - 2 * PAD)


def _at(value: float) -> str:
    """A coordinate, to two decimals and without trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def render(
    series: Sequence[float], labels: Sequence[str] | None = None, name: str = ""
) -> SafeString:
    """The chart's ``<svg>``: ``role="img"`` named by ``name`` and :func:`describe`."""
    text = f"{name}: {describe(series, labels)}" if name else describe(series, labels)
    points = coordinates(series)
    parts: list[SafeString] = []
    if not points:
        parts.append(
            format_html(
                '<line class="spark-empty" x1="{}" y1="{}" x2="{}" y2="{}"/>',
                _at(PAD),
                _at(HEIGHT / 2),
                _at(WIDTH - PAD),
                _at(HEIGHT / 2),
            )
        )
    else:
        zero = zero_line(series)
        if zero is not None:
            parts.append(
                format_html(
                    '<line class="spark-zero" x1="{}" y1="{}" x2="{}" y2="{}"/>',
                    _at(PAD),
                    _at(zero),
                    _at(WIDTH - PAD),
                    _at(zero),
                )
            )
        if len(points) > 1:
            parts.append(
                format_html(
                    '<polyline class="spark-line" points="{}"/>',
                    " ".join(f"{_at(x)},{_at(y)}" for x, y in points),
                )
            )
        x, y = points[-1]
        parts.append(
            format_html('<circle class="spark-dot" cx="{}" cy="{}" r="2"/>', _at(x), _at(y))
        )
    return format_html(
        '<svg class="sparkline" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>{}</svg>",
        _at(WIDTH),
        _at(HEIGHT),
        text,
        text,
        format_html_join("", "{}", ((part,) for part in parts)),
    )
