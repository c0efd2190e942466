"""Settings for the load-and-fault suite's server: the test server's, plus the fault widgets."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faultapp"]  # noqa: F405
