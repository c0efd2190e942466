"""``manage.py seed_demo``: a demo staff login and rows that make every first-party card speak."""

from __future__ import annotations

import io

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import AsyncClient

from smallstack.activity.models import RequestLog
from smallstack.activity.writer import writer
from smallstack.heartbeat.models import Heartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", "--password", "demo-pass-123", stdout=out)
    return out.getvalue()


@pytest.fixture
def _empty_request_log():
    """No rows from earlier tests' requests, and none written while this test runs."""
    writer.wait_written(5)
    writer.reset()
    saved = {
        "capacity": writer.capacity,
        "batch_size": writer.batch_size,
        "flush_interval": writer.flush_interval,
    }
    writer.configure(capacity=10_000, batch_size=10_000, flush_interval=3600)
    RequestLog.objects.all().delete()
    yield
    writer.reset()
    writer.configure(**saved)


@pytest.mark.usefixtures("_empty_request_log")
async def test_the_demo_makes_status_and_activity_meaningful_and_seeding_twice_adds_nothing():
    first = await sync_to_async(seed)()
    beats, requests = await Heartbeat.objects.acount(), await RequestLog.objects.acount()
    assert beats > 1000 and requests > 1000  # a day of each
    assert "Demo heartbeats:" in first and "Demo request log:" in first

    second = await sync_to_async(seed)()
    assert "Demo heartbeats present." in second and "Request log present." in second
    assert await Heartbeat.objects.acount() == beats
    assert await RequestLog.objects.acount() == requests

    client = AsyncClient()
    user = await get_user_model().objects.aget(username="demo")
    assert user.is_staff and user.check_password("demo-pass-123")
    await client.aforce_login(user)
    status = (await client.get("/api/dashboard/widgets/smallstack.status/")).json()
    assert status["state"] == "ok"
    assert status["data"]["detail"].endswith("% uptime (24 h)"), status["data"]
    activity = (await client.get("/api/dashboard/widgets/smallstack.activity/")).json()
    assert activity["state"] == "ok"
    assert activity["data"]["headline"] == f"{requests:,} requests"
    assert sum(activity["data"]["series"]) > 1000
