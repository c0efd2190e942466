"""``{% card w %}``: render one dashboard card; a failing card template costs only that card."""

from django import template

from smallstack.cards import Card, render_card

register = template.Library()


@register.simple_tag(takes_context=True)
def card(context: template.Context, w: Card) -> str:
    """The card of ``w`` (a widget context or a placeholder), rendered in the page's context."""
    return render_card(w, context)
