"""The dashboard pages: async views over the widget registry.

A page waits at most ``SMALLSTACK_DASHBOARD["RENDER_BUDGET"]`` seconds for its widgets. Cards not
finished by then render as placeholders; their evaluations carry on, and the page's websocket
asks for them (joining those same evaluations), so they fill in as soon as each finishes or
times out. ``?wait=1`` waits for every widget instead (the page's ``<noscript>`` link).

Each page follows the signed-in user's layout of it (:mod:`smallstack.layouts`): cards in their
order, hidden cards neither evaluated nor rendered. The context carries ``layout`` (the
normalised layout as a dict), ``layout_url`` (the API endpoint that saves it) and
``hidden_widgets`` (``{"key", "title"}`` of each hidden card, in default order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from smallstack import conf, layouts
from smallstack.access import staff_required
from smallstack.cards import Placeholder
from smallstack.contract import WidgetContext
from smallstack.engine import engine
from smallstack.live import SOCKET_PATH
from smallstack.registry import Registration, UnknownScope, registry


async def evaluate_within(
    registrations: list[Registration], budget: float | None
) -> Sequence[WidgetContext | Placeholder]:
    """Evaluate concurrently; after ``budget`` seconds return placeholders for the rest.

    ``None`` waits for all. Unfinished evaluations are not cancelled: they run to completion
    (filling the cache) and later requests for the same widgets join them.
    """
    if budget is None or not registrations:
        return await engine.evaluate(registrations)
    batch = await engine.start(registrations)
    await asyncio.wait(batch.contexts, timeout=max(0.0, budget))
    return [
        future.result() if future.done() else Placeholder(registration)
        for registration, future in zip(registrations, batch.contexts, strict=True)
    ]


async def _render(request: HttpRequest, title: str, scope: dict[str, str]) -> HttpResponse:
    page = layouts.scope_for(group=scope.get("group"), app=scope.get("app"))
    try:
        registrations = page.registrations()
    except UnknownScope as exc:
        raise Http404(str(exc)) from None
    # The user's layout: their order, and hidden cards left out before evaluation.
    layout, visible, hidden = await layouts.aarranged(request.user, page.name, registrations)
    wait = request.GET.get("wait") == "1"
    widgets = await evaluate_within(visible, None if wait else float(conf.get("RENDER_BUDGET")))
    context = {
        "title": title,
        "scope": scope,
        "widgets": widgets,
        "layout": layout.as_dict(),
        "layout_url": layouts.layout_url(),
        "hidden_widgets": layouts.hidden_cards(hidden),
        "groups": registry.groups(),
        "live": {
            "socket": SOCKET_PATH,
            "scope": scope,
            "pending": [w.key for w in widgets if isinstance(w, Placeholder)],
        },
    }
    return TemplateResponse(request, "smallstack/dashboard.html", context)


@staff_required
async def index(request: HttpRequest) -> HttpResponse:
    """The main dashboard: every widget with ``on_dashboard=True``."""
    return await _render(request, "Dashboard", {})


@staff_required
async def group(request: HttpRequest, group: str) -> HttpResponse:
    """All widgets of one group, including those hidden from the main dashboard."""
    return await _render(request, group, {"group": group})


@staff_required
async def app(request: HttpRequest, app_label: str) -> HttpResponse:
    """All widgets of one Django app, including those hidden from the main dashboard."""
    return await _render(request, app_label, {"app": app_label})
