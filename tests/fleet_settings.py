"""Settings for servers with the counted widgets of tests/fleetapp (one evaluation per fleet)."""

from tests.server_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.fleetapp"]  # noqa: F405
