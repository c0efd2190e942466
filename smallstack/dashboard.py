"""The dashboard's public API: register widgets, evaluate them, feed them to views.

>>> from smallstack import dashboard
>>> dashboard.register(ServerHealthWidget())          # in AppConfig.ready()
>>> contexts = await dashboard.aget_widget_contexts(group="Monitoring")
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Model

from smallstack.contract import WidgetContext
from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from smallstack.live import arefresh, refresh
from smallstack.registry import Registration, registry

__all__ = [
    "DashboardWidgetsMixin",
    "WidgetContext",
    "aget_widget_contexts",
    "arefresh",
    "get_widget_contexts",
    "refresh",
    "register",
    "registry",
    "unregister",
]


def register(widget: DashboardWidget, **options: Any) -> Registration:
    """Register a standalone widget (call it from ``AppConfig.ready()``).

    Options (``model``, ``group``, ``app_label``, ``default_url_name``…) are for integrations
    such as the Explorer; a standalone widget needs none.
    """
    return registry.register(widget, **options)


def unregister(key: str) -> None:
    """Remove the widget registered under ``key``."""
    registry.unregister(key)


async def aget_widget_contexts(
    group: str | None = None,
    app: str | None = None,
    model: type[Model] | str | None = None,
    dashboard_only: bool = False,
    *,
    with_extras: bool = False,
) -> list[WidgetContext]:
    """Evaluate the matching widgets concurrently; contexts come back sorted by ``order``."""
    selected = registry.select(group=group, app=app, model=model, dashboard_only=dashboard_only)
    return await engine.evaluate(selected, with_extras=with_extras)


def get_widget_contexts(
    group: str | None = None,
    app: str | None = None,
    model: type[Model] | str | None = None,
    dashboard_only: bool = False,
    *,
    with_extras: bool = False,
) -> list[WidgetContext]:
    """Sync twin of :func:`aget_widget_contexts` (the widgets still run concurrently)."""
    return async_to_sync(aget_widget_contexts)(
        group, app, model, dashboard_only, with_extras=with_extras
    )


class DashboardWidgetsMixin:
    """Adds ``widgets`` (evaluated :class:`WidgetContext` objects) to a view's context.

    Scope it with ``widget_group``, ``widget_app`` or ``widget_model``. An unscoped view shows
    the main dashboard's widgets (``on_dashboard=True``); a scoped one shows every widget in
    scope. Set ``widget_dashboard_only`` to force either.
    """

    widget_group: str | None = None
    widget_app: str | None = None
    widget_model: type[Model] | str | None = None
    widget_dashboard_only: bool | None = None

    def get_widget_filters(self) -> dict[str, Any]:
        scoped = bool(self.widget_group or self.widget_app or self.widget_model)
        dashboard_only = self.widget_dashboard_only
        return {
            "group": self.widget_group,
            "app": self.widget_app,
            "model": self.widget_model,
            "dashboard_only": (not scoped) if dashboard_only is None else dashboard_only,
        }

    def get_widgets(self) -> list[WidgetContext]:
        return get_widget_contexts(**self.get_widget_filters())

    async def aget_widgets(self) -> list[WidgetContext]:
        return await aget_widget_contexts(**self.get_widget_filters())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        if "widgets" not in context:
            context["widgets"] = self.get_widgets()
        return context
