"""The one exception the backup and restore code raises for a run it could not do."""


class BackupError(Exception):
    """A backup or restore that failed or was refused; the message says why, for people."""
