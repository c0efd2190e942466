"""``manage.py revoke_api_token PREFIX``: stop a token from working."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from smallstack import tokens
from smallstack.models import APIToken


class Command(BaseCommand):
    help = "Revoke an API token, given its 8-character prefix (or the whole key)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prefix")

    def handle(self, *args, prefix: str, **options) -> None:
        prefix = tokens.parse_prefix(prefix) or prefix
        try:
            token = APIToken.objects.select_related("user").get(prefix=prefix)
        except APIToken.DoesNotExist:
            raise CommandError(f"No API token with prefix {prefix!r}.") from None
        if token.revoked is not None:
            self.stdout.write(f"Token {prefix} was already revoked on {token.revoked:%Y-%m-%d}.")
            return
        token.revoked = timezone.now()
        token.save(update_fields=["revoked"])
        self.stdout.write(f"Revoked token {prefix} ({token.name or 'unnamed'}) of {token.user}.")
