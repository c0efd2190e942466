"""Card tags: ``{% card w %}`` renders one dashboard card (a failing card template costs only
that card) as wide as the page's ``layout`` makes it; ``{% default_spans widgets as spans %}`` gives
the cards' own widths (for the layout editor); ``{% sparkline series labels name %}`` draws a
series as an inline SVG."""

from collections.abc import Iterable, Sequence

from django import template
from django.utils.safestring import SafeString

from smallstack import sparklines
from smallstack.cards import Card, effective_span, render_card

register = template.Library()


@register.simple_tag(takes_context=True)
def card(context: template.Context, w: Card) -> str:
    """The card of ``w`` (a widget context or a placeholder), rendered in the page's context,
    with the width the page's ``layout`` (the user's, if any) gives it."""
    return render_card(w, context, effective_span(w, context.get("layout")))


@register.simple_tag
def default_spans(widgets: Iterable[Card]) -> dict[str, int]:
    """``{key: span}``: each card's width without a layout, the widget's own ``span``."""
    return {w.key: w.widget.span for w in widgets}


@register.simple_tag
def sparkline(
    series: Sequence[float] | None, labels: Sequence[str] | None = None, name: str = ""
) -> SafeString:
    """The chart of ``series`` (labels optional), named ``name`` for assistive technology."""
    return sparklines.render(series or [], labels or None, name)
