from django.contrib import admin

from .models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "status", "amount", "created"]
    list_filter = ["status"]
    search_fields = ["customer", "=status"]
    fields = ["customer", "amount", "status", "created"]
    list_per_page = 50
