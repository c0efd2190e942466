"""``manage.py create_api_token USERNAME``: print a new API token's key (last line)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from smallstack import tokens
from smallstack.access import can_use_dashboard


class Command(BaseCommand):
    help = (
        "Create an API token for a staff user and print its key as the last line of output. "
        "The key is not stored and cannot be shown again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Expire after N days (default: never)."
        )
        parser.add_argument(
            "--allow-non-staff",
            action="store_true",
            help="Create it even though the user is not active staff (the API will refuse it).",
        )

    def handle(self, *args, username: str, name: str, expires_days: int | None, **options):
        user_model = get_user_model()
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if not can_use_dashboard(user) and not options["allow_non_staff"]:
            raise CommandError(
                f"{username!r} is not an active staff user; the API only serves staff. "
                "Pass --allow-non-staff to create the token anyway."
            )
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be 1 or more.")
        expires = timezone.now() + timedelta(days=expires_days) if expires_days else None
        token, key = tokens.create_token(user, name, expires)
        until = f"expires {expires:%Y-%m-%d %H:%M} UTC" if expires else "never expires"
        self.stdout.write(
            f"Created API token {token.prefix} for {username} ({until}). "
            "Copy the key below now; it is not stored and cannot be shown again."
        )
        self.stdout.write(key)
