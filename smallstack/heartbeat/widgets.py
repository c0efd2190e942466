"""The Status card: the checks run live, uptime read from heartbeats."""

from __future__ import annotations

from typing import Any

from smallstack.displays import DashboardWidget
from smallstack.heartbeat import conf, probes, service

ICON_PULSE = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<polyline points="22 12 18 12 15 21 9 3 6 12 2 12"/></svg>'
)


def headline(
    results: list[probes.CheckResult], maintenance: bool, has_data: bool
) -> tuple[str, str]:
    """(headline, status) for the card: maintenance, then failures, then no data, then fine."""
    if maintenance:
        return "Under maintenance", "warning"
    failing = probes.worst(results)
    names = ", ".join(r.name for r in failing)
    if failing and failing[0].status == "error":
        return f"Down: {names}", "error"
    if failing:
        return f"Degraded: {names}", "warning"
    if not has_data:
        return "No data", "unknown"
    return "All systems operational", "ok"


class StatusWidget(DashboardWidget):
    """Is the service healthy now (the checks, run live), and has it been (heartbeats)."""

    key = "smallstack.status"
    title = "Status"
    icon = ICON_PULSE
    order = 10
    group = "Monitoring"
    url_name = "heartbeat:status"
    refresh_interval = 5
    # The checks run at most once per 5 s however many monitors poll (once across the fleet
    # with a shared cache); an open dashboard still sees a failure within seconds.
    cache_ttl = 5

    @property
    def timeout(self) -> float:  # type: ignore[override]
        """Room for the slowest check's own timeout, and reading the heartbeats after it."""
        deadlines = [c.deadline for c in probes.registered_checks()]
        return max(deadlines, default=float(conf.get("CHECK_TIMEOUT"))) + 1.5

    async def get_data(self) -> dict[str, Any]:
        results = await probes.run_checks()
        checks = {r.name: r.as_json() for r in results}
        try:
            summary = await service.asummary(spans=("24 h",))
        except Exception as exc:  # the database may be what is failing
            text, status = headline(results, maintenance=False, has_data=True)
            return {
                "headline": text,
                "detail": f"uptime unavailable ({type(exc).__name__})",
                "status": status if status != "ok" else "warning",
                "extra": {"checks": checks, "uptime_24h": None},
            }
        day = summary.uptimes["24 h"]
        text, status = headline(results, summary.maintenance_now, summary.latest is not None)
        if summary.latest is None:
            detail = "no heartbeat recorded yet"
        elif day.ratio is None:
            detail = "no uptime data in 24 h"
        else:
            detail = f"{day.percent} uptime (24 h)"
        return {
            "headline": text,
            "detail": detail,
            "status": status,
            "extra": {
                "checks": checks,
                "uptime_24h": service.uptime_json(day),
                "last_heartbeat": summary.latest.created_at.isoformat() if summary.latest else None,
            },
        }
