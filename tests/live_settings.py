"""Settings for the live end-to-end servers: the test server's, plus the live test widgets."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.liveapp"]  # noqa: F405
