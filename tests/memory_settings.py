"""Settings for the uvicorn process of the memory test: the test server's, plus big widgets."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.memoryapp"]  # noqa: F405
