"""The Activity card: requests served, with the last 24 hours as a sparkline per hour."""

from __future__ import annotations

from typing import Any

from smallstack.activity import stats
from smallstack.displays import SparklineWidget

ICON_BARS = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" aria-hidden="true">'
    '<line x1="4" y1="20" x2="4" y2="12"/><line x1="10" y1="20" x2="10" y2="6"/>'
    '<line x1="16" y1="20" x2="16" y2="14"/><line x1="22" y1="20" x2="22" y2="9"/></svg>'
)


class ActivityWidget(SparklineWidget):
    """How much the service is asked for: all time, the last 24 hours, and hour by hour.

    ``extra`` carries the 24-hour totals by status class, the 5xx rate and the p95 duration.
    The status turns to warning when more than 5 % of the last day's answers were 5xx.
    """

    key = "smallstack.activity"
    title = "Activity"
    icon = ICON_BARS
    order = 20
    group = "Monitoring"
    url_name = "activity:page"
    # A handful of indexed COUNTs and a full COUNT(*): cached, so monitors polling every
    # second cost one evaluation per 30 s.
    cache_ttl = 30
    refresh_interval = 60

    async def get_data(self) -> dict[str, Any]:
        return await stats.card()
