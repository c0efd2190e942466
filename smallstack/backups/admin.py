from django.contrib import admin
from django.http import HttpRequest

from smallstack.backups.models import BackupRecord


@admin.register(BackupRecord)
class BackupRecordAdmin(admin.ModelAdmin):
    """Read-only: records are written by the backup command, and pruned with their files."""

    list_display = ("created_at", "status", "file_name", "size", "duration", "vendor")
    list_filter = ("status", "vendor")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
