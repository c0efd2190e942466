"""A test-only app whose ``explorer.py`` fails to import."""
