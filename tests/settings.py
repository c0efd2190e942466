"""Settings for the test suite: the project's own, with test-only secrets."""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-secret")
os.environ.setdefault("SECURE_COOKIES", "0")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test logins
SMALLSTACK_DASHBOARD = {**SMALLSTACK_DASHBOARD, "BUILTIN_WIDGETS": True}  # noqa: F405
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], BASE_DIR / "tests" / "templates"]  # noqa: F405
SERVESTATIC_USE_FINDERS = True  # serve app static files without collectstatic
# One test database file per pytest process, so concurrent runs never share one.
DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
# Backups the suite takes (seed_demo takes one) stay out of var/backups, the demo's own: beside the
# test database, removed with it (tests/conftest.py). A BACKUP_DIR in the environment still wins.
if not os.environ.get("BACKUP_DIR"):
    SMALLSTACK_BACKUPS = {
        **SMALLSTACK_BACKUPS,  # noqa: F405
        "BACKUP_DIR": str(DATA_DIR / f"test-backups-{os.getpid()}"),  # noqa: F405
    }
