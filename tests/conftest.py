"""Fixtures shared by the whole suite."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import caches

from smallstack import dashboard, tokens
from smallstack.displays import DashboardWidget
from smallstack.engine import engine
from smallstack.registry import Registration

_groups = itertools.count()


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's test database with its WAL side files (Django deletes only the file)."""
    import os

    from django.conf import settings

    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if name and os.path.basename(name).startswith("test-db-"):
        for suffix in ("", "-wal", "-shm", ".serving"):  # .serving: smallstack/backups/serving.py
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name + suffix)
    backups = str(getattr(settings, "SMALLSTACK_BACKUPS", {}).get("BACKUP_DIR") or "")
    if os.path.basename(backups).startswith("test-backups-"):
        import shutil

        shutil.rmtree(backups, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _request_log_discarded(django_db_setup) -> Iterator[None]:
    """Rows the request log middleware buffered during the run are dropped before the test
    database goes away (instead of the exit hook writing them into a missing table)."""
    yield
    from smallstack.activity.writer import writer

    writer.wait_written(5)
    writer.reset()


@pytest.fixture(autouse=True)
def _fresh_engine() -> Iterator[None]:
    """Every test starts with an empty cache and no evaluation in flight."""
    caches["default"].clear()
    engine.reset()
    yield
    engine.reset()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real uvicorn process over its own migrated, seeded database; one per test module."""
    from tests.servers import LiveServer, prepare_data_dir

    live = LiveServer(prepare_data_dir(tmp_path_factory.mktemp("uvicorn"))).start()
    yield live
    live.stop()


@pytest.fixture
def group() -> str:
    """A group name no other test uses, to scope evaluations to this test's widgets."""
    return f"test-group-{next(_groups)}"


@pytest.fixture
def register(group: str) -> Iterator[Callable[..., Registration]]:
    """Register widgets for one test (in its own group by default); unregistered afterwards."""
    keys: list[str] = []

    def _register(widget: DashboardWidget, **options) -> Registration:
        options.setdefault("group", group)
        registration = dashboard.register(widget, **options)
        keys.append(registration.key)
        return registration

    yield _register
    for key in keys:
        if key in dashboard.registry:
            dashboard.unregister(key)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)


@pytest.fixture
def staff_key(staff_user) -> str:
    """An API key of the staff user (send it with :func:`bearer`)."""
    return tokens.create_token(staff_user, "tests")[1]


def bearer(key: str) -> dict[str, str]:
    """The test client's keyword for an ``Authorization: Bearer`` header."""
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture(autouse=True)
def _tokens_forgotten() -> Iterator[None]:
    """No test sees the key verifications another test left in memory."""
    tokens.forget_verified()
    yield
    tokens.forget_verified()


@pytest.fixture
def staff_client(client, staff_user):
    """Django's test client, signed in as a staff member."""
    client.force_login(staff_user)
    return client


@pytest.fixture
async def staff_async_client(async_client, staff_user):
    """Django's async test client (through the ASGI handler), signed in as a staff member."""
    await async_client.aforce_login(staff_user)
    return async_client


@pytest.fixture
def plain_user(django_user_model):
    return django_user_model.objects.create_user("plain", password="pw-plain-123")


def require_binary(name: str) -> str:
    """Path of a system binary a test needs: skipped locally if absent, a failure in CI."""
    import os
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (tests/postgres.py): initdb and pg_ctl in a
    temporary directory, on 127.0.0.1. Skipped locally without the binaries; a failure in CI."""
    from tests.postgres import PostgresServer, require_postgres

    server = PostgresServer(require_postgres()).start()
    yield server
    server.stop()


#: ``SMALLSTACK_TEST_DATABASE=postgresql`` runs the suite's database on :func:`postgres_server`
#: (``make test`` does so for the files in its ``POSTGRES_TESTS``).
ON_POSTGRES = os.environ.get("SMALLSTACK_TEST_DATABASE", "sqlite") == "postgresql"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request) -> None:
    """pytest-django's hook before the test database is created: with ``ON_POSTGRES``, the
    default database becomes the session's PostgreSQL server (psycopg 3, project settings)."""
    if not ON_POSTGRES:
        return
    from django.conf import settings
    from django.db import connections

    from project import services

    server = request.getfixturevalue("postgres_server")
    config = services.database(server.url("postgres"), data_dir=settings.DATA_DIR)
    config["TEST"] = {"NAME": f"test_smallstack_{os.getpid()}"}
    connections.close_all()
    default = settings.DATABASES["default"]
    default.clear()
    default.update(config)
    # Forget connection objects and the settings Django already derived from the old engine.
    connections.__dict__.pop("settings", None)  # a cached_property
    connections._settings = None
    with contextlib.suppress(AttributeError):
        delattr(connections._connections, "default")
    assert connections["default"].vendor == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def _postgres_test_database_released(django_db_setup, request) -> Iterator[None]:
    """Before the test database is dropped, end the sessions this process's threads still hold,
    so the drop does not fail: e.g. asgiref's thread-sensitive thread keeps the connection an
    async test's ``await Model.objects.acreate()`` opened (no request ends there to close it),
    and Django cannot close another thread's connection."""
    yield
    if not ON_POSTGRES:
        return
    from django.db import connections

    name = connections["default"].settings_dict["NAME"]
    with request.getfixturevalue("postgres_server").connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``sqlite_only`` are skipped on PostgreSQL (their reason says why)."""
    if not ON_POSTGRES:
        return
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else "only meaningful on SQLite"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    """The URL (``DATABASE_URL`` form) of a new, empty database on that server; dropped after."""
    name = f"test_{next(_groups)}_{int(time.time() * 1000)}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


# -- a real browser over a real server -------------------------------------------------------------

#: Headless Chromium as a container allows it, without the browser's own background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def dashboard_server(tmp_path):
    """A uvicorn server with the live test widgets (tests/liveapp); and their value file."""
    from tests.servers import LiveServer, prepare_data_dir

    value_file = tmp_path / "value.txt"
    value_file.write_text("before")
    environ = prepare_data_dir(
        tmp_path / "data",
        DJANGO_SETTINGS_MODULE="tests.live_settings",
        SMALLSTACK_LIVE_VALUE_FILE=str(value_file),
        SMALLSTACK_LIVE_LATE_SECONDS="1.5",
        SMALLSTACK_RENDER_BUDGET="0.3",
    )
    server = LiveServer(environ).start()
    yield server, value_file
    server.stop()


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    executable = require_binary("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def page_failures(page) -> list[str]:
    """A list that collects the page's script errors and its 4xx/5xx responses as they come."""
    failed: list[str] = []
    page.on("pageerror", lambda error: failed.append(str(error)))
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    return failed
