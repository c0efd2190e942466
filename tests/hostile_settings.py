"""Settings for the uvicorn process of the hostile-widget tests: the test server's, plus them."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.hostileapp"]  # noqa: F405
