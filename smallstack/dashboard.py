"""The dashboard's public API: register widgets, evaluate them, feed them to views.

>>> from smallstack import dashboard
>>> dashboard.register(ServerHealthWidget())          # in AppConfig.ready()
>>> contexts = await dashboard.aget_widget_contexts(group="Monitoring")
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Model

from smallstack import layouts
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

    ``use_layout = True`` follows the signed-in user's layout of a dashboard page, as the
    dashboard's own pages do: ``widgets`` in the user's order, without the hidden ones (which
    are not evaluated), and the context also gets ``layout``, ``layout_url`` and
    ``hidden_widgets``. The page is ``layout_scope`` if set, else ``"group:<widget_group>"``,
    else ``"app:<widget_app>"``, else ``"dashboard"``.
    """

    widget_group: str | None = None
    widget_app: str | None = None
    widget_model: type[Model] | str | None = None
    widget_dashboard_only: bool | None = None
    use_layout: bool = False
    layout_scope: str | None = None
    #: Set by ``get_widgets()``/``aget_widgets()`` when ``use_layout`` is on.
    widget_layout: layouts.Layout | None = None
    hidden_widgets: list[dict[str, str]] | None = None

    def get_widget_filters(self) -> dict[str, Any]:
        scoped = bool(self.widget_group or self.widget_app or self.widget_model)
        dashboard_only = self.widget_dashboard_only
        return {
            "group": self.widget_group,
            "app": self.widget_app,
            "model": self.widget_model,
            "dashboard_only": (not scoped) if dashboard_only is None else dashboard_only,
        }

    def get_layout_scope(self) -> str:
        """The name of the page whose layout ``use_layout`` follows."""
        if self.layout_scope is not None:
            return self.layout_scope
        return layouts.scope_for(self.widget_group, self.widget_app).name

    def get_widgets(self) -> list[WidgetContext]:
        if not self.use_layout:
            return get_widget_contexts(**self.get_widget_filters())
        selected = registry.select(**self.get_widget_filters())
        user = self.request.user  # type: ignore[attr-defined]
        arranged = layouts.arranged(user, self.get_layout_scope(), selected)
        return async_to_sync(engine.evaluate)(self._keep(arranged))

    async def aget_widgets(self) -> list[WidgetContext]:
        if not self.use_layout:
            return await aget_widget_contexts(**self.get_widget_filters())
        selected = registry.select(**self.get_widget_filters())
        user = await self.request.auser()  # type: ignore[attr-defined]
        arranged = await layouts.aarranged(user, self.get_layout_scope(), selected)
        return await engine.evaluate(self._keep(arranged))

    def _keep(self, arranged: layouts.Arranged) -> list[Registration]:
        """Keep the layout for the context; the visible registrations to evaluate."""
        layout, visible, hidden = arranged
        self.widget_layout = layout
        self.hidden_widgets = layouts.hidden_cards(hidden)
        return visible

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)  # type: ignore[misc]
        if "widgets" not in context:
            context["widgets"] = self.get_widgets()
        if self.use_layout and self.widget_layout is not None:
            context.setdefault("layout", self.widget_layout.as_dict())
            context.setdefault("layout_url", layouts.layout_url())
            context.setdefault("hidden_widgets", self.hidden_widgets or [])
        return context
