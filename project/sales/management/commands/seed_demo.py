"""Seed demo data and make sure a demo staff login exists. Safe to run again."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create the demo staff user (printing its credentials) and seed demo data."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("DEMO_USERNAME", "demo"))
        parser.add_argument(
            "--password",
            default=os.environ.get("DEMO_PASSWORD"),
            help="Use this password instead of a freshly generated one.",
        )
        parser.add_argument("--url", default="http://127.0.0.1:8000/smallstack/")

    @transaction.atomic
    def handle(self, *args, username: str, password: str | None, url: str, **options):
        password = password or secrets.token_urlsafe(9)
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.seed()
        self.stdout.write(
            self.style.SUCCESS(
                f"\nDemo staff login ({'created' if created else 'password reset'}):\n"
                f"  open      {url}\n"
                f"  username  {username}\n"
                f"  password  {password}\n"
            )
        )

    def seed(self) -> None:
        """Demo rows for the apps that ship with the project."""
        from django.apps import apps

        if apps.is_installed("project.sales"):
            from project.sales.demo import seed_orders

            added = seed_orders()
            self.stdout.write(f"Demo orders: {added} added." if added else "Demo orders present.")
        if apps.is_installed("smallstack.users"):
            from smallstack.users.seed import seed_users

            added = seed_users()
            self.stdout.write(
                f"Demo accounts: {added} added."
                if added
                else "Demo accounts present (dates moved)."
            )
        if apps.is_installed("smallstack.heartbeat"):
            from smallstack.heartbeat.models import Heartbeat
            from smallstack.heartbeat.seed import seed_heartbeats

            # A day of beats once, so the Status card and page have an uptime to show; beats
            # after that come from `manage.py heartbeat --loop 60`.
            if Heartbeat.objects.exists():
                self.stdout.write("Demo heartbeats present.")
            else:
                self.stdout.write(f"Demo heartbeats: {seed_heartbeats(days=1)} added (24 h).")
        if apps.is_installed("smallstack.activity"):
            from smallstack.activity.models import RequestLog
            from smallstack.activity.seed import seed_requests

            # A day of traffic once; the request log middleware records the real requests.
            if RequestLog.objects.exists():
                self.stdout.write("Request log present.")
            else:
                self.stdout.write(f"Demo request log: {seed_requests(hours=24)} rows added (24 h).")
        if apps.is_installed("smallstack.backups"):
            from smallstack.backups.seed import seed_backup

            # One real backup when there is none, taken once the seeded rows are committed.
            transaction.on_commit(lambda: self.stdout.write(seed_backup()))
