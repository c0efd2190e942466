"""Async widgets that use Django's async ORM must overlap, not queue on one sync thread."""

from __future__ import annotations

import asyncio
import time

import pytest
from django.contrib.auth.models import User
from django.db.models.expressions import RawSQL

from smallstack import dashboard
from smallstack.displays import DashboardWidget
from tests.sql_sleep import sql_sleep
from tests.widgets import unique

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sleep_sql(staff_user):
    """``sleep(seconds)`` in SQL (tests/sql_sleep.py); one row to run it against."""
    with sql_sleep():
        yield


class SlowQuery(DashboardWidget):
    """An async widget whose single async-ORM query takes 0.2 s in the database."""

    def __init__(self) -> None:
        self.title = unique("slow query")

    async def get_data(self):
        row = await User.objects.annotate(nap=RawSQL("sleep(0.2)", ())).values("nap").afirst()
        return {"headline": "slept in SQL", "detail": str(row)}


async def test_ten_async_orm_widgets_overlap(sleep_sql, register, group):
    for _ in range(10):
        register(SlowQuery())

    started = time.perf_counter()
    contexts = await dashboard.aget_widget_contexts(group=group)
    elapsed = time.perf_counter() - started

    assert [c.state for c in contexts] == ["ok"] * 10, [c.error for c in contexts]
    # Queued on one thread this takes 2 s; overlapping, about 0.2 s.
    assert elapsed < 1.2, f"10 async ORM widgets of 0.2 s took {elapsed:.2f} s"


async def test_a_sync_request_thread_is_not_blocked_by_async_orm_widgets(
    sleep_sql, register, group
):
    """The request's own thread-sensitive work still runs while ORM widgets query."""
    for _ in range(5):
        register(SlowQuery())
    started = time.perf_counter()
    contexts, count = await asyncio.gather(
        dashboard.aget_widget_contexts(group=group), User.objects.acount()
    )
    assert count == 1 and all(c.state == "ok" for c in contexts)
    assert time.perf_counter() - started < 1.0
