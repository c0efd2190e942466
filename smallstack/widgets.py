"""First-party widgets not yet in a feature app of their own (Status is in ``heartbeat/``)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from smallstack.displays import DashboardWidget

_ICON_USERS = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>'
    '<path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/></svg>'
)


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
    return [UsersWidget()]
