"""Demo orders for ``manage.py seed_demo``."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from .models import Order

CUSTOMERS = [
    "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
    "Wonka Industries", "Tyrell Corp", "Cyberdyne", "Soylent", "Vandelay Industries",
    "Pied Piper", "Aperture Science", "Black Mesa", "Oscorp", "Massive Dynamic", "Gringotts",
]  # fmt: skip
STATUS_WEIGHTS = [(Order.Status.OPEN, 3), (Order.Status.SHIPPED, 6), (Order.Status.CANCELLED, 1)]


def seed_orders(count: int = 300, *, seed: int = 2024) -> int:
    """Top the table up to ``count`` orders over the last 90 days; return how many were added.

    Running it again adds nothing once ``count`` orders exist.
    """
    missing = count - Order.objects.count()
    if missing <= 0:
        return 0
    rng = random.Random(seed + missing)
    now = timezone.now()
    statuses = [status for status, _ in STATUS_WEIGHTS]
    weights = [weight for _, weight in STATUS_WEIGHTS]
    orders = [
        Order(
            customer=rng.choice(CUSTOMERS),
            amount=Decimal(rng.randint(500, 250_000)) / 100,
            status=rng.choices(statuses, weights)[0],
            created=now - timedelta(minutes=rng.randint(0, 90 * 24 * 60)),
        )
        for _ in range(missing)
    ]
    Order.objects.bulk_create(orders)
    return missing
