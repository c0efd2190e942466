"""Card tags: ``{% card w %}`` renders one dashboard card (a failing card template costs only
that card); ``{% sparkline series labels name %}`` draws a series as an inline SVG."""

from collections.abc import Sequence

from django import template
from django.utils.safestring import SafeString

from smallstack import sparklines
from smallstack.cards import Card, render_card

register = template.Library()


@register.simple_tag(takes_context=True)
def card(context: template.Context, w: Card) -> str:
    """The card of ``w`` (a widget context or a placeholder), rendered in the page's context."""
    return render_card(w, context)


@register.simple_tag
def sparkline(
    series: Sequence[float] | None, labels: Sequence[str] | None = None, name: str = ""
) -> SafeString:
    """The chart of ``series`` (labels optional), named ``name`` for assistive technology."""
    return sparklines.render(series or [], labels or None, name)
