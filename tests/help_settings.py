"""Settings for a uvicorn process serving only the docs directory named by ``HELP_TEST_DOCS``."""

import os

from tests.server_settings import *  # noqa: F403

SMALLSTACK_HELP = {"DIRS": [os.environ["HELP_TEST_DOCS"]], "BUILTIN_DOCS": False}
