"""The Backups card: how old the newest good backup is, how many are stored, and failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Sum
from django.utils import timezone

from smallstack.backups import conf, humanize
from smallstack.backups.models import BackupRecord
from smallstack.displays import DashboardWidget

ICON_ARCHIVE = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<rect x="2" y="3" width="20" height="5" rx="1"/><path d="M4 8v11a2 2 0 0 0 2 2h12a2 2 0 0 '
    '0 2-2V8"/><path d="M10 12h4"/></svg>'
)


def card_data(now: Any = None) -> dict[str, Any]:
    """The card's data from the records: unknown, error, warning or ok, in that precedence."""
    now = now or timezone.now()
    max_age = float(conf.get("MAX_AGE_HOURS"))
    latest = BackupRecord.objects.order_by("-created_at", "-id").first()
    good = BackupRecord.objects.filter(status=BackupRecord.OK)
    totals = good.aggregate(count=Count("id"), size=Sum("size"))
    count, total = totals["count"], totals["size"] or 0
    newest = good.order_by("-created_at", "-id").first()
    extra: dict[str, Any] = {
        "stored": count,
        "total_bytes": total,
        "max_age_hours": max_age,
        "last_run_at": latest.created_at.isoformat() if latest else None,
        "last_run_status": latest.status if latest else None,
        "last_error": latest.error if latest and latest.status == BackupRecord.ERROR else None,
        "newest_good_at": newest.created_at.isoformat() if newest else None,
    }
    if latest is None:
        return {
            "headline": "No backups yet",
            "detail": "run manage.py backup",
            "status": "unknown",
            "extra": extra,
        }
    detail = f"{count} stored · {humanize.size(total)}"
    if latest.status == BackupRecord.ERROR:
        return {
            "headline": f"Last backup failed {humanize.age(now - latest.created_at)}",
            "detail": detail,
            "status": "error",
            "extra": extra,
        }
    assert newest is not None  # the latest run is a good one
    status = "warning" if now - newest.created_at > timedelta(hours=max_age) else "ok"
    return {
        "headline": f"Last backup {humanize.age(now - newest.created_at)}",
        "detail": detail,
        "status": status,
        "extra": extra,
    }


class BackupsWidget(DashboardWidget):
    """Backups at a glance; links to the backups page."""

    key = "smallstack.backups"
    title = "Backups"
    icon = ICON_ARCHIVE
    order = 40
    group = "Monitoring"
    url_name = "backups:page"
    refresh_interval = 60
    cache_ttl = 30  # a query and a directory listing: not once per monitor poll

    def get_data(self) -> dict[str, Any]:
        return card_data()
