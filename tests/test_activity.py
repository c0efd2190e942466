"""The request log: what the middleware records, that it never queries on the request's path,
the buffer's drop policy, the statistics, the page, the prune command and the demo seed."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db.backends.utils import CursorWrapper
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from django.utils.functional import SimpleLazyObject

from smallstack import tokens
from smallstack.activity import conf, stats
from smallstack.activity.middleware import RequestLogMiddleware, resolved_user_id
from smallstack.activity.models import RequestLog, RequestLogDrop
from smallstack.activity.seed import seed_requests
from smallstack.activity.writer import RequestLogWriter, writer

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _quiet_writer():
    """The process writer writes only when a test asks (wait_written), from a clean state."""
    writer.wait_written(5)
    writer.reset()
    writer.configure(capacity=10_000, batch_size=10_000, flush_interval=3600)
    yield
    writer.wait_written(5)
    writer.reset()


def logged(**filters) -> list[RequestLog]:
    assert writer.wait_written(10)
    return list(RequestLog.objects.filter(**filters).order_by("time"))


def row(minutes_ago: float, path="/p/", status=200, ms=10.0, method="GET") -> RequestLog:
    return RequestLog(
        time=NOW - timedelta(minutes=minutes_ago),
        method=method,
        path=path,
        status=status,
        duration_ms=ms,
    )


# -- what is recorded -------------------------------------------------------------------------


def test_a_request_is_logged_without_its_query_string(client):
    response = client.get("/accounts/login/?next=/smallstack/&secret=1")
    assert response.status_code == 200
    [entry] = logged(path="/accounts/login/")
    assert (entry.method, entry.status, entry.user_id, entry.token_prefix) == (
        "GET",
        200,
        None,
        "",
    )
    assert 0 < entry.duration_ms < 10_000
    assert abs((entry.time - datetime.now(UTC)).total_seconds()) < 60


def test_errors_and_not_found_are_logged_with_their_status():
    client = Client(enforce_csrf_checks=True)
    client.get("/no-such-page/")
    client.post("/accounts/login/", {})  # no CSRF token: 403
    assert [(e.path, e.status) for e in logged()] == [
        ("/no-such-page/", 404),
        ("/accounts/login/", 403),
    ]


def test_the_user_is_recorded_when_the_view_loaded_it(staff_client, staff_user):
    assert staff_client.get("/smallstack/?wait=1").status_code == 200
    [entry] = logged(path="/smallstack/")
    assert entry.user_id == staff_user.pk


def test_the_user_is_never_loaded_by_the_middleware():
    loads = []

    def load():
        loads.append(1)
        raise AssertionError("the middleware loaded the user")

    request = RequestFactory().get("/x/")
    request.user = SimpleLazyObject(load)
    assert resolved_user_id(request) is None
    assert loads == []

    class Staff:
        is_authenticated, pk = True, 42

    request.user = SimpleLazyObject(lambda: Staff())
    request.user.pk  # noqa: B018 — the view evaluates it
    assert resolved_user_id(request) == 42
    request = RequestFactory().get("/x/")
    request.user = SimpleLazyObject(load)
    request._acached_user = Staff()  # what request.auser() leaves behind
    assert resolved_user_id(request) == 42
    request.user = Staff()  # set outright (the API's auth, staff_required)
    assert resolved_user_id(request) == 42


async def test_an_api_request_records_its_token_prefix_and_user(staff_user):
    _, key = await _create_token(staff_user)
    response = await AsyncClient().get(
        "/api/dashboard/status/?group=none-such", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code in (200, 404, 503)
    entries = await _logged_async(path="/api/dashboard/status/")
    assert [(e.token_prefix, e.user_id) for e in entries] == [
        (tokens.parse_prefix(key), staff_user.pk)
    ]


async def _create_token(user):
    from asgiref.sync import sync_to_async

    return await sync_to_async(tokens.create_token)(user, name="monitor")


async def _logged_async(**filters) -> list[RequestLog]:
    from asgiref.sync import sync_to_async

    return await sync_to_async(logged)(**filters)


def test_excluded_paths_are_not_logged(client):
    for path in ("/static/smallstack/dashboard.css", "/health/live/", "/ws/dashboard/"):
        client.get(path)
    client.get("/accounts/login/")
    assert [e.path for e in logged()] == ["/accounts/login/"]
    assert writer.added == 1


def test_exclusions_are_configurable_and_static_url_is_always_excluded(client):
    with override_settings(SMALLSTACK_ACTIVITY={"EXCLUDE": ["/accounts/"]}, STATIC_URL="/assets/"):
        assert conf.excluded_prefixes() == ("/accounts/", "/assets/")
        client.get("/accounts/login/")
        client.get("/no-such-page/")
    assert [e.path for e in logged()] == ["/no-such-page/"]


def test_the_middleware_can_be_switched_off():
    from django.core.exceptions import MiddlewareNotUsed

    with (
        override_settings(SMALLSTACK_ACTIVITY={"ENABLED": False}),
        pytest.raises(MiddlewareNotUsed),
    ):
        RequestLogMiddleware(lambda request: HttpResponse())


def test_the_middleware_is_async_under_asgi_and_sync_under_wsgi():
    from asgiref.sync import iscoroutinefunction

    async def async_view(request):
        return HttpResponse()

    assert iscoroutinefunction(RequestLogMiddleware(async_view))
    assert not iscoroutinefunction(RequestLogMiddleware(lambda request: HttpResponse()))
    assert RequestLogMiddleware.sync_capable and RequestLogMiddleware.async_capable


# -- no query on the request's path ------------------------------------------------------------


class QueryLog:
    """Every SQL statement run on any connection, in any thread, while active."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, str]] = []
        self.active = False


@pytest.fixture
def queries(monkeypatch):
    """Records at the cursor class, so connections opened before the test count too."""
    log = QueryLog()
    original = CursorWrapper._execute_with_wrappers

    def recording(cursor, sql, params, many, executor):
        if log.active:
            log.statements.append((threading.current_thread().name, sql))
        return original(cursor, sql, params, many, executor)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", recording)
    return log


async def test_the_middleware_adds_no_query_to_a_request_through_the_asgi_handler(queries):
    client = AsyncClient()
    queries.active = True
    response = await client.get("/accounts/login/")
    queries.active = False
    assert response.status_code == 200
    assert writer.added == 1 and writer.pending() == 1  # recorded, not written
    assert queries.statements == []
    [entry] = await _logged_async(path="/accounts/login/")  # the writer thread writes it
    assert entry.status == 200


async def test_the_query_log_sees_queries_made_while_handling_a_request(queries, staff_user):
    """The negative control: a request that does query is caught by the same instrument."""
    key = (await _create_token(staff_user))[1]
    queries.active = True
    await AsyncClient().get("/api/dashboard/status/", headers={"Authorization": f"Bearer {key}"})
    queries.active = False
    assert any("smallstack_apitoken" in sql for _, sql in queries.statements)
    # The dashboard's Activity card reads the log; nothing writes it on the request's path.
    assert not any(
        "activity_requestlog" in sql and sql.lstrip().upper().startswith("INSERT")
        for _, sql in queries.statements
    )


# -- the buffer --------------------------------------------------------------------------------


def sample(n: int) -> tuple:
    return (time.time(), "GET", f"/r/{n}/", 200, 1.0, None, "")


def test_a_full_buffer_drops_the_oldest_rows_counts_them_and_never_blocks(caplog):
    buffer = RequestLogWriter(capacity=1_000, batch_size=10**9, flush_interval=3600)
    buffer._write_lock.acquire()  # a write that takes forever: the thread cannot empty the deque
    burst, slowest = 50_000, 0.0
    started = time.perf_counter()
    for n in range(burst):
        t = time.perf_counter()
        buffer.add(sample(n))
        slowest = max(slowest, time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{burst} adds took {elapsed:.2f} s"
    assert slowest < 0.05, f"one add took {slowest * 1000:.1f} ms"
    assert buffer.pending() == 1_000 and buffer.dropped == burst - 1_000
    assert [r[2] for r in list(buffer._rows)[:2]] == ["/r/49000/", "/r/49001/"]  # the newest
    buffer._write_lock.release()
    with caplog.at_level(logging.WARNING, logger="smallstack.activity"):
        assert buffer.wait_written(10)
    assert RequestLog.objects.count() == 1_000
    assert RequestLog.objects.filter(path="/r/49999/").exists()
    assert not RequestLog.objects.filter(path="/r/48999/").exists()
    drops = list(RequestLogDrop.objects.values_list("reason", "count"))
    assert drops == [(RequestLogDrop.BUFFER_FULL, burst - 1_000)]
    assert "dropped the 49000 oldest rows" in caplog.text


def test_the_writer_writes_on_its_interval_without_being_asked():
    buffer = RequestLogWriter(capacity=100, batch_size=100, flush_interval=0.2)
    buffer.add(sample(1))
    deadline = time.monotonic() + 5
    while not RequestLog.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert RequestLog.objects.filter(path="/r/1/").count() == 1


def test_a_full_batch_wakes_the_writer_before_the_interval():
    buffer = RequestLogWriter(capacity=1_000, batch_size=50, flush_interval=3600)
    for n in range(50):
        buffer.add(sample(n))
    deadline = time.monotonic() + 5
    while RequestLog.objects.count() < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert RequestLog.objects.count() == 50


def test_a_failed_write_is_counted_and_the_writer_carries_on(monkeypatch):
    buffer = RequestLogWriter(capacity=100, batch_size=10**9, flush_interval=3600)
    original = RequestLog.objects.bulk_create

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(RequestLog.objects, "bulk_create", broken)
    buffer.add(sample(1))
    buffer.add(sample(2))
    assert buffer.wait_written(10)
    assert buffer.failed == 2
    assert list(RequestLogDrop.objects.values_list("reason", "count")) == [
        (RequestLogDrop.WRITE_FAILED, 2)
    ]
    monkeypatch.setattr(RequestLog.objects, "bulk_create", original)
    buffer.add(sample(3))
    assert buffer.wait_written(10)
    assert list(RequestLog.objects.values_list("path", flat=True)) == ["/r/3/"]


# -- statistics and the card's data ------------------------------------------------------------


def test_the_card_data_from_constructed_rows():
    RequestLog.objects.bulk_create(
        [
            row(5, ms=10),  # current hour (15:00)
            row(10, status=500, ms=900, path="/boom/"),
            row(40, status=302, ms=20),  # 14:00 bucket
            row(60 * 3, status=404, ms=30),  # 12:00 bucket
            row(60 * 23 + 20, ms=40),  # 16:10 yesterday: the first bucket
            row(60 * 25, ms=50),  # older than a day: only in the total
        ]
    )
    data = async_to_sync(stats.card)(NOW)
    assert data["headline"] == "6 requests"
    assert data["detail"] == "5 in the last 24 h"
    assert len(data["series"]) == 24 and len(data["series_labels"]) == 24
    assert data["series_labels"][0] == "16:00" and data["series_labels"][-1] == "15:00"
    assert data["series"][-1] == 2 and data["series"][-2] == 1 and data["series"][-4] == 1
    assert data["series"][0] == 1 and sum(data["series"]) == 5
    extra = data["extra"]
    assert extra["status_classes"] == {"2xx": 2, "3xx": 1, "4xx": 1, "5xx": 1}
    assert extra["error_rate"] == 0.2
    assert extra["p95_ms"] == 900.0  # nearest rank: the 5th of 5
    assert data["status"] == "warning"  # 20 % of answers are 5xx


def test_the_card_with_no_rows():
    data = async_to_sync(stats.card)(NOW)
    assert data["headline"] == "0 requests" and data["detail"] == "0 in the last 24 h"
    assert data["series"] == [0] * 24 and data["extra"]["p95_ms"] is None
    assert data["extra"]["error_rate"] == 0.0 and data["status"] == "ok"


def test_percentile_nearest_rank():
    RequestLog.objects.bulk_create([row(1, ms=float(ms)) for ms in range(1, 101)])
    p = async_to_sync(stats.percentile)
    assert p(RequestLog.objects.all(), 0.95) == 95.0
    assert p(RequestLog.objects.all(), 0.5) == 50.0
    assert p(RequestLog.objects.none(), 0.95) is None


def test_top_and_slowest_paths_and_recent_errors():
    rows = [row(1, path="/fast/", ms=1.0) for _ in range(30)]
    rows += [row(2, path="/slow/", ms=float(ms)) for ms in range(100, 120)]
    rows += [row(3, path="/rare/", ms=5000.0) for _ in range(2)]  # too few for a p95
    rows += [row(4, path="/boom/", status=503), row(90, path="/old-boom/", status=500)]
    RequestLog.objects.bulk_create(rows)
    since = NOW - timedelta(hours=1)
    top = async_to_sync(stats.top_paths)(since)
    assert [(r["path"], r["requests"]) for r in top[:2]] == [("/fast/", 30), ("/slow/", 20)]
    slowest = async_to_sync(stats.slowest_paths)(since)
    assert [(r["path"], r["p95_ms"]) for r in slowest] == [("/slow/", 118.0), ("/fast/", 1.0)]
    errors = async_to_sync(stats.recent_errors)(since)
    assert [e.path for e in errors] == ["/boom/"]


# -- the page ----------------------------------------------------------------------------------


def test_the_page_is_for_staff_only(client, plain_user):
    response = client.get("/smallstack/activity/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/smallstack/activity/")
    client.force_login(plain_user)
    assert client.get("/smallstack/activity/").status_code == 403


def test_the_page_shows_the_window(staff_client):
    now = datetime.now(UTC)
    RequestLog.objects.bulk_create(
        [
            RequestLog(time=now - timedelta(minutes=5), method="GET", path="/popular/",
                       status=200, duration_ms=12.0),
            RequestLog(time=now - timedelta(minutes=6), method="GET", path="/popular/",
                       status=200, duration_ms=14.0),
            RequestLog(time=now - timedelta(minutes=7), method="POST", path="/broken/",
                       status=500, duration_ms=250.0),
            RequestLog(time=now - timedelta(hours=3), method="GET", path="/earlier/",
                       status=200, duration_ms=5.0),
        ]
    )  # fmt: skip
    RequestLogDrop.objects.create(time=now, count=7)
    page = staff_client.get("/smallstack/activity/").content.decode()
    assert "/popular/" in page and "/broken/" in page and "/earlier/" in page
    assert "33.33 %" not in page and "25.00 %" in page  # 1 of 4 is a 5xx
    assert "7 rows (bufferfull)" in page
    hour = staff_client.get("/smallstack/activity/?window=1h").content.decode()
    assert "/popular/" in hour and "/earlier/" not in hour and "33.33 %" in hour
    assert staff_client.get("/smallstack/activity/?window=7d").status_code == 200


def test_a_bad_window_is_a_400_saying_what_is_allowed(staff_client):
    response = staff_client.get("/smallstack/activity/?window=2w")
    assert response.status_code == 400
    assert response.content.decode() == "Unknown window '2w': use one of 1h, 24h, 7d."


# -- prune and seed ----------------------------------------------------------------------------


def test_prune_activity_keeps_the_retention_window():
    now = datetime.now(UTC)
    RequestLog.objects.bulk_create(
        [
            RequestLog(time=now - timedelta(days=d), method="GET", path=f"/{d}/", status=200,
                       duration_ms=1.0)
            for d in (40, 31, 29, 0)
        ]
    )  # fmt: skip
    RequestLogDrop.objects.create(time=now - timedelta(days=35), count=3)
    call_command("prune_activity")
    assert sorted(RequestLog.objects.values_list("path", flat=True)) == ["/0/", "/29/"]
    assert not RequestLogDrop.objects.exists()
    call_command("prune_activity", "--days", "1")
    assert list(RequestLog.objects.values_list("path", flat=True)) == ["/0/"]
    with override_settings(SMALLSTACK_ACTIVITY={"RETENTION_DAYS": 100}):
        assert conf.get("RETENTION_DAYS") == 100


def test_seed_requests_makes_a_plausible_day(staff_user):
    created = seed_requests(hours=24, now=NOW, seed=1)
    rows = RequestLog.objects.filter(time__gt=NOW - timedelta(hours=24), time__lte=NOW)
    assert created == RequestLog.objects.count() == rows.count() > 24 * 100
    data = async_to_sync(stats.card)(NOW)
    assert all(count > 0 for count in data["series"])
    assert max(data["series"]) > 1.5 * min(data["series"])  # busier by day than by night
    classes = data["extra"]["status_classes"]
    assert classes["2xx"] > classes["3xx"] > 0 and classes["4xx"] > 0 and classes["5xx"] > 0
    assert 0 < data["extra"]["error_rate"] < 0.02
    assert RequestLog.objects.exclude(token_prefix="").exists()
    assert RequestLog.objects.filter(user_id=staff_user.pk).exists()
    assert seed_requests(hours=0) == 0


def test_seed_requests_is_reproducible():
    seed_requests(hours=2, now=NOW, seed=7)
    first = list(RequestLog.objects.order_by("time").values_list("time", "path", "status"))
    RequestLog.objects.all().delete()
    seed_requests(hours=2, now=NOW, seed=7)
    assert list(RequestLog.objects.order_by("time").values_list("time", "path", "status")) == first


# -- helpers used above ------------------------------------------------------------------------


def test_resolved_user_id_of_an_anonymous_request():
    from django.contrib.auth.models import AnonymousUser

    request = HttpRequest()
    assert resolved_user_id(request) is None
    request.user = AnonymousUser()
    assert resolved_user_id(request) is None
