"""The demo app's Orders card updates on every open dashboard when an order changes."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from project.sales.models import Order
from project.sales.signals import ORDERS_WIDGET_KEY
from smallstack import dashboard
from tests.test_ws import connect

pytestmark = pytest.mark.django_db(transaction=True)


async def next_update(communicator) -> dict:
    while True:
        message = json.loads(await communicator.receive_from(3))
        if message["type"] == "widget.update":
            return message


def test_orders_widget_key_is_registered():
    assert ORDERS_WIDGET_KEY in dashboard.registry


async def test_new_order_updates_the_orders_card_within_a_second(staff_user):
    communicator = await connect(staff_user, {"group": "Sales"})
    started = time.monotonic()
    await Order.objects.acreate(customer="Ada", amount=Decimal("12.50"))
    message = await next_update(communicator)
    assert time.monotonic() - started < 1.0
    assert message["widget"]["key"] == ORDERS_WIDGET_KEY
    assert message["widget"]["data"]["headline"] == "1 orders"
    assert "1 orders" in message["html"]

    order = await Order.objects.aget()
    await order.adelete()
    assert (await next_update(communicator))["widget"]["data"]["headline"] == "0 orders"
    await communicator.disconnect()


async def test_one_refresh_per_transaction_and_none_after_rollback(staff_user, monkeypatch):
    calls: list[str] = []
    original = dashboard.refresh

    def counting(key):
        calls.append(key)
        return original(key)

    monkeypatch.setattr(dashboard, "refresh", counting)
    communicator = await connect(staff_user, {"group": "Sales"})

    def three_orders_in_one_transaction():
        with transaction.atomic():
            for name in ("a", "b", "c"):
                Order.objects.create(customer=name, amount=Decimal("1"))

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            Order.objects.create(customer="ghost", amount=Decimal("1"))
            raise RuntimeError("abort")

    await sync_to_async(three_orders_in_one_transaction)()
    assert calls == [ORDERS_WIDGET_KEY]
    assert (await next_update(communicator))["widget"]["data"]["headline"] == "3 orders"

    await sync_to_async(rolled_back)()
    assert calls == [ORDERS_WIDGET_KEY]  # nothing committed, nothing refreshed
    await Order.objects.acreate(customer="d", amount=Decimal("2"))  # and later changes still do
    assert calls == [ORDERS_WIDGET_KEY, ORDERS_WIDGET_KEY]
    assert (await next_update(communicator))["widget"]["data"]["headline"] == "4 orders"
    await communicator.disconnect()
