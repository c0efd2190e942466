"""Custom user models for tests/test_users.py: the Users app must work with what they lack."""
