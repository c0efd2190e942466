"""First-party widgets."""

from __future__ import annotations

import platform
import time
from typing import Any

import django
from django.contrib.auth import get_user_model
from django.db import connection

from smallstack.displays import DashboardWidget

_ICON_PULSE = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<polyline points="22 12 18 12 15 21 9 3 6 12 2 12"/></svg>'
)
_ICON_USERS = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>'
    '<path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/></svg>'
)


class StatusWidget(DashboardWidget):
    """Is the database answering, and how fast."""

    key = "smallstack.status"
    title = "Status"
    icon = _ICON_PULSE
    order = 10
    group = "Monitoring"
    timeout = 2
    refresh_interval = 15

    def get_data(self) -> dict[str, Any]:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        db_ms = (time.perf_counter() - started) * 1000
        status = "ok" if db_ms < 250 else "warning"
        return {
            "headline": "Operational" if status == "ok" else "Slow database",
            "detail": f"{connection.vendor} answered in {db_ms:.1f} ms",
            "status": status,
            "extra": {
                "database_ms": round(db_ms, 3),
                "python": platform.python_version(),
                "django": django.get_version(),
            },
        }


class UsersWidget(DashboardWidget):
    """Accounts, staff and recent sign-ins, through Django's async ORM."""

    key = "smallstack.users"
    title = "Users"
    icon = _ICON_USERS
    order = 30
    group = "Accounts"
    url_name = "admin:auth_user_changelist"
    cache_ttl = 10
    refresh_interval = 60

    async def get_data(self) -> dict[str, Any]:
        from datetime import timedelta

        from django.utils import timezone

        users = get_user_model().objects
        total = await users.acount()
        staff = await users.filter(is_staff=True).acount()
        recent = await users.filter(last_login__gte=timezone.now() - timedelta(days=1)).acount()
        return {
            "headline": f"{total:,} user{'s' if total != 1 else ''}",
            "detail": f"{staff} staff · {recent} signed in within 24 h",
            "extra": {"total": total, "staff": staff, "active_24h": recent},
        }


def builtin_widgets() -> list[DashboardWidget]:
    return [StatusWidget(), UsersWidget()]
