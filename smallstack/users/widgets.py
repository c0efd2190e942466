"""The Users card: active accounts, new ones and recent sign-ins, linked to the list of users."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.urls import NoReverseMatch, reverse

from smallstack.displays import DashboardWidget
from smallstack.users import conf
from smallstack.users.figures import acount_users

ICON_USERS = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<path d="M17 21v-2a4 4 0 0 0-4-4H5a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>'
    '<path d="M23 21v-2a4 4 0 0 0-3-3.87"/><path d="M16 3.13a4 4 0 0 1 0 7.75"/></svg>'
)


def user_list_link(model: type[Model]) -> tuple[str, dict[str, str]] | None:
    """Where a list of ``model``'s accounts is: the Explorer's, else the admin's, else nowhere.

    Looked up each time the card is drawn, so a registration the project makes itself counts;
    a candidate whose URL does not reverse (not in the URLconf) is passed over.
    """
    candidates: list[tuple[str, dict[str, str]]] = []
    if apps.is_installed("explorer"):
        from explorer.registry import explorer

        info = explorer.get_model_info(model)
        if info is not None:
            candidates.append(("explorer:list", info.url_kwargs))
    opts = model._meta
    candidates.append((f"admin:{opts.app_label}_{opts.model_name}_changelist", {}))
    for name, kwargs in candidates:
        try:
            reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            continue
        return name, kwargs
    return None


class UsersWidget(DashboardWidget):
    """Active accounts; new ones and recent sign-ins; the counts and staff in ``extra``."""

    key = "smallstack.users"
    title = "Users"
    icon = ICON_USERS
    order = 30
    group = "Accounts"
    cache_ttl = 30
    refresh_interval = 60

    @property
    def url_name(self) -> str | None:  # type: ignore[override]
        link = user_list_link(get_user_model())
        return link[0] if link else None

    @property
    def url_kwargs(self) -> dict[str, Any] | None:  # type: ignore[override]
        link = user_list_link(get_user_model())
        return link[1] if link else None

    async def get_data(self, model_class: type[Model] | None = None) -> dict[str, Any]:
        figures = await acount_users(
            model_class or get_user_model(),
            new_days=conf.get("NEW_DAYS"),
            signed_in_hours=conf.get("SIGNED_IN_HOURS"),
        )
        total = figures.total
        parts = []
        if figures.new is not None:
            parts.append(f"{figures.new:,} new ({figures.new_days} d)")
        if figures.signed_in is not None:
            parts.append(f"{figures.signed_in:,} signed in ({figures.signed_in_hours} h)")
        return {
            "headline": f"{figures.active:,} active",
            "detail": " · ".join(parts) or f"{total:,} account{'' if total == 1 else 's'} in all",
            "extra": figures.as_json(),
        }
