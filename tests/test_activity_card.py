"""The Activity card as the dashboard serves it: a sparkline of real rows, page and API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from smallstack.activity.models import RequestLog
from smallstack.activity.writer import writer
from smallstack.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_live_rows():
    """Only the rows a test writes: the requests the test client makes are not written."""
    writer.wait_written(5)
    writer.reset()
    saved = {
        "capacity": writer.capacity,
        "batch_size": writer.batch_size,
        "flush_interval": writer.flush_interval,
    }
    writer.configure(capacity=10_000, batch_size=10_000, flush_interval=3600)
    yield
    writer.reset()
    writer.configure(**saved)


def rows(now) -> list[RequestLog]:
    def at(hours_ago: float, status: int = 200) -> RequestLog:
        return RequestLog(
            time=now - timedelta(hours=hours_ago),
            method="GET",
            path="/x/",
            status=status,
            duration_ms=12.0,
        )

    return [at(0.1), at(0.2), at(0.3, 500), at(2.5), at(30)]


def test_the_card_is_registered_in_the_monitoring_group_with_the_sparkline_type():
    registration = registry.get("smallstack.activity")
    assert registration.widget.widget_type == "sparkline"
    assert registration.widget.group == "Monitoring" and registration.widget.order == 20


async def test_api_and_page_show_the_counts_and_the_hourly_sparkline(staff_async_client):
    now = timezone.now()
    await RequestLog.objects.abulk_create(rows(now))

    response = await staff_async_client.get("/api/dashboard/widgets/smallstack.activity/")
    assert response.status_code == 200
    item = response.json()
    assert item["state"] == "ok" and item["widget_type"] == "sparkline"
    data = item["data"]
    assert data["headline"] == "5 requests" and data["detail"] == "4 in the last 24 h"
    assert len(data["series"]) == 24 and sum(data["series"]) == 4
    # Rows 6-18 minutes old: this hour's bucket, or the previous one early in an hour.
    assert sum(data["series"][-2:]) == 3
    assert data["extra"]["status_classes"] == {"2xx": 3, "3xx": 0, "4xx": 0, "5xx": 1}
    assert data["extra"]["error_rate"] == 0.25 and data["status"] == "warning"
    assert item["url"] == "/smallstack/activity/"

    page = await staff_async_client.get("/smallstack/group/Monitoring/", {"wait": "1"})
    html = page.content.decode()
    assert 'data-key="smallstack.activity" data-state="ok"' in html
    assert 'aria-label="Activity: 24 points from 0 (' in html
    assert "4 in the last 24 h" in html
