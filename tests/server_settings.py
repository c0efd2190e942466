"""Settings for the uvicorn processes the end-to-end tests start."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.serverapp"]  # noqa: F405
DATABASES["default"]["NAME"] = str(DATA_DIR / "db.sqlite3")  # noqa: F405
