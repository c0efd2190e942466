"""API tokens in Django's admin: create (the key is shown once), inspect, revoke. Personal
layouts: inspect, and delete one to reset a user's page to its default.

The new key is rendered straight into the response to the add form, never put in a message
(Django's cookie message storage would carry it in a cookie) and never shown again.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from smallstack import layouts, tokens
from smallstack.models import APIToken, DashboardLayout


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "prefix", "created", "expires", "revoked", "last_used"]
    list_filter = ["revoked", "expires"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["prefix", "created", "revoked", "last_used"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: APIToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name", "expires")
        return ("user", "name", "prefix", "created", "expires", "revoked", "last_used")

    def get_readonly_fields(self, request: HttpRequest, obj: APIToken | None = None) -> list[str]:
        return [*self.readonly_fields, "user"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: APIToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = tokens.create_token(obj.user, obj.name, obj.expires)
        obj.pk, obj.prefix, obj.created = token.pk, token.prefix, token.created
        obj._state.adding, obj._state.db = False, token._state.db
        request._new_api_key = key  # type: ignore[attr-defined]

    def response_add(self, request: HttpRequest, obj: APIToken, post_url_continue=None):
        key = getattr(request, "_new_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Copy the new API key",
            "token": obj,
            "key": key,
        }
        # The admin's views are never_cache: the page is sent "no-store".
        return TemplateResponse(request, "admin/smallstack/apitoken/key_created.html", context)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset) -> None:
        count = queryset.filter(revoked__isnull=True).update(revoked=timezone.now())
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(DashboardLayout)
class DashboardLayoutAdmin(admin.ModelAdmin):
    """Read-only: users arrange their pages themselves (the dashboard's Edit layout, or the API).
    Deleting a layout resets that page to its default; the user's open dashboards of it are told,
    as when they reset it themselves."""

    list_display = ["user", "scope", "updated"]
    list_filter = ["scope"]
    search_fields = ["user__username", "scope"]
    list_select_related = ["user"]
    readonly_fields = ["user", "scope", "order", "hidden", "spans", "updated"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: DashboardLayout) -> None:
        super().delete_model(request, obj)
        async_to_sync(layouts.announce)(obj.user_id, obj.scope)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        gone = list(queryset.values_list("user_id", "scope"))
        super().delete_queryset(request, queryset)
        for user_id, scope in gone:
            async_to_sync(layouts.announce)(user_id, scope)
