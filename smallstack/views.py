"""The dashboard pages: async views over the widget registry."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from smallstack import dashboard
from smallstack.access import staff_required


async def _render(request: HttpRequest, title: str, scope: dict, **filters) -> HttpResponse:
    widgets = await dashboard.aget_widget_contexts(**filters)
    context = {
        "title": title,
        "scope": scope,
        "widgets": widgets,
        "groups": dashboard.registry.groups(),
    }
    return TemplateResponse(request, "smallstack/dashboard.html", context)


@staff_required
async def index(request: HttpRequest) -> HttpResponse:
    """The main dashboard: every widget with ``on_dashboard=True``."""
    return await _render(request, "Dashboard", {}, dashboard_only=True)


@staff_required
async def group(request: HttpRequest, group: str) -> HttpResponse:
    """All widgets of one group, including those hidden from the main dashboard."""
    if group not in dashboard.registry.groups():
        raise Http404(f"No dashboard group named {group!r}")
    return await _render(request, group, {"group": group}, group=group)


@staff_required
async def app(request: HttpRequest, app_label: str) -> HttpResponse:
    """All widgets of one Django app, including those hidden from the main dashboard."""
    if app_label not in dashboard.registry.app_labels():
        raise Http404(f"No dashboard widgets for app {app_label!r}")
    return await _render(request, app_label, {"app": app_label}, app=app_label)
