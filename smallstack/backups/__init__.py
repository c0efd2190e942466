"""Backups: online copies of the database (SQLite or PostgreSQL), their records, restoring one,
the dashboard card and the staff page.

``manage.py backup`` and ``manage.py restore FILE`` are the commands; code can call
:func:`smallstack.backups.service.backup` and :func:`~smallstack.backups.service.restore`.
"""
