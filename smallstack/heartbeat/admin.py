from django.contrib import admin

from smallstack.heartbeat.models import Heartbeat, MaintenanceWindow


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ("start", "end", "note")
    date_hierarchy = "start"


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("created_at", "status", "duration_ms", "interval")
    list_filter = ("status",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "status", "checks", "interval", "duration_ms")

    def has_add_permission(self, request) -> bool:
        return False
