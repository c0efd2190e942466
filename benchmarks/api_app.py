"""Registers the ten widgets the API benchmark polls (group "Bench", ``cache_ttl=5``)."""

from __future__ import annotations

import asyncio
import time

from django.apps import AppConfig

from smallstack.displays import DashboardWidget

WIDGETS = 10
IO_SECONDS = 0.05


class BenchSync(DashboardWidget):
    cache_ttl = 5
    group = "Bench"

    def __init__(self, n: int) -> None:
        self.title, self.key = f"Bench sync {n}", f"bench.sync-{n}"

    def get_data(self):
        time.sleep(IO_SECONDS)
        return {"headline": "1,234 rows", "detail": "sync", "status": "ok", "extra": {"n": 1234}}


class BenchAsync(DashboardWidget):
    cache_ttl = 5
    group = "Bench"

    def __init__(self, n: int) -> None:
        self.title, self.key = f"Bench async {n}", f"bench.async-{n}"

    async def get_data(self):
        await asyncio.sleep(IO_SECONDS)
        return {"headline": "99.9 %", "detail": "async", "status": "ok"}

    async def get_api_extras(self):
        return {"series": list(range(24))}


class BenchAPIConfig(AppConfig):
    name = "benchmarks"
    label = "benchmarks"

    def ready(self) -> None:
        from smallstack import dashboard

        for n in range(WIDGETS // 2):
            dashboard.register(BenchSync(n))
            dashboard.register(BenchAsync(n))
