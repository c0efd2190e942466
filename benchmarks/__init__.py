"""Benchmarks run by ``make bench``."""

import os


def setup() -> None:
    """Configure Django for benchmarking: production-like settings, a roomy widget pool."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ.setdefault("SMALLSTACK_THREAD_POOL_SIZE", "256")
    import django

    django.setup()
