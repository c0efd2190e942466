"""The widget engine: concurrency, deadlines, isolation, single flight, caching."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time

import pytest
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from smallstack import dashboard
from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from tests.conftest import wait_until
from tests.widgets import Hangs, Returns, SleepyAsync, SleepySync

pytestmark = pytest.mark.django_db(transaction=True)


async def test_sync_and_async_widgets_run_concurrently(register, group):
    widgets = [SleepySync(0.3) for _ in range(10)] + [SleepyAsync(0.3) for _ in range(10)]
    for widget in widgets:
        register(widget)

    started = time.perf_counter()
    contexts = await dashboard.aget_widget_contexts(group=group)
    elapsed = time.perf_counter() - started

    assert [c.state for c in contexts] == ["ok"] * 20
    # One after another this takes 6 s; concurrently about 0.3 s.
    assert elapsed < 1.5, f"20 widgets of 0.3 s took {elapsed:.2f} s"
    sync_threads = {c.data["detail"] for c in contexts if c.data["detail"] != "async"}
    assert len(sync_threads) == 10, "sync widgets must each get their own pool thread"
    assert all(name.startswith("smallstack-widget") for name in sync_threads)


def test_sync_twin_is_concurrent_too(register, group):
    for _ in range(6):
        register(SleepySync(0.3))
        register(SleepyAsync(0.3))
    started = time.perf_counter()
    contexts = dashboard.get_widget_contexts(group=group)
    elapsed = time.perf_counter() - started
    assert len(contexts) == 12 and all(c.state == "ok" for c in contexts)
    assert elapsed < 1.5, f"12 widgets of 0.3 s took {elapsed:.2f} s"


@pytest.mark.parametrize("kind", [SleepySync, SleepyAsync])
async def test_timeout_degrades_only_that_widget(register, group, kind):
    slow = register(kind(5, timeout=0.2))
    fast = register(Returns({"headline": "fine"}))

    started = time.perf_counter()
    contexts = {c.key: c for c in await dashboard.aget_widget_contexts(group=group)}
    elapsed = time.perf_counter() - started

    assert elapsed < 1.5
    assert contexts[slow.key].state == "timeout"
    assert contexts[slow.key].error == "timed out after 0.2 s"
    assert contexts[slow.key].data is None and not contexts[slow.key].stale
    assert 150 < contexts[slow.key].elapsed_ms < 1500
    assert contexts[fast.key].state == "ok"
    assert contexts[fast.key].data == {"headline": "fine"}


async def test_default_timeout_comes_from_settings(register, group):
    slow = register(SleepyAsync(5))
    with override_settings(SMALLSTACK_DASHBOARD={"WIDGET_TIMEOUT": 0.25}):
        (context,) = await dashboard.aget_widget_contexts(group=group)
    assert context.key == slow.key
    assert context.state == "timeout" and context.error == "timed out after 0.25 s"


async def test_exception_is_isolated_and_logged_with_key(register, group, caplog):
    broken = register(Returns(raises=ValueError("boom")))
    fine = register(Returns({"headline": "fine", "detail": "d"}))

    with caplog.at_level(logging.ERROR, logger="smallstack.dashboard"):
        contexts = {c.key: c for c in await dashboard.aget_widget_contexts(group=group)}

    assert contexts[broken.key].state == "error"
    assert contexts[broken.key].error == "ValueError: boom"
    assert contexts[fine.key].state == "ok"
    (record,) = [r for r in caplog.records if broken.key in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is ValueError


class AsyncRaises(DashboardWidget):
    title = "async raises"

    async def get_data(self):
        raise RuntimeError("async boom")


async def test_async_exception_is_isolated(register, group):
    broken = register(AsyncRaises())
    (context,) = [c for c in await dashboard.aget_widget_contexts(group=group)]
    assert context.key == broken.key
    assert context.state == "error" and context.error == "RuntimeError: async boom"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (["not", "a", "dict"], "returned list, expected a dict"),
        (None, "returned NoneType, expected a dict"),
        ({"detail": "no headline"}, "string 'headline', got nothing"),
        ({"headline": 42}, "string 'headline', got int"),
        ({"headline": "x", "detail": 3}, "'detail' must be a string or None, got int"),
        ({"headline": "x", "status": ["ok"]}, "'status' must be a string or None, got list"),
        ({"headline": "x", "extra": object()}, "not JSON-serialisable"),
        ({"headline": "x", "extra": math.nan}, "not JSON-serialisable"),
    ],
)
async def test_invalid_return_is_an_error_with_a_reason(register, group, value, reason):
    bad = register(Returns(value))
    (context,) = await dashboard.aget_widget_contexts(group=group)
    assert context.key == bad.key
    assert context.state == "error"
    assert reason in context.error


async def test_stale_fallback_shows_last_good_value_with_its_age(register, group):
    widget = register(Returns({"headline": "42 orders", "detail": "good"})).widget

    (first,) = await dashboard.aget_widget_contexts(group=group)
    assert first.state == "ok" and not first.stale

    widget.raises = ConnectionError("db down")
    await asyncio.sleep(0.05)
    (second,) = await dashboard.aget_widget_contexts(group=group)

    assert second.state == "error" and second.stale
    assert second.error == "ConnectionError: db down"
    assert second.data == {"headline": "42 orders", "detail": "good"}
    assert second.evaluated_at == first.evaluated_at
    assert second.age_seconds >= 0.05


async def test_cache_ttl_reuses_a_good_result(register, group):
    cached = register(Returns({"headline": "cached"}, cache_ttl=60)).widget
    uncached = register(Returns({"headline": "live"})).widget

    for _ in range(3):
        contexts = await dashboard.aget_widget_contexts(group=group)
        assert all(c.state == "ok" for c in contexts)

    assert cached.calls == 1
    assert uncached.calls == 3
    assert [c.cached for c in contexts] == [True, False]


async def test_cache_ttl_expires(register, group):
    widget = register(Returns({"headline": "x"}, cache_ttl=0.2)).widget
    await dashboard.aget_widget_contexts(group=group)
    await dashboard.aget_widget_contexts(group=group)
    assert widget.calls == 1
    await asyncio.sleep(0.3)
    await dashboard.aget_widget_contexts(group=group)
    assert widget.calls == 2


async def test_concurrent_requests_share_one_evaluation(register, group):
    widget = register(SleepyAsync(0.2)).widget
    sync_widget = register(SleepySync(0.2)).widget

    results = await asyncio.gather(
        *(dashboard.aget_widget_contexts(group=group) for _ in range(20))
    )

    assert all(c.state == "ok" for contexts in results for c in contexts)
    assert widget.calls == 1
    assert sync_widget.calls == 1


@override_settings(SMALLSTACK_DASHBOARD={"THREAD_POOL_SIZE": 4})
def test_hung_sync_widget_polled_50_times_holds_one_thread(register, group):
    hung = register(Hangs(timeout=0.1)).widget
    try:
        for _ in range(50):
            (context,) = dashboard.get_widget_contexts(group=group)
            assert context.state == "timeout"
        assert hung.entered == 1

        # The remaining three pool threads still serve other widgets: had each poll taken a
        # thread, the pool would be exhausted and this one would time out.
        fine = dashboard.register(
            Returns({"headline": "still fine"}, timeout=1), group=group + "-other"
        )
        try:
            (other,) = dashboard.get_widget_contexts(group=group + "-other")
            assert other.state == "ok"
        finally:
            dashboard.unregister(fine.key)
    finally:
        hung.release.set()

    # Once the thread is free, the next request evaluates again and its late result was kept.
    assert wait_until(lambda: engine.in_flight() == 0)
    (context,) = dashboard.get_widget_contexts(group=group)
    assert context.state == "ok" and context.data["headline"] == "finally"
    assert hung.entered == 2


def test_late_result_of_a_timed_out_widget_becomes_the_stale_value(register, group):
    hung = register(Hangs(timeout=0.1)).widget
    (first,) = dashboard.get_widget_contexts(group=group)
    assert first.state == "timeout" and first.data is None
    hung.release.set()
    assert wait_until(lambda: engine.in_flight() == 0)

    hung.release.clear()
    (second,) = dashboard.get_widget_contexts(group=group)
    hung.release.set()
    assert second.state == "timeout" and second.stale
    assert second.data == {"headline": "finally", "detail": "released"}


def test_register_rejects_duplicate_keys(register):
    register(Returns({"headline": "a"}, title="Orders"))
    with pytest.raises(ImproperlyConfigured, match="already registered"):
        register(Returns({"headline": "b"}, title="Orders"))
    register(Returns({"headline": "c"}, title="Orders", key="orders-two"))


def test_key_is_derived_from_app_and_title(register):
    registration = register(Returns({"headline": "x"}, title="Server Health"))
    assert registration.key == "tests.server-health"
    assert registration.app_label == "tests"


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"span": 3}, "span must be 1 or 2"),
        ({"timeout": 0}, "timeout must be a positive"),
        ({"cache_ttl": -1}, "cache_ttl must be 0 or more"),
        ({"key": "has space"}, "may hold only"),
        ({"title": ""}, "needs a title"),
    ],
)
def test_register_validates_attributes(register, attrs, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        register(Returns({"headline": "x"}, **attrs))


def test_unregister(register, group):
    registration = register(Returns({"headline": "x"}))
    assert [c.key for c in dashboard.get_widget_contexts(group=group)] == [registration.key]
    dashboard.unregister(registration.key)
    assert dashboard.get_widget_contexts(group=group) == []
    with pytest.raises(KeyError, match="No dashboard widget"):
        dashboard.unregister(registration.key)


def test_ordering_and_filters(register, group):
    late = register(Returns({"headline": "late"}, order=70))
    early = register(Returns({"headline": "early"}, order=5))
    hidden = register(Returns({"headline": "hidden"}, order=20, on_dashboard=False))
    elsewhere = register(Returns({"headline": "other"}, order=1), group=group + "-b")

    keys = [c.key for c in dashboard.get_widget_contexts(group=group)]
    assert keys == [early.key, hidden.key, late.key]

    keys = [c.key for c in dashboard.get_widget_contexts(group=group, dashboard_only=True)]
    assert keys == [early.key, late.key]

    app_keys = [c.key for c in dashboard.get_widget_contexts(app="tests")]
    assert app_keys.index(elsewhere.key) < app_keys.index(early.key) < app_keys.index(late.key)
    assert dashboard.get_widget_contexts(app="no-such-app") == []


def test_url_name_is_resolved(register, group):
    register(Returns({"headline": "x"}, url_name="smallstack:group", url_kwargs={"group": group}))
    register(Returns({"headline": "y"}, url_name="no-such-url"))
    linked, broken = dashboard.get_widget_contexts(group=group)
    assert linked.url == f"/smallstack/group/{group}/"
    assert broken.url is None


class CountsUsers(DashboardWidget):
    title = "counts users"

    def __init__(self):
        self.connections = []

    def get_data(self):
        from django.contrib.auth.models import User
        from django.db import connections

        self.connections.append(connections["default"])
        return {"headline": str(User.objects.count())}


class CountsUsersAsync(DashboardWidget):
    title = "counts users async"

    def __init__(self):
        self.connections = []

    async def get_data(self):
        from asgiref.sync import sync_to_async
        from django.contrib.auth.models import User
        from django.db import connections

        count = await User.objects.acount()
        self.connections.append(await sync_to_async(lambda: connections["default"])())
        return {"headline": str(count)}


def test_worker_threads_close_their_db_connections(register, group, staff_user):
    sync_widget = register(CountsUsers()).widget
    async_widget = register(CountsUsersAsync()).widget

    for _ in range(3):
        contexts = dashboard.get_widget_contexts(group=group)
        assert [c.data["headline"] for c in contexts] == ["1", "1"]
        # A flight lands once its lane has closed its connection; until then a new request
        # would share the result just computed instead of evaluating again.
        assert wait_until(lambda: engine.in_flight() == 0)

    opened = sync_widget.connections + async_widget.connections
    assert len(opened) == 6
    assert all(conn.connection is None for conn in opened), "a worker left a connection open"


class IgnoresCancellation(DashboardWidget):
    """A badly behaved async widget: it swallows the cancellation and keeps going."""

    title = "stubborn"
    timeout = 0.2

    def __init__(self):
        self.finished = threading.Event()  # set on the widget loop, awaited on the test's

    async def get_data(self):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.6)
        self.finished.set()
        return {"headline": "too late"}


async def test_async_widget_ignoring_cancellation_still_times_out_on_time(register, group):
    widget = register(IgnoresCancellation()).widget
    started = time.perf_counter()
    (context,) = await dashboard.aget_widget_contexts(group=group)
    assert context.state == "timeout" and context.error == "timed out after 0.2 s"
    assert time.perf_counter() - started < 0.6, "the page waited for the widget, not its deadline"
    # Its result still arrives later and becomes the last good value.
    assert await asyncio.to_thread(widget.finished.wait, 5)
    assert await asyncio.to_thread(wait_until, lambda: engine.in_flight() == 0)
    (context,) = await dashboard.aget_widget_contexts(group=group)
    assert context.state == "timeout" and context.stale
    assert context.data == {"headline": "too late"}


class CountsCalls(DashboardWidget):
    title = "counts calls"

    def __init__(self):
        self.calls = 0

    async def get_data(self):
        self.calls += 1
        return {"headline": str(self.calls)}


class SlowWriteCache(LocMemCache):
    """A cache whose writes take a while: evaluations stay unlanded until they are stored."""

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        time.sleep(0.3)
        return super().set_many(data, timeout=timeout, version=version)


SLOW_WRITES = {"default": {"BACKEND": "tests.test_engine.SlowWriteCache", "LOCATION": "slow"}}


@pytest.mark.parametrize(("cache_ttl", "calls"), [(0, 2), (60, 1)])
async def test_a_finished_result_is_shared_only_if_the_widget_allows_reuse(
    register, group, cache_ttl, calls
):
    widget = register(CountsCalls(), group=group).widget
    widget.cache_ttl = cache_ttl
    with override_settings(CACHES=SLOW_WRITES):
        first = await dashboard.aget_widget_contexts(group=group)
        second = await dashboard.aget_widget_contexts(group=group)  # first not yet stored
        assert engine.in_flight() == 1
    assert widget.calls == calls
    assert [c.data["headline"] for c in first + second] == ["1", str(calls)]
