"""The staff status page and the public one."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import caches
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from smallstack.access import staff_required
from smallstack.heartbeat import conf, service, uptime

CHART_WIDTH, CHART_HEIGHT, BARS = 960, 40, 96
PUBLIC_CACHE_KEY, PUBLIC_CACHE_SECONDS = "heartbeat:public-status", 30

logger = logging.getLogger("smallstack.heartbeat")

#: What the public page says for each overall state (no check names, no messages).
PUBLIC_STATES = {
    "ok": ("All systems operational", "ok"),
    "warning": ("Degraded performance", "warning"),
    "error": ("Service disruption", "error"),
    "maintenance": ("Under maintenance", "warning"),
    None: ("Status unknown", "unknown"),
}


def chart(bars: list[uptime.Bar]) -> dict[str, Any]:
    """Rectangles for the inline SVG timeline: one per bar, coloured by its kind."""
    width = CHART_WIDTH / max(1, len(bars))
    rects = [
        {
            "x": round(i * width, 2),
            "width": round(max(1.0, width - 2), 2),
            "kind": bar.kind,
            "start": bar.start,
            "end": bar.end,
        }
        for i, bar in enumerate(bars)
    ]
    counts = {kind: sum(1 for b in bars if b.kind == kind) for kind in uptime.BAR_PRIORITY}
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": rects, "counts": counts}


def current_state(summary: service.Summary) -> str | None:
    """The overall state now: the latest beat's, if it still vouches for now; else None."""
    if summary.maintenance_now:
        return "maintenance"
    if summary.latest is None or not summary.latest_is_current:
        return None
    return summary.latest.status


@staff_required
async def status_page(request: HttpRequest) -> HttpResponse:
    """Each check's latest result, uptime over 24 h / 7 d / 30 d, the day's timeline, windows."""
    summary = await service.asummary()
    latest = summary.latest
    checks = [
        {"name": name, **result} for name, result in (latest.checks if latest else {}).items()
    ]
    context = {
        "title": "Status",
        "summary": summary,
        "state": current_state(summary),
        "checks": checks,
        "uptimes": [
            (name, value, service.uptime_json(value)) for name, value in summary.uptimes.items()
        ],
        "chart": chart(await service.off_loop(summary.timeline, 24, BARS)),
        "windows": sorted(summary.windows, key=lambda w: w.start, reverse=True),
        "gap_factor": conf.get("GAP_FACTOR"),
    }
    return TemplateResponse(request, "heartbeat/status.html", context)


async def public_status(request: HttpRequest) -> HttpResponse:
    """The public page: the overall state and uptime, nothing else. 404 when switched off."""
    if not conf.get("PUBLIC_PAGE"):
        raise Http404("The public status page is switched off.")
    cache = caches["default"]
    cache_up = True
    try:
        context = await cache.aget(PUBLIC_CACHE_KEY)
    except Exception as exc:  # a cache that is down (Redis restarting) costs the reuse only
        logger.warning("Public status page: cache unavailable (%s)", type(exc).__name__)
        context, cache_up = None, False
    if context is None:
        summary = await service.asummary()
        headline, status = PUBLIC_STATES.get(current_state(summary), PUBLIC_STATES[None])
        context = {
            "headline": headline,
            "status": status,
            "uptimes": [(name, value.percent) for name, value in summary.uptimes.items()],
            "checked_at": summary.latest.created_at
            if summary.latest and summary.latest_is_current
            else None,
        }
        if cache_up:
            try:
                await cache.aset(PUBLIC_CACHE_KEY, context, PUBLIC_CACHE_SECONDS)
            except Exception as exc:
                logger.warning("Public status page: cache unavailable (%s)", type(exc).__name__)
    return TemplateResponse(request, "heartbeat/public.html", context)
