"""A test-only app whose ``explorer.py`` autodiscovery must import."""
