"""Settings for the gunicorn and nginx test servers: the test server's, plus tests.deployapp."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.deployapp"]  # noqa: F405
ROOT_URLCONF = "tests.deployapp.urls"
