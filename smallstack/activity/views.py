"""The activity page: what the service answered over a time window (staff only)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from smallstack.access import staff_required
from smallstack.activity import stats
from smallstack.activity.writer import writer

CHART_WIDTH, CHART_HEIGHT = 720, 120


def chart(series: list[int], labels: list[str]) -> dict[str, Any]:
    """Bars for an inline SVG: x, y, width, height, label and value of each bucket."""
    peak = max(series, default=0) or 1
    width = CHART_WIDTH / max(1, len(series))
    bars = []
    for i, (value, label) in enumerate(zip(series, labels, strict=True)):
        height = CHART_HEIGHT * value / peak
        bars.append(
            {
                "x": round(i * width + 1, 1),
                "y": round(CHART_HEIGHT - height, 1),
                "width": round(max(1.0, width - 2), 1),
                "height": round(height, 1),
                "label": label,
                "value": value,
            }
        )
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "peak": peak}


@staff_required
async def activity(request: HttpRequest) -> HttpResponse:
    """Requests over ``?window=`` (1h, 24h or 7d): per bucket, top and slowest paths, errors."""
    name = request.GET.get("window", stats.DEFAULT_WINDOW)
    window = stats.WINDOWS.get(name)
    if window is None:
        return HttpResponseBadRequest(
            f"Unknown window {name!r}: use one of {', '.join(stats.WINDOWS)}.",
            content_type="text/plain; charset=utf-8",
        )
    now = timezone.now()
    since = now - window.span
    overview = await stats.overview(window, now)
    context = {
        "title": "Activity",
        "window": window,
        "windows": list(stats.WINDOWS),
        "overview": overview,
        "error_percent": f"{overview['error_rate'] * 100:.2f}",
        "chart": chart(overview["series"], overview["series_labels"]),
        "top_paths": await stats.top_paths(since),
        "slowest_paths": await stats.slowest_paths(since),
        "recent_errors": await stats.recent_errors(since),
        "dropped": await stats.dropped(since),
        "process": {
            "pending": writer.pending(),
            "dropped": writer.dropped,
            "failed": writer.failed,
        },
    }
    return TemplateResponse(request, "activity/activity.html", context)
