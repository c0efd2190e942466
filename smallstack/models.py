"""Database models of the dashboard: API tokens for monitors and scripts, personal layouts."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class APIToken(models.Model):
    """A bearer token for the JSON API, acting as its user.

    Only the key's SHA-256 digest is stored; the raw key (``ss_<prefix>_<secret>``) is shown
    once, when the token is created. The 8-character ``prefix`` identifies a token in lists,
    logs and ``revoke_api_token`` without revealing it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What uses this token.")
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    key_hash = models.CharField("SHA-256 of the key", max_length=64, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked = models.DateTimeField(null=True, blank=True, editable=False)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name or 'token'} (ss_{self.prefix}_…)"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or timezone.now())

    @property
    def is_usable(self) -> bool:
        """Neither revoked nor expired (the user's own status is checked separately)."""
        return self.revoked is None and not self.is_expired()


class DashboardLayout(models.Model):
    """One user's arrangement of one dashboard page (``scope``): card order, hidden cards and
    card widths. Read through :mod:`smallstack.layouts`, which drops keys no longer registered
    and places widgets registered since at their default position."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dashboard_layouts"
    )
    scope = models.CharField(
        max_length=255, help_text='"dashboard", "group:<name>" or "app:<label>".'
    )
    order = models.JSONField(default=list, blank=True, help_text="Widget keys, first card first.")
    hidden = models.JSONField(default=list, blank=True, help_text="Widget keys not shown.")
    spans = models.JSONField(
        default=dict, blank=True, help_text="Widget key → columns (1 or 2) chosen by the user."
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "dashboard layout"
        constraints = [
            models.UniqueConstraint(fields=["user", "scope"], name="smallstack_layout_per_scope")
        ]
        ordering = ["user", "scope"]

    def __str__(self) -> str:
        return f"{self.scope} layout of user {self.user_id}"
