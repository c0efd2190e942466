"""Settings of the uvicorn server that ``benchmarks/api.py`` loads: production-like, plus ten
benchmark widgets and a bare ``JsonResponse`` view to compare against."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.api_app.BenchAPIConfig"]  # noqa: F405
ROOT_URLCONF = "benchmarks.api_urls"
