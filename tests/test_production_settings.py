"""Production settings from the environment (project/settings.py, project/services.py).

Import-time rules are checked in fresh processes with only the variables a test gives (plus
PATH), as a service manager would start them; the database and cache builders also directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured

from project import services
from tests.servers import ROOT, LiveServer
from tests.test_deploy_files import _example

SECRET = "a-test-secret-key-that-is-long-and-random-enough-0123456789-abcdefghijkl"
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": SECRET, "ALLOWED_HOSTS": "dashboard.example.com"}

SHOW = """
import json
from project import settings as s
print(json.dumps({
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": s.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_HSTS_PRELOAD": s.SECURE_HSTS_PRELOAD,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_PROXY_SSL_HEADER": getattr(s, "SECURE_PROXY_SSL_HEADER", None),
    "CACHES": s.CACHES,
    "LOCK_URL": s.SMALLSTACK_DASHBOARD["LOCK_URL"],
    "DATABASES": s.DATABASES,
    "CHANNEL_LAYERS": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "BREAKER": [s.SMALLSTACK_DASHBOARD[k] for k in ("BREAKER_FAILURES", "BREAKER_COOLDOWN")],
    "METRICS_ALLOWED_IPS": s.SMALLSTACK_DASHBOARD["METRICS_ALLOWED_IPS"],
}, default=str))
"""


def _environ(tmp_path: Path, **env: str) -> dict[str, str]:
    """Only ``env``, PATH and a data directory of the test's own."""
    import os

    return {"PATH": os.environ["PATH"], **env, "SMALLSTACK_DATA_DIR": str(tmp_path / "var")}


def settings_in(tmp_path: Path, **env: str) -> dict:
    """project.settings as a process with only ``env`` would see it."""
    completed = subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env=_environ(tmp_path, **env),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def refused(tmp_path: Path, **env: str) -> str:
    """The ImproperlyConfigured message a process with ``env`` stops with."""
    completed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_environ(tmp_path, **{"DJANGO_SETTINGS_MODULE": "project.settings", **env}),
        capture_output=True,
        text=True,
    )
    assert completed.returncode != 0, completed.stdout
    [line] = [x for x in completed.stderr.splitlines() if x.startswith("django.core.exceptions")]
    return line


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=_environ(tmp_path, **{"DJANGO_SETTINGS_MODULE": "project.settings", **env}),
        capture_output=True,
        text=True,
    )


# -- DEBUG off refuses an unsafe start ---------------------------------------------------------


def test_debug_off_refuses_to_start_without_a_secret_key(tmp_path):
    message = refused(tmp_path, DEBUG="0", ALLOWED_HOSTS="dashboard.example.com")
    assert "ImproperlyConfigured" in message and "SECRET_KEY is not set" in message
    # Unset DEBUG counts as off.
    assert "SECRET_KEY" in refused(tmp_path, ALLOWED_HOSTS="dashboard.example.com")
    assert settings_in(tmp_path, DEBUG="1")["SESSION_COOKIE_SECURE"] is False  # DEBUG: fine


def test_debug_off_refuses_any_host(tmp_path):
    for hosts in ("*", "dashboard.example.com,*"):
        message = refused(tmp_path, **{**PRODUCTION, "ALLOWED_HOSTS": hosts})
        assert "ALLOWED_HOSTS contains '*'" in message
    settings_in(tmp_path, DEBUG="1", ALLOWED_HOSTS="*")  # development may answer any host


def test_bad_numbers_are_refused_with_the_variables_name(tmp_path):
    assert "SECURE_HSTS_SECONDS='a year' is not a whole number" in refused(
        tmp_path, **PRODUCTION, SECURE_HSTS_SECONDS="a year"
    )
    assert "DATABASE_POOL_MAX='-1' must be 0 or more" in refused(
        tmp_path, **PRODUCTION, DATABASE_POOL_MAX="-1"
    )


def test_the_circuit_breaker_follows_the_environment(tmp_path):
    assert settings_in(tmp_path, **PRODUCTION)["BREAKER"] == [5, 30.0]
    tuned = settings_in(
        tmp_path, **PRODUCTION, SMALLSTACK_BREAKER_FAILURES="3", SMALLSTACK_BREAKER_COOLDOWN="90"
    )
    assert tuned["BREAKER"] == [3, 90.0]
    assert (
        settings_in(tmp_path, **PRODUCTION, SMALLSTACK_BREAKER_FAILURES="0")["BREAKER"][0] is None
    )
    assert "SMALLSTACK_BREAKER_COOLDOWN='0' must be 0.001 or more" in refused(
        tmp_path, **PRODUCTION, SMALLSTACK_BREAKER_COOLDOWN="0"
    )


def test_the_metrics_allow_list_follows_the_environment(tmp_path):
    assert settings_in(tmp_path, **PRODUCTION)["METRICS_ALLOWED_IPS"] == []
    allowed = settings_in(
        tmp_path, **PRODUCTION, SMALLSTACK_METRICS_ALLOWED_IPS="10.0.0.5, 192.168.10.0/24"
    )
    assert allowed["METRICS_ALLOWED_IPS"] == ["10.0.0.5", "192.168.10.0/24"]


# -- HTTPS switches ------------------------------------------------------------------------------


def test_https_settings_follow_the_environment(tmp_path):
    default = settings_in(tmp_path, **PRODUCTION)
    assert default["SESSION_COOKIE_SECURE"] is default["CSRF_COOKIE_SECURE"] is True
    assert default["SECURE_HSTS_SECONDS"] == 0 and default["SECURE_SSL_REDIRECT"] is False
    assert default["SECURE_PROXY_SSL_HEADER"] is None  # no proxy named: never trust the header

    switched = settings_in(
        tmp_path,
        **PRODUCTION,
        SECURE_COOKIES="0",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="true",
        SECURE_SSL_REDIRECT="yes",
        BEHIND_PROXY="1",
    )
    assert switched["SESSION_COOKIE_SECURE"] is switched["CSRF_COOKIE_SECURE"] is False
    assert switched["SECURE_HSTS_SECONDS"] == 3600
    assert switched["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is switched["SECURE_HSTS_PRELOAD"] is True
    assert switched["SECURE_SSL_REDIRECT"] is True
    assert switched["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # DEBUG on: plain-HTTP cookies unless asked otherwise.
    assert settings_in(tmp_path, DEBUG="1", SECURE_COOKIES="1")["SESSION_COOKIE_SECURE"] is True


def test_the_example_production_environment_passes_check_deploy_without_a_word(tmp_path):
    environ = {
        **{name: value for name, value in _example().items() if value},
        "BACKUP_DIR": str(tmp_path / "backups"),
    }
    # Before collectstatic: the one thing to say is that the static files are missing.
    before = manage(tmp_path, "check", "--deploy", **environ)
    assert before.returncode == 0, before.stderr
    assert re.findall(r"\((\w+\.[WE]\d+)\)", before.stderr + before.stdout) == ["project.W001"]
    assert manage(tmp_path, "collectstatic", "--noinput", "-v0", **environ).returncode == 0
    after = manage(tmp_path, "check", "--deploy", **environ)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "System check identified no issues (0 silenced).", after
    assert after.stderr == ""


# -- static files ----------------------------------------------------------------------------


def test_a_server_started_without_collected_static_files_says_so(tmp_path):
    environ = _environ(tmp_path, DJANGO_SETTINGS_MODULE="project.settings", **PRODUCTION)
    environ["ALLOWED_HOSTS"] = "127.0.0.1"
    (tmp_path / "var").mkdir()
    server = LiveServer(environ).start()
    try:
        css = httpx.get(f"{server.url}/static/smallstack/dashboard.css")
    finally:
        server.stop()
    assert css.status_code == 404  # unstyled pages, as the warning says ...
    assert "(project.W001) " in server.log() and "collectstatic" in server.log(), server.log()

    assert manage(tmp_path, "collectstatic", "--noinput", "-v0", **environ).returncode == 0
    (tmp_path / "var" / f"uvicorn-{server.port}.log").unlink()
    server = LiveServer(environ, port=server.port).start()
    try:
        css = httpx.get(f"{server.url}/static/smallstack/dashboard.css")
    finally:
        server.stop()
    assert css.status_code == 200 and "project.W001" not in server.log(), server.log()


def test_the_static_check_is_quiet_in_development_and_names_what_is_missing(tmp_path, settings):
    from django.core import checks

    from project.checks import check_static_files_collected

    settings.STATIC_ROOT = str(tmp_path / "static")
    settings.DEBUG, settings.SERVESTATIC_USE_FINDERS = False, False
    [warning] = check_static_files_collected()
    assert warning.id == "project.W001" and warning.level == checks.WARNING
    assert "smallstack/dashboard.css" in warning.msg or "admin/css/base.css" in warning.msg
    settings.DEBUG = True
    assert check_static_files_collected() == []


# -- cache and locks -----------------------------------------------------------------------------


def test_redis_url_selects_the_redis_cache_and_the_locks(tmp_path):
    local = settings_in(tmp_path, **PRODUCTION)
    assert local["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert local["LOCK_URL"] == ""

    redis = "redis://10.0.0.5:6379/2"
    shared = settings_in(tmp_path, **PRODUCTION, REDIS_URL=redis)
    assert shared["CACHES"]["default"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis,
        "OPTIONS": services.REDIS_CACHE_OPTIONS,
    }
    assert shared["LOCK_URL"] == redis
    assert shared["CHANNEL_LAYERS"] == "channels_redis.core.RedisChannelLayer"

    # CACHE_URL wins for the cache: another Redis, or each process's memory.
    elsewhere = settings_in(tmp_path, **PRODUCTION, REDIS_URL=redis, CACHE_URL="redis://c:6379/0")
    assert elsewhere["CACHES"]["default"]["LOCATION"] == "redis://c:6379/0"
    assert elsewhere["LOCK_URL"] == redis
    own = settings_in(tmp_path, **PRODUCTION, REDIS_URL=redis, CACHE_URL="locmem://")
    assert own["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    only_cache = settings_in(tmp_path, **PRODUCTION, CACHE_URL="rediss://c:6380/1")
    assert only_cache["LOCK_URL"] == "rediss://c:6380/1"
    assert only_cache["CHANNEL_LAYERS"] == "channels.layers.InMemoryChannelLayer"


def test_an_unknown_cache_url_is_refused():
    with pytest.raises(ImproperlyConfigured, match="memcached://m:11211"):
        services.cache("memcached://m:11211", "")


# -- the database --------------------------------------------------------------------------------

PG = "postgres://app:secret@db.internal:5432/smallstack"


def test_postgres_url_with_the_pool_or_persistent_connections(tmp_path):
    plain = settings_in(tmp_path, **PRODUCTION, DATABASE_URL=PG)["DATABASES"]["default"]
    assert plain["ENGINE"] == "django.db.backends.postgresql"
    assert (plain["NAME"], plain["HOST"], plain["USER"]) == ("smallstack", "db.internal", "app")
    assert plain["CONN_MAX_AGE"] == 0 and "pool" not in plain.get("OPTIONS", {})

    pooled = settings_in(
        tmp_path,
        **PRODUCTION,
        DATABASE_URL=PG,
        DATABASE_POOL_MAX="12",
        DATABASE_POOL_MIN="2",
        DATABASE_POOL_TIMEOUT="4.5",
    )["DATABASES"]["default"]
    assert pooled["OPTIONS"]["pool"] == {"min_size": 2, "max_size": 12, "timeout": 4.5}
    assert pooled["CONN_MAX_AGE"] == 0

    persistent = settings_in(tmp_path, **PRODUCTION, DATABASE_URL=PG, DATABASE_CONN_MAX_AGE="60")
    config = persistent["DATABASES"]["default"]
    assert config["CONN_MAX_AGE"] == 60 and config["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        (PG, {"conn_max_age": 60, "pool_max": 10}, "not both"),
        ("sqlite:///x.sqlite3", {"pool_max": 10}, "needs PostgreSQL"),
        (PG, {"pool_max": 2, "pool_min": 5}, "larger than DATABASE_POOL_MAX"),
        (PG, {"pool_min": 2}, "need DATABASE_POOL_MAX"),
        (PG, {"pool_timeout": 3.0}, "need DATABASE_POOL_MAX"),
    ],
)
def test_database_settings_that_cannot_work_are_refused(tmp_path, url, options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        services.database(url, data_dir=tmp_path, **options)


def test_sqlite_keeps_its_concurrency_options(tmp_path):
    config = services.database(f"sqlite:///{tmp_path / 'db.sqlite3'}", data_dir=tmp_path)
    assert config["OPTIONS"] == services.SQLITE_OPTIONS
    assert config["TEST"] == {"NAME": str(tmp_path / "test-db.sqlite3")}


# -- documentation -------------------------------------------------------------------------------


def test_every_variable_the_settings_read_is_in_the_readme_table():
    source = (ROOT / "project" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|list|int|float)\(\s*"([A-Z0-9_]+)"', source))
    assert {"SECURE_COOKIES", "REDIS_URL", "CACHE_URL", "DATABASE_POOL_MAX"} <= read
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") :]
    table = table[: table.index("\n\n", table.index("| variable"))]
    listed = set(re.findall(r"^\| `([A-Z0-9_]+)`", table, re.M))
    assert read <= listed, f"missing from the README's settings table: {sorted(read - listed)}"
    docstring = source[: source.index('"""', 3)]
    assert {name for name in read if f"``{name}``" not in docstring} == set()
