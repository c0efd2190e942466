"""Demo data: a plausible stretch of request log rows."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from smallstack.activity.models import RequestLog

#: (method, path, relative weight, median duration in ms, called with the API token)
ROUTES = [
    ("GET", "/api/dashboard/status/", 30, 12.0, True),
    ("HEAD", "/api/dashboard/status/", 10, 10.0, True),
    ("GET", "/api/dashboard/widgets/", 15, 45.0, True),
    ("GET", "/smallstack/", 12, 80.0, False),
    ("GET", "/smallstack/group/Monitoring/", 3, 70.0, False),
    ("GET", "/smallstack/activity/", 2, 120.0, False),
    ("GET", "/smallstack/explorer/", 5, 60.0, False),
    ("GET", "/smallstack/explorer/sales/order/", 6, 95.0, False),
    ("POST", "/smallstack/explorer/sales/order/add/", 1, 140.0, False),
    ("GET", "/admin/", 2, 90.0, False),
    ("GET", "/accounts/login/", 4, 25.0, False),
    ("POST", "/accounts/login/", 1, 180.0, False),
]


def _status(rng: random.Random, method: str, path: str) -> int:
    roll = rng.random()
    if roll < 0.004:
        return rng.choice([500, 502, 503])
    if roll < 0.03:
        return rng.choice([404, 403, 400])
    if method == "POST":
        return 302
    if path.startswith("/api/") and roll < 0.25:
        return 304
    return 200


def seed_requests(
    hours: int = 24,
    *,
    per_hour: int = 400,
    now: datetime | None = None,
    seed: int | None = None,
) -> int:
    """Create a realistic ``hours`` of :class:`RequestLog` rows ending ``now``; how many.

    Traffic follows the day (busier in working hours, quieter at night), monitors poll the
    API with a token all day, staff pages are used by existing staff accounts, about 3 % of
    answers are 4xx and 0.4 % 5xx, and durations are long-tailed (log-normal) around each
    path's median. ``per_hour`` is the average rate; ``seed`` makes the rows reproducible.
    """
    if hours < 0 or per_hour < 0:
        raise ValueError("hours and per_hour must be 0 or more")
    rng = random.Random(seed)
    now = now or timezone.now()
    staff = list(get_user_model().objects.filter(is_staff=True).values_list("pk", flat=True))
    weights = [route[2] for route in ROUTES]
    prefix = "".join(rng.choice("0123456789abcdef") for _ in range(8))
    rows = []
    for hour in range(hours):
        start = now - timedelta(hours=hours - hour)
        local = timezone.localtime(start).hour
        daylight = 0.35 + 0.65 * max(0.0, math.sin(math.pi * (local - 6) / 14))
        count = max(0, round(per_hour * daylight * 1.4 * rng.uniform(0.85, 1.15)))
        for route in rng.choices(ROUTES, weights=weights, k=count):
            method, path, _, median, api = route
            status = _status(rng, method, path)
            duration = median * math.exp(rng.gauss(0, 0.6))
            if status >= 500:
                duration *= 8
            rows.append(
                RequestLog(
                    time=start + timedelta(seconds=rng.uniform(0, 3600)),
                    method=method,
                    path=path,
                    status=status,
                    duration_ms=round(duration, 2),
                    user_id=None if api or not staff else rng.choice(staff),
                    token_prefix=prefix if api else "",
                )
            )
    RequestLog.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
