"""Keep the dashboard's Orders card live: a saved or deleted order refreshes it on commit.

The refresh re-evaluates the card once per transaction (however many orders it touched) and
pushes it to every open dashboard, in every server process when Redis is configured.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Order

logger = logging.getLogger("smallstack.live")

#: The Orders card registered by ``explorer.py`` (app label, model name, slugified title).
ORDERS_WIDGET_KEY = "sales.order.orders"


@receiver(post_save, sender=Order, dispatch_uid="sales-orders-card-save")
@receiver(post_delete, sender=Order, dispatch_uid="sales-orders-card-delete")
def orders_changed(sender, using: str = "default", **kwargs) -> None:
    """Schedule one refresh of the Orders card for when the current transaction commits."""
    connection = transaction.get_connection(using)
    # One refresh per transaction: skip if this transaction already has one queued. (A rolled
    # back transaction drops its queue, so the next change schedules again.)
    if any(entry[1] is _refresh_orders_card for entry in connection.run_on_commit):
        return
    transaction.on_commit(_refresh_orders_card, using=using, robust=True)


def _refresh_orders_card() -> None:
    from smallstack import dashboard

    try:
        dashboard.refresh(ORDERS_WIDGET_KEY)
    except KeyError:
        logger.debug("The Orders card is not registered; nothing to refresh")
