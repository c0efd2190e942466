"""Settings for the SmallStack dashboard project.

Everything that differs between machines comes from the environment (the README's settings
table lists each variable with its default):

- ``SECRET_KEY``     required when ``DEBUG`` is off.
- ``DEBUG``          "1"/"true" to enable (default: off). Off, it refuses ``ALLOWED_HOSTS=*``.
- ``ALLOWED_HOSTS``  comma-separated (default: localhost names); ``CSRF_TRUSTED_ORIGINS`` too.
- ``SECURE_COOKIES`` session and CSRF cookies over HTTPS only (default: on when ``DEBUG`` is off);
  ``SECURE_HSTS_SECONDS`` / ``SECURE_HSTS_INCLUDE_SUBDOMAINS`` / ``SECURE_HSTS_PRELOAD`` and
  ``SECURE_SSL_REDIRECT`` as Django's settings of those names (default: off);
  ``BEHIND_PROXY`` ("1") trusts the proxy's ``X-Forwarded-Proto`` (``SECURE_PROXY_SSL_HEADER``).
- ``DATABASE_URL``   e.g. ``postgres://user:pass@host/db``; default: embedded SQLite.
  ``DATABASE_CONN_MAX_AGE`` keeps connections open that many seconds; ``DATABASE_POOL_MAX``
  (with ``DATABASE_POOL_MIN`` / ``DATABASE_POOL_TIMEOUT``) uses Django's PostgreSQL connection
  pool instead (project/services.py).
- ``REDIS_URL``      the Redis channel layer for multi-process push, the dashboard's cache (unless
  ``CACHE_URL`` names another, or ``locmem://``) and the per-widget locks.
- ``SMALLSTACK_DATA_DIR``  SQLite, collected static files, backups (default: ``var/``).
- ``SMALLSTACK_THREAD_POOL_SIZE`` / ``SMALLSTACK_WIDGET_TIMEOUT`` tune the widget engine.
- ``SMALLSTACK_RENDER_BUDGET``  seconds a page waits before sending late cards live (0.3).
- ``SMALLSTACK_LOOP_BLOCK_LIMIT`` / ``SMALLSTACK_LOOP_BLOCK_COOLDOWN``: the widget loop's watchdog.
- ``SMALLSTACK_BREAKER_FAILURES`` ("0": never) / ``SMALLSTACK_BREAKER_COOLDOWN``: failing widgets'
  circuit breaker.
- ``SMALLSTACK_METRICS_ALLOWED_IPS``: comma-separated addresses and networks that may read
  ``/api/metrics`` (default: any, with staff credentials).
- ``SMALLSTACK_ACTIVITY`` ("0" turns the request log off) / ``SMALLSTACK_ACTIVITY_FLUSH_INTERVAL``.
- ``BACKUP_DIR`` / ``BACKUP_MAX_AGE_HOURS`` / ``BACKUP_KEEP``: where backups go (default
  ``$SMALLSTACK_DATA_DIR/backups``), when the card warns (26 h), how many the button keeps.
"""

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from project import services
from project.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("SMALLSTACK_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)
SMALLSTACK_DATA_DIR = DATA_DIR  # the Status disk check watches this directory's disk

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DEBUG is off and SECRET_KEY is not set: set the SECRET_KEY environment variable "
            "(the same long random value on every host), or DEBUG=1 for development."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DEBUG is off and ALLOWED_HOSTS contains '*': name the host names the site answers to "
        "(ALLOWED_HOSTS=dashboard.example.com), so forged Host headers are refused."
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS. Cookies over HTTPS only unless DEBUG (SECURE_COOKIES=0 to test over plain HTTP); HSTS
# and the redirect to HTTPS are opt-in (deploy/env.example turns them on).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("BEHIND_PROXY", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself (deploy/nginx.conf overwrites it):
    # anywhere else a client could claim HTTPS with that header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "servestatic",
    "channels",
    "ninja",  # serves the API docs' Swagger UI from static files, not a CDN
    "smallstack",
    "smallstack.heartbeat",  # Status: checks, heartbeats, uptime, health endpoints
    "smallstack.activity",  # the request log (smallstack/activity/)
    "smallstack.backups",  # Backups: backup/restore commands, card, page (smallstack/backups/)
    "smallstack.users",  # Users: the accounts card, users in the Explorer (smallstack/users/)
    "smallstack.help",  # Help & Docs: Markdown documents at /help/ (smallstack/help/)
    "explorer",
    "project.sales",
    "project.apps.ProjectConfig",  # check --deploy knows project/middleware.py (project/checks.py)
]

# Django's defaults, in their event-loop-friendly variants (project/middleware.py): under ASGI
# the stock classes cost a thread hop per hook.
MIDDLEWARE = [
    # Answers /health/live/ and /health/ready/ itself, before the rest of the stack.
    "smallstack.heartbeat.health.HealthMiddleware",
    "project.middleware.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    # Logs each answered request into a memory buffer; a thread writes it (no query here).
    "smallstack.activity.middleware.RequestLogMiddleware",
    "project.middleware.SessionMiddleware",
    "project.middleware.CommonMiddleware",
    "project.middleware.CsrfViewMiddleware",
    "project.middleware.AuthenticationMiddleware",
    "project.middleware.MessageMiddleware",
    "project.middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES: list[dict[str, Any]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is SQLite in WAL mode (project/services.py). By default every connection is
# closed after its request or widget call (ASGI serves each from a thread of its own); on
# PostgreSQL, DATABASE_POOL_MAX hands them to Django's connection pool instead, which bounds how
# many one process opens.
_POOL_MIN = env_str("DATABASE_POOL_MIN", "").strip()
_POOL_TIMEOUT = env_str("DATABASE_POOL_TIMEOUT", "").strip()
DATABASES = {
    "default": services.database(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        data_dir=DATA_DIR,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        pool_max=env_int("DATABASE_POOL_MAX", 0),
        pool_min=env_int("DATABASE_POOL_MIN", 0) if _POOL_MIN else None,
        pool_timeout=env_float("DATABASE_POOL_TIMEOUT", 30.0) if _POOL_TIMEOUT else None,
    )
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The dashboard's results, stale values and change fingerprints: in Redis, shared by every
# process, when REDIS_URL (or CACHE_URL) names one; else in each process's memory.
REDIS_URL = env_str("REDIS_URL", "")
CACHE_URL = env_str("CACHE_URL", "")
CACHES = {"default": services.cache(CACHE_URL, REDIS_URL)}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "smallstack:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # Above the layer's 5 s blocking pop: redis-py's default read timeout
                        # is also 5 s and would fail idle receives at random.
                        "socket_timeout": 30,
                        "socket_connect_timeout": 2,
                        # Ping idle pooled connections first, so one left broken by a Redis
                        # restart is replaced instead of failing the next send.
                        "health_check_interval": 5,
                    }
                ],
                # Sends over capacity are dropped silently; a reconnecting page's snapshot
                # is the safety net.
                "capacity": 1000,
                "expiry": 10,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

SMALLSTACK_DASHBOARD = {
    "WIDGET_TIMEOUT": float(env_str("SMALLSTACK_WIDGET_TIMEOUT", "3")),
    "THREAD_POOL_SIZE": int(env_str("SMALLSTACK_THREAD_POOL_SIZE", "32")),
    "RENDER_BUDGET": float(env_str("SMALLSTACK_RENDER_BUDGET", "0.3")),
    "LOOP_BLOCK_LIMIT": float(env_str("SMALLSTACK_LOOP_BLOCK_LIMIT", "0.5")),
    "LOOP_BLOCK_COOLDOWN": float(env_str("SMALLSTACK_LOOP_BLOCK_COOLDOWN", "60")),
    "BREAKER_FAILURES": env_int("SMALLSTACK_BREAKER_FAILURES", 5) or None,
    "BREAKER_COOLDOWN": env_float("SMALLSTACK_BREAKER_COOLDOWN", 30.0, minimum=0.001),
    "METRICS_ALLOWED_IPS": env_list("SMALLSTACK_METRICS_ALLOWED_IPS", []),
    # With Redis, short per-widget locks there: an interval refresh runs once per period, and a
    # cache_ttl widget is evaluated by one process at a time, in all processes together.
    "LOCK_URL": services.lock_url(CACHE_URL, REDIS_URL),
}

# The request log (smallstack/activity/conf.py lists every key).
SMALLSTACK_ACTIVITY = {
    "ENABLED": env_bool("SMALLSTACK_ACTIVITY", True),
    "FLUSH_INTERVAL": float(env_str("SMALLSTACK_ACTIVITY_FLUSH_INTERVAL", "2")),
}

# Backups (smallstack/backups/conf.py lists every key).
SMALLSTACK_BACKUPS = {
    "BACKUP_DIR": env_str("BACKUP_DIR", str(DATA_DIR / "backups")),
    "MAX_AGE_HOURS": float(env_str("BACKUP_MAX_AGE_HOURS", "26")),
    "KEEP": int(env_str("BACKUP_KEEP", "0")) or None,
}

LOGGING = {
    "version": 1,
    # Keep uvicorn's and Django's own loggers (crash traces included) alive.
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "smallstack": {"handlers": ["console"], "level": "INFO", "propagate": True},
        "explorer": {"handlers": ["console"], "level": "INFO", "propagate": True},
        # Start-up warnings of the ASGI application (project/asgi.py), e.g. no static files.
        "project": {"handlers": ["console"], "level": "INFO", "propagate": True},
    },
}
