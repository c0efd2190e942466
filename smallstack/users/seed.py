"""Demo data: a handful of accounts, some staff, some inactive, some new, some signed in lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.utils import timezone

from smallstack.users.figures import model_field

DOMAIN = "example.com"


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    joined_days_ago: float
    login_hours_ago: float | None  # None: never signed in
    staff: bool = False
    active: bool = True


DEMO_USERS = [
    DemoUser("ada", "Ada", "Lovelace", 420, 2, staff=True),
    DemoUser("grace", "Grace", "Hopper", 210, 20, staff=True),
    DemoUser("alan", "Alan", "Turing", 12, 5),
    DemoUser("katherine", "Katherine", "Johnson", 3, 30),
    DemoUser("margaret", "Margaret", "Hamilton", 1, None),
    DemoUser("barbara", "Barbara", "Liskov", 95, 72),
    DemoUser("edsger", "Edsger", "Dijkstra", 25, None, active=False),
    DemoUser("linus", "Linus", "Pauling", 300, 24 * 90, active=False),
]


def _email_field(model: type[models.Model]) -> str | None:
    """The name of the user model's email field, if it stores one."""
    getter = getattr(model, "get_email_field_name", None)
    name = getter() if callable(getter) else "email"
    return name if model_field(model, name, models.CharField) else None


def _values(model: type[models.Model], user: DemoUser, now: datetime) -> dict[str, object]:
    """The demo account's fields that ``model`` has (a custom user model may lack some)."""
    login = None if user.login_hours_ago is None else now - timedelta(hours=user.login_hours_ago)
    wanted: dict[str, object] = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_staff": user.staff,
        "is_active": user.active,
        "date_joined": now - timedelta(days=user.joined_days_ago),
        "last_login": login,
    }
    email = _email_field(model)
    if email:
        wanted[email] = f"{user.username}@{DOMAIN}"
    return {name: value for name, value in wanted.items() if model_field(model, name, models.Field)}


@transaction.atomic
def seed_users(*, now: datetime | None = None) -> int:
    """Create the demo accounts that are missing; return how many were created.

    Safe to run again: existing demo accounts (same username and demo email) get their dates
    moved relative to ``now``, so the card keeps showing recent sign-ins; any other account of
    the same username is left alone. Demo accounts have no usable password.
    """
    model = get_user_model()
    now = now or timezone.now()
    username_field = getattr(model, "USERNAME_FIELD", "username")
    email_field = _email_field(model)
    created = 0
    for user in DEMO_USERS:
        values = _values(model, user, now)
        # A model that signs in by email has the email as its username.
        identity = values.pop(username_field, user.username)
        existing = model._default_manager.filter(**{username_field: identity}).first()
        if existing is None:
            account = model(**{username_field: identity}, **values)
            account.set_unusable_password()
            account.save()
            created += 1
        elif email_field and getattr(existing, email_field) == f"{user.username}@{DOMAIN}":
            model._default_manager.filter(pk=existing.pk).update(**values)
    return created
