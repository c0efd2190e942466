"""Circuit breakers: a widget that keeps failing is paused (not called), then tried again."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from smallstack import dashboard
from smallstack.api.schemas import WidgetItem
from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from tests.conftest import wait_until
from tests.widgets import SleepySync, unique

pytestmark = pytest.mark.django_db(transaction=True)


class Flaky(DashboardWidget):
    """Fails while ``failing`` is set (raises, or sleeps past its timeout); counts its calls."""

    def __init__(self, *, hang: float = 0.0, **attrs: Any) -> None:
        self.title = unique("flaky")
        self.calls = 0
        self.failing = False
        self.hang = hang
        self.__dict__.update(attrs)

    def get_data(self) -> dict[str, Any]:
        self.calls += 1
        if self.failing:
            if self.hang:
                time.sleep(self.hang)
            raise ConnectionError("backend unreachable")
        return {"headline": f"call {self.calls}"}


async def evaluate(registration, **options):
    [context] = await engine.evaluate([registration], **options)
    return context


async def landed() -> bool:
    return await asyncio.to_thread(wait_until, lambda: engine.in_flight() == 0)


async def sleep_until(moment: str) -> None:
    """Sleep until just after ``moment`` (an ISO datetime, as the breaker's ``retry_at``)."""
    await asyncio.sleep(max(0.0, datetime.fromisoformat(moment).timestamp() - time.time()) + 0.05)


async def fail(registration, times: int) -> list:
    contexts = []
    for _ in range(times):
        contexts.append(await evaluate(registration))
        assert await landed()
    return contexts


async def test_five_failures_pause_the_widget_and_it_is_not_called(register, caplog):
    widget = Flaky()
    registration = register(widget)
    assert (await evaluate(registration)).state == "ok"  # a good value to fall back on
    widget.failing = True

    caplog.set_level(logging.WARNING, logger="smallstack.dashboard")
    failures = await fail(registration, 5)
    assert [c.error for c in failures] == ["ConnectionError: backend unreachable"] * 5
    assert all(c.breaker is None for c in failures[:4])
    assert widget.calls == 6
    opened = "failed 5 times in a row; paused for 30 s"
    assert any(
        registration.key in r.getMessage() and opened in r.getMessage() for r in caplog.records
    )

    # A reload storm during the cooldown: not one call.
    storm = await asyncio.gather(*(evaluate(registration) for _ in range(50)))
    assert widget.calls == 6
    paused = storm[-1]
    assert paused.state == "error"
    assert paused.error.startswith("paused after 5 failures, next try in ")
    assert 28 <= int(paused.error.rsplit(" ", 2)[1]) <= 30, paused.error
    assert paused.stale and paused.data == {"headline": "call 1"}
    assert paused.breaker["state"] == "open" and paused.breaker["failures"] == 5
    opened = datetime.fromisoformat(paused.breaker["opened_at"])
    retry = datetime.fromisoformat(paused.breaker["retry_at"])
    assert (retry - opened).total_seconds() == pytest.approx(30, abs=1e-3)

    # The API's item carries the breaker, valid against its declared schema.
    item = WidgetItem.model_validate(paused.as_item())
    assert item.state == "error" and item.breaker is not None and item.breaker.failures == 5


async def test_after_the_cooldown_one_trial_decides_and_the_cooldown_doubles(register):
    widget = Flaky(breaker_failures=2, breaker_cooldown=0.4)
    registration = register(widget)
    widget.failing = True
    await fail(registration, 2)
    paused = await evaluate(registration)
    assert paused.breaker is not None
    assert widget.calls == 2

    await sleep_until(paused.breaker["retry_at"])
    trial = await evaluate(registration)  # the trial fails: open again, for twice as long
    assert widget.calls == 3 and trial.error == "ConnectionError: backend unreachable"
    assert await landed()
    reopened = await evaluate(registration)
    assert widget.calls == 3
    opened = datetime.fromisoformat(reopened.breaker["opened_at"])
    retry = datetime.fromisoformat(reopened.breaker["retry_at"])
    assert (retry - opened).total_seconds() == pytest.approx(0.8, abs=1e-3)
    assert reopened.breaker["failures"] == 3

    widget.failing = False
    assert (await evaluate(registration)).breaker is not None  # still within the 0.8 s
    assert widget.calls == 3
    await sleep_until(reopened.breaker["retry_at"])
    recovered = await evaluate(registration)  # the trial succeeds: closed
    assert recovered.state == "ok" and recovered.breaker is None
    assert widget.calls == 4
    assert await landed()
    # Closed again: failures count from zero, so one failure does not pause it.
    widget.failing = True
    await fail(registration, 1)
    assert (await evaluate(registration)).breaker is None
    assert widget.calls == 6


async def test_the_cooldown_stops_doubling_at_the_maximum(register):
    widget = Flaky(breaker_failures=1, breaker_cooldown=0.2)
    registration = register(widget)
    widget.failing = True
    with override_settings(SMALLSTACK_DASHBOARD={"BREAKER_MAX_COOLDOWN": 0.3}):
        await fail(registration, 1)
        await sleep_until((await evaluate(registration)).breaker["retry_at"])
        await fail(registration, 1)  # failed trial: 0.4 s, capped at 0.3
        paused = await evaluate(registration)
    opened = datetime.fromisoformat(paused.breaker["opened_at"])
    retry = datetime.fromisoformat(paused.breaker["retry_at"])
    assert (retry - opened).total_seconds() == pytest.approx(0.3, abs=1e-3)


async def test_a_hung_widget_paused_costs_no_thread_however_often_it_is_asked_for(register):
    widget = Flaky(hang=0.3, timeout=0.05, breaker_failures=3)
    registration = register(widget)
    widget.failing = True
    timeouts = await fail(registration, 3)  # each holds a pool thread for 0.3 s
    assert [c.state for c in timeouts] == ["timeout"] * 3
    assert widget.calls == 3

    storm = await asyncio.gather(*(evaluate(registration) for _ in range(100)))
    assert widget.calls == 3, "a paused widget must not be called"
    assert engine.in_flight() == 0, "a paused widget must not start an evaluation"
    assert all(c.error.startswith("paused after 3 failures") for c in storm)


async def test_timeouts_and_errors_both_count_for_async_widgets_too(register):
    class FlakyAsync(Flaky):
        async def get_data(self) -> dict[str, Any]:
            self.calls += 1
            if self.calls % 2:
                await asyncio.sleep(5)  # past its timeout
            raise ValueError("no")

    widget = FlakyAsync(timeout=0.1, breaker_failures=4)
    registration = register(widget)
    states = [c.state for c in await fail(registration, 4)]
    assert states == ["timeout", "error", "timeout", "error"]
    assert (await evaluate(registration)).breaker["failures"] == 4
    assert widget.calls == 4


async def test_breaker_failures_none_never_pauses(register):
    widget = Flaky(breaker_failures=None)
    registration = register(widget)
    widget.failing = True
    await fail(registration, 12)
    assert widget.calls == 12
    assert (await evaluate(registration)).breaker is None


async def test_the_setting_decides_for_widgets_that_do_not(register):
    widget = Flaky()
    registration = register(widget)
    widget.failing = True
    with override_settings(SMALLSTACK_DASHBOARD={"BREAKER_FAILURES": 2, "BREAKER_COOLDOWN": 9}):
        await fail(registration, 2)
        paused = await evaluate(registration)
    assert paused.error == "paused after 2 failures, next try in 9 s"
    engine.reset()
    with override_settings(SMALLSTACK_DASHBOARD={"BREAKER_FAILURES": None}):
        await fail(registration, 7)
        assert (await evaluate(registration)).breaker is None


async def test_a_success_resets_the_count(register):
    widget = Flaky(breaker_failures=3)
    registration = register(widget)
    for _ in range(3):
        widget.failing = True
        await fail(registration, 2)
        widget.failing = False
        assert (await evaluate(registration)).state == "ok"
        assert await landed()
    assert widget.calls == 9


async def test_refresh_from_code_can_force_a_trial(register):
    widget = Flaky(breaker_failures=2, breaker_cooldown=60)
    registration = register(widget)
    widget.failing = True
    await fail(registration, 2)
    widget.failing = False

    assert (await dashboard.arefresh(registration.key)).breaker is not None
    assert widget.calls == 2, "a plain refresh leaves a paused widget alone"
    forced = await dashboard.arefresh(registration.key, force=True)
    assert forced.state == "ok" and forced.breaker is None
    assert widget.calls == 3
    assert await landed()
    assert (await evaluate(registration)).state == "ok"


def test_blocking_refresh_can_force_a_trial_too(register):
    widget = Flaky(breaker_failures=1, breaker_cooldown=60)
    registration = register(widget)
    widget.failing = True
    assert dashboard.refresh(registration.key).state == "error"
    assert wait_until(lambda: engine.in_flight() == 0)
    widget.failing = False
    assert dashboard.refresh(registration.key).breaker is not None
    assert dashboard.refresh(registration.key, force=True).state == "ok"
    assert widget.calls == 2


def test_a_paused_card_says_why_and_shows_the_last_value(register, staff_client, group):
    widget = Flaky(breaker_failures=1, breaker_cooldown=60)
    registration = register(widget)
    assert dashboard.get_widget_contexts(group=group)[0].state == "ok"
    assert wait_until(lambda: engine.in_flight() == 0)
    widget.failing = True
    dashboard.get_widget_contexts(group=group)
    assert wait_until(lambda: engine.in_flight() == 0)

    page = staff_client.get(f"/smallstack/group/{group}/").content.decode()
    assert "paused after 1 failure, next try in" in page
    assert "call 1" in page and "is-stale" in page
    api = staff_client.get(f"/api/dashboard/widgets/?group={group}").json()["widgets"]
    [item] = [i for i in api if i["key"] == registration.key]
    assert item["breaker"]["state"] == "open" and item["state"] == "error"
    assert widget.calls == 2


@pytest.mark.parametrize(
    "attrs",
    [
        {"breaker_failures": 0},
        {"breaker_failures": 2.5},
        {"breaker_failures": True},
        {"breaker_cooldown": 0},
    ],
)
def test_bad_breaker_attributes_are_refused_at_registration(attrs):
    with pytest.raises(ImproperlyConfigured, match="breaker_"):
        dashboard.register(SleepySync(0, **attrs))
