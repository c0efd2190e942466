"""Rendering cards, so that a broken widget template costs only its own card.

A widget picks its template with ``widget_type`` or ``template_name``; a template that exists
(the registry checks that much) can still fail while rendering: a filter that raises, a missing
``{% include %}``, a property of the widget that raises. :func:`render_card` then logs the traceback
with the widget's key and renders the default card in error instead ("template … failed: …"):
the page, its other cards and the live push carry on.

A card's width is its ``span`` template variable: the user's layout for the page may set it
(:func:`effective_span`), otherwise the widget's own ``span``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from django.template import Context, Engine
from django.template.loader import render_to_string

from smallstack.contract import State, WidgetContext, short_error
from smallstack.registry import Registration

logger = logging.getLogger("smallstack.dashboard")

#: The card every widget gets unless it chooses another template.
DEFAULT_TEMPLATE = "smallstack/widgets/card.html"


@dataclasses.dataclass
class Placeholder:
    """A card still being evaluated: rendered as a skeleton with its title."""

    registration: Registration
    state: str = "pending"
    template_name: str = "smallstack/widgets/placeholder.html"

    @property
    def key(self) -> str:
        return self.registration.key

    @property
    def widget(self):
        return self.registration.widget


Card = WidgetContext | Placeholder


def effective_span(card: Card, layout: Mapping[str, Any] | None = None) -> int:
    """The card's width in grid columns: the layout's span for its key if that is 1 or 2,
    otherwise the widget's own ``span``. ``layout`` is the page's layout dict (its ``spans``)."""
    spans = layout.get("spans") if isinstance(layout, Mapping) else None
    span = spans.get(card.key) if isinstance(spans, Mapping) else None
    if isinstance(span, int) and not isinstance(span, bool) and span in (1, 2):
        return span
    return card.widget.span


def render_card(card: Card, context: Context | None = None, span: int | None = None) -> str:
    """The card's HTML; the default card in error if its own template fails.

    ``context``: the page's template context (the card then sees it, as with ``{% include %}``);
    without one the card renders alone (the live push). ``span``: the card's width (template
    variable ``span``), the widget's own by default.
    """
    name = card.template_name
    span = card.widget.span if span is None else span
    try:
        return _render(name, card, context, span)
    except Exception as exc:
        logger.exception("Dashboard widget %s: its template %s failed", card.key, name)
        problem = f"template {name} failed: {short_error(exc)}"
    return _render(DEFAULT_TEMPLATE, _in_error(card, problem), context, span)


def _render(name: str, card: Card, context: Context | None, span: int) -> str:
    if context is None:
        return render_to_string(name, {"w": card, "span": span})
    engine = context.template.engine if context.template is not None else Engine.get_default()
    template = engine.get_template(name)
    with context.push(w=card, span=span):
        return template.render(context)


def _in_error(card: Card, problem: str) -> WidgetContext:
    if isinstance(card, WidgetContext):
        return dataclasses.replace(card, state=State.ERROR, error=problem)
    return WidgetContext(
        registration=card.registration,
        state=State.ERROR,
        data=None,
        error=problem,
        elapsed_ms=0.0,
        evaluated_at=None,
    )
