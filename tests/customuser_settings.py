"""The test settings with a custom user model: ``CUSTOM_USER_MODEL`` (default EmailUser)."""

import os

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.customuser"]  # noqa: F405
AUTH_USER_MODEL = os.environ.get("CUSTOM_USER_MODEL", "customuser.EmailUser")
