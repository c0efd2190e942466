"""Status (smallstack/heartbeat/): the checks and the hook, each check failing on its own, the
card, the heartbeat command and pruning, the pages and their access, the health endpoints
in-process, the demo seed and the settings' system checks."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.cache.backends.redis import RedisCache
from django.core.management import CommandError, call_command
from django.db.utils import ConnectionHandler, OperationalError
from django.test import override_settings
from django.utils import timezone

from smallstack import dashboard, heartbeat
from smallstack.heartbeat import checks as system_checks
from smallstack.heartbeat import probes, service
from smallstack.heartbeat.models import Heartbeat, MaintenanceWindow
from smallstack.heartbeat.seed import seed_heartbeats
from tests.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

BUILTIN = {"database", "cache", "channel_layer", "disk"}
STATUS_ITEM = "/api/dashboard/widgets/smallstack.status/"


def card(client) -> dict:
    response = client.get(STATUS_ITEM)
    assert response.status_code == 200, response.content
    item = response.json()
    assert item["state"] == "ok", item
    return item["data"]


def beat(minutes_ago: float, status: str = "ok", **checks) -> Heartbeat:
    return Heartbeat.objects.create(
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        status=status,
        checks=checks or {"database": {"status": status, "ms": 1.0, "message": ""}},
        interval=60,
    )


def run() -> dict[str, probes.CheckResult]:
    return {r.name: r for r in asyncio.run(probes.run_checks())}


# -- breaking one dependency at a time ------------------------------------------------------


@pytest.fixture
def broken_database(monkeypatch, tmp_path):
    """The checks' database points at a path that cannot be opened; the site's own is fine."""
    missing = tmp_path / "no-such-dir" / "db.sqlite3"
    handler = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(missing)}}
    )
    monkeypatch.setattr(probes, "connections", handler)
    yield
    for conn in handler.all(initialized_only=True):
        conn.close()


@pytest.fixture
def broken_cache(monkeypatch):
    """The checks' cache is a Redis nobody listens on."""
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {}})
    monkeypatch.setattr(probes, "caches", {"default": cache})


@pytest.fixture
def unreachable_redis():
    url = f"redis://127.0.0.1:{free_port()}/0"
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_connect_timeout": 0.5}]},
        }
    }
    with override_settings(REDIS_URL=url, CHANNEL_LAYERS=layers):
        yield url


@pytest.fixture
def low_disk():
    with override_settings(SMALLSTACK_HEARTBEAT={"DISK_WARNING_MB": 10**12}):
        yield


@pytest.fixture
def registered():
    names: list[str] = []

    def add(name, func, **options):
        heartbeat.register_check(name, func, **options)
        names.append(name)

    yield add
    for name in names:
        heartbeat.unregister_check(name)


def test_every_builtin_check_passes_on_a_healthy_site():
    results = run()
    assert set(results) == BUILTIN
    assert {r.status for r in results.values()} == {"ok"}, results
    assert all(r.ms >= 0 for r in results.values())
    assert "GB free" in results["disk"].message


def test_channel_layer_check_is_skipped_without_a_layer():
    with override_settings(CHANNEL_LAYERS={}):
        assert set(run()) == BUILTIN - {"channel_layer"}


@pytest.mark.parametrize(
    ("fixture", "name", "status"),
    [
        ("broken_database", "database", "error"),
        ("broken_cache", "cache", "error"),
        ("unreachable_redis", "channel_layer", "warning"),  # live push only: degraded
        ("low_disk", "disk", "warning"),
    ],
)
def test_each_check_fails_on_its_own(request, fixture, name, status):
    request.getfixturevalue(fixture)
    results = run()
    assert results[name].status == status, results[name]
    assert results[name].message
    others = {n: r.status for n, r in results.items() if n != name}
    assert set(others.values()) == {"ok"}, others


@pytest.mark.parametrize(
    ("fixture", "headline", "status"),
    [
        ("broken_database", "Down: database", "error"),
        ("broken_cache", "Down: cache", "error"),
        ("unreachable_redis", "Degraded: channel_layer", "warning"),
        ("low_disk", "Degraded: disk", "warning"),
    ],
)
def test_a_failing_check_degrades_the_card_but_not_the_page(
    request, staff_client, fixture, headline, status
):
    beat(1)
    request.getfixturevalue(fixture)
    data = card(staff_client)
    assert data["headline"] == headline and data["status"] == status
    assert data["extra"]["checks"][headline.split(": ")[1]]["status"] == status
    page = staff_client.get("/smallstack/?wait=1")
    assert page.status_code == 200
    assert headline in page.content.decode()
    assert "Users" in page.content.decode()  # the other cards are drawn as usual


def test_a_failing_database_fails_ready_naming_it(client, broken_database):
    response = client.get("/health/ready/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["failed"] == ["database"]
    assert "OperationalError" in body["checks"]["database"]["message"]
    assert "Traceback" not in response.content.decode()


def test_an_unreachable_redis_fails_ready_naming_it(client, unreachable_redis):
    started = time.perf_counter()
    response = client.get("/health/ready/")
    assert time.perf_counter() - started < 3
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"]["status"] == "ok"
    assert unreachable_redis.rsplit("/", 1)[0] in body["checks"]["redis"]["message"]


@pytest.mark.parametrize("fixture", ["broken_cache", "low_disk"])
def test_ready_only_depends_on_the_database_and_redis(request, client, fixture):
    request.getfixturevalue(fixture)
    assert client.get("/health/ready/").status_code == 200


# -- the hook ------------------------------------------------------------------------------------


def test_registered_checks_sync_async_failing_and_hanging(registered):
    async def slow():
        await asyncio.sleep(5)

    async def degraded():
        return ("warning", "queue is 900 deep")

    def broken():
        raise ConnectionError("payments API refused")

    def exits():
        sys.exit(3)

    registered("payments", broken)
    registered("queue", degraded)
    registered("search", slow, timeout=0.2)
    registered("mail", lambda: "ok")
    registered("odd", lambda: 42)
    registered("quitter", exits)
    started = time.perf_counter()
    results = run()
    assert time.perf_counter() - started < 2.5  # concurrently, each under its own timeout
    assert results["payments"].status == "error"
    assert results["payments"].message == "ConnectionError: payments API refused"
    assert (results["queue"].status, results["queue"].message) == ("warning", "queue is 900 deep")
    assert results["search"].message == "timed out after 0.2 s"
    assert results["mail"].status == "ok"
    assert results["odd"].status == "error" and "not a status" in results["odd"].message
    assert results["quitter"].message == "SystemExit: 3"
    assert {results[n].status for n in BUILTIN} == {"ok"}


def test_a_non_critical_check_degrades_instead_of_failing(registered):
    def broken():
        raise ConnectionError("search index unreachable")

    async def hangs():
        await asyncio.sleep(5)

    registered("search", broken, critical=False)
    registered("reports", hangs, timeout=0.1, critical=False)
    registered("payments", broken)
    results = run()
    assert (results["search"].status, results["reports"].status) == ("warning", "warning")
    assert results["search"].message == "ConnectionError: search index unreachable"
    assert results["reports"].message == "timed out after 0.1 s"
    assert results["payments"].status == "error"


def test_a_registered_check_shows_on_the_card(registered, staff_client):
    beat(1)
    registered("payments", lambda: ("error", "refused"))
    data = card(staff_client)
    assert data["headline"] == "Down: payments"
    assert data["extra"]["checks"]["payments"]["message"] == "refused"


def test_register_check_refuses_bad_arguments():
    with pytest.raises(ValueError):
        heartbeat.register_check("", lambda: "ok")
    with pytest.raises(TypeError):
        heartbeat.register_check("x", "not callable")
    with pytest.raises(ValueError):
        heartbeat.register_check("x", lambda: "ok", timeout=0)


# -- the card --------------------------------------------------------------------------------


def test_card_without_heartbeats_says_no_data(staff_client):
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("No data", "unknown")
    assert data["detail"] == "no heartbeat recorded yet"


def test_card_with_heartbeats_shows_uptime(staff_client):
    for minute in range(60, 0, -1):
        beat(minute, "error" if minute in (30, 29, 28) else "ok")
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("All systems operational", "ok")
    # 3 of 60 measured minutes down (the hours before the first beat are unknown).
    assert data["detail"] == "95.00 % uptime (24 h)"
    assert data["extra"]["uptime_24h"]["down_seconds"] == pytest.approx(180, abs=1)


def test_card_under_maintenance(staff_client):
    beat(1)
    now = timezone.now()
    MaintenanceWindow.objects.create(start=now - timedelta(minutes=5), end=now + timedelta(hours=1))
    data = card(staff_client)
    assert (data["headline"], data["status"]) == ("Under maintenance", "warning")


def test_card_is_in_the_heartbeat_app_and_monitoring_group(staff_client):
    def keys(query):
        return [
            w["key"] for w in staff_client.get(f"/api/dashboard/widgets/?{query}").json()["widgets"]
        ]

    assert keys("app=heartbeat") == ["smallstack.status"]
    assert "smallstack.status" in keys("group=Monitoring")
    assert "smallstack.status" not in keys("app=smallstack_users")
    registration = dashboard.registry.get("smallstack.status")
    assert registration.widget.refresh_interval and registration.widget.refresh_interval <= 10
    assert registration.app_label == "heartbeat" and registration.widget.order == 10


def test_builtin_widgets_switch_is_honoured():
    config = apps.get_app_config("heartbeat")
    dashboard.unregister("smallstack.status")
    try:
        with override_settings(SMALLSTACK_DASHBOARD={"BUILTIN_WIDGETS": False}):
            config.ready()
        assert "smallstack.status" not in dashboard.registry
    finally:
        if "smallstack.status" not in dashboard.registry:
            config.ready()
    assert "smallstack.status" in dashboard.registry


# -- the command -------------------------------------------------------------------------------


def test_command_records_one_heartbeat(capsys):
    call_command("heartbeat")
    [row] = Heartbeat.objects.all()
    assert row.status == "ok" and set(row.checks) == BUILTIN
    assert row.checks["database"]["status"] == "ok" and row.checks["database"]["ms"] >= 0
    assert row.interval == 60.0
    assert "ok" in capsys.readouterr().out


def test_command_records_failures_and_maintenance(broken_cache):
    call_command("heartbeat")
    now = timezone.now()
    MaintenanceWindow.objects.create(start=now - timedelta(minutes=1), end=now + timedelta(hours=1))
    call_command("heartbeat")
    first, second = Heartbeat.objects.order_by("created_at")
    assert first.status == "error" and first.checks["cache"]["status"] == "error"
    assert second.status == "maintenance" and second.checks["cache"]["status"] == "error"


def test_command_prunes_old_heartbeats():
    old, kept = beat(31 * 24 * 60), beat(29 * 24 * 60)
    call_command("heartbeat")
    ids = set(Heartbeat.objects.values_list("id", flat=True))
    assert old.id not in ids and kept.id in ids and len(ids) == 2
    call_command("heartbeat", "--retention-days", "1")
    assert kept.id not in set(Heartbeat.objects.values_list("id", flat=True))


def test_command_refuses_a_bad_loop():
    with pytest.raises(CommandError):
        call_command("heartbeat", "--loop", "0")


# -- pages --------------------------------------------------------------------------------------


def test_status_page_is_staff_only(client, plain_user):
    response = client.get("/smallstack/status/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(plain_user)
    assert client.get("/smallstack/status/").status_code == 403


def test_status_page_shows_checks_uptime_timeline_and_windows(staff_client):
    now = timezone.now()
    MaintenanceWindow.objects.create(
        start=now - timedelta(hours=3), end=now - timedelta(hours=2), note="Kernel upgrade"
    )
    beat(2, "ok")
    beat(1, "warning", disk={"status": "warning", "ms": 0.3, "message": "0.5 GB free"})
    page = staff_client.get("/smallstack/status/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-check="disk"' in html and "0.5 GB free" in html
    assert re.search(r'data-span="24 h".*?class="uptime">100.00 %<', html, re.S)
    assert len(re.findall(r'<rect class="tl-', html)) == 96
    assert 'class="tl-degraded"' in html and 'class="tl-unknown"' in html
    assert "Kernel upgrade" in html


def test_status_page_without_heartbeats(staff_client):
    html = staff_client.get("/smallstack/status/").content.decode()
    assert "No heartbeat recorded yet" in html and "No current heartbeat" in html


def test_public_page_shows_state_and_uptime_but_no_check_names(client):
    beat(2)
    beat(1, "error", cache={"status": "error", "ms": 2000.0, "message": "timed out after 2 s"})
    response = client.get("/status/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Service disruption" in html and "%" in html
    for secret in ("cache", "database", "disk", "channel_layer", "timed out", "Traceback"):
        assert secret not in html.lower(), secret
    assert "sessionid" not in response.cookies


def test_public_page_answers_while_the_cache_is_unreachable(client, caplog):
    beat(1)
    unreachable = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.5},
        }
    }
    with override_settings(CACHES=unreachable):
        response = client.get("/status/")
    assert response.status_code == 200
    assert "All systems operational" in response.content.decode()
    assert "Public status page: cache unavailable (ConnectionError)" in caplog.text


def test_public_page_can_be_switched_off(client):
    with override_settings(SMALLSTACK_HEARTBEAT={"PUBLIC_PAGE": False}):
        assert client.get("/status/").status_code == 404


# -- health endpoints in-process ---------------------------------------------------------------


def test_live_answers_without_queries_or_cookies(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/live/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert not response.cookies and response["Cache-Control"] == "no-store"


def test_ready_answers_200_with_the_database_and_no_redis_configured(client):
    response = client.get("/health/ready/", HTTP_HOST="10.0.0.7")  # not in ALLOWED_HOSTS
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and set(body["checks"]) == {"database"}
    assert not response.cookies


async def test_concurrent_ready_requests_share_one_probe(monkeypatch):
    from smallstack.heartbeat import health

    calls = 0
    real = health.readiness

    async def counted():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return await real()

    monkeypatch.setattr(health, "readiness", counted)
    responses = await asyncio.gather(*(health.ready_response() for _ in range(20)))
    assert {r.status_code for r in responses} == {200} and calls == 1


# -- seed and settings ---------------------------------------------------------------------------


def test_seed_heartbeats_makes_a_realistic_day():
    created = seed_heartbeats(days=1, seed=7)
    assert 1400 <= created == Heartbeat.objects.count() < 1440
    statuses = set(Heartbeat.objects.values_list("status", flat=True))
    assert statuses == {"ok", "warning", "error", "maintenance"}
    assert MaintenanceWindow.objects.count() == 1
    summary = asyncio.run(service.asummary())
    day = summary.uptimes["24 h"]
    assert 0.99 < day.ratio < 1
    assert day.unknown > 600 and day.maintenance >= 1200 and day.down > 0
    assert summary.latest_is_current
    with pytest.raises(ValueError):
        seed_heartbeats(days=0)


def test_settings_are_checked():
    with override_settings(SMALLSTACK_HEARTBEAT={"INTERVALL": 5, "CHECK_TIMEOUT": -1}):
        ids = {m.id for m in system_checks.check_settings()}
    assert ids == {"heartbeat.E002", "heartbeat.E003"}
    with override_settings(SMALLSTACK_HEARTBEAT=[]):
        assert [m.id for m in system_checks.check_settings()] == ["heartbeat.E001"]
    with override_settings(SMALLSTACK_HEARTBEAT={"DISK_WARNING_MB": 10, "PUBLIC_PAGE": False}):
        assert system_checks.check_settings() == []


async def test_uptime_maths_runs_off_the_event_loop(monkeypatch):
    from smallstack.heartbeat import uptime

    threads = []
    real = uptime.uptime

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(uptime, "uptime", spy)
    summary = await service.asummary()
    assert len(threads) == 3 and threading.current_thread() not in threads
    assert set(summary.uptimes) == {"24 h", "7 d", "30 d"}


def test_since_keeps_the_beat_before_the_start():
    from smallstack.heartbeat.uptime import Beat

    now = timezone.now()
    beats = [Beat(now - timedelta(minutes=m), "ok", 60) for m in (30, 20, 10, 0)]
    assert service.since(beats, now - timedelta(minutes=15)) == beats[1:]
    assert service.since(beats, now - timedelta(minutes=60)) == beats
    assert service.since(beats, now + timedelta(minutes=1)) == beats[3:]


def test_the_card_waits_for_the_slowest_registered_check(registered):
    widget = dashboard.registry.get("smallstack.status").widget
    default = widget.timeout
    registered("slow-report", lambda: "ok", timeout=default + 10)
    assert widget.timeout == (default + 10) + 1.5  # that check's deadline, plus the read


def test_the_loop_keeps_a_beat_the_database_refused_and_writes_it_later(monkeypatch):
    from smallstack.heartbeat.management.commands.heartbeat import Command

    manager = type(Heartbeat.objects)
    real = manager.bulk_create
    refusals = iter([True])

    def flaky(self, rows, *args, **kwargs):
        if next(refusals, False):
            raise OperationalError("database is locked")
        return real(self, rows, *args, **kwargs)

    monkeypatch.setattr(manager, "bulk_create", flaky)
    command = Command()
    command.pending, command.retention = [], None
    assert command.beat(5.0) is False and len(command.pending) == 1
    assert Heartbeat.objects.count() == 0
    assert command.beat(5.0) is True and command.pending == []
    assert Heartbeat.objects.count() == 2
    with pytest.raises(CommandError):
        monkeypatch.setattr(manager, "bulk_create", lambda *a, **k: 1 / 0)
        call_command("heartbeat")


@pytest.mark.redis
def test_checks_against_a_real_redis_while_the_shared_layer_receives_elsewhere(tmp_path, client):
    """The server's consumers receive on the process's layer on their loop; the channel layer
    check (on another loop) still passes, and ready pings that Redis."""
    from channels.layers import get_channel_layer

    from tests.conftest import require_binary
    from tests.test_live_redis import RedisServer

    redis = RedisServer(require_binary("redis-server"), tmp_path).start()
    layers = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis.url]},
        }
    }
    try:
        with override_settings(CHANNEL_LAYERS=layers, REDIS_URL=redis.url):
            shared = get_channel_layer()
            receiving = threading.Event()

            async def consume():
                channel = await shared.new_channel()
                receiving.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shared.receive(channel), 2)

            consumer = threading.Thread(target=asyncio.run, args=(consume(),))
            consumer.start()
            assert receiving.wait(5)
            time.sleep(0.2)
            results = run()
            ready = client.get("/health/ready/")
            consumer.join(5)
    finally:
        redis.stop()
    assert results["channel_layer"].status == "ok", results["channel_layer"]
    assert ready.status_code == 200 and ready.json()["checks"]["redis"]["status"] == "ok"
