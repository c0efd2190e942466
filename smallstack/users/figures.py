"""How many accounts there are, counted in one aggregate query over whatever the user model has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone


def model_field(
    model: type[models.Model],
    name: str,
    kind: type[models.Field] | tuple[type[models.Field], ...],
) -> bool:
    """Whether ``model`` stores a concrete field ``name`` of type ``kind``.

    ``AbstractBaseUser`` declares ``is_active = True`` as a plain attribute: that is no field.
    """
    try:
        found = model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return isinstance(found, kind) and found.concrete


@dataclass(frozen=True)
class UserFigures:
    """The card's figures; ``None`` where the user model has no field to count by."""

    total: int
    active: int
    new: int | None
    signed_in: int | None
    staff: int | None
    new_days: int
    signed_in_hours: int

    @property
    def inactive(self) -> int:
        return self.total - self.active

    def as_json(self) -> dict[str, Any]:
        """The counts that exist, with the windows they cover (for the API's ``extra``)."""
        data: dict[str, Any] = {"active": self.active, "inactive": self.inactive}
        data["total"] = self.total
        if self.new is not None:
            data |= {"new": self.new, "new_days": self.new_days}
        if self.signed_in is not None:
            data |= {"signed_in": self.signed_in, "signed_in_hours": self.signed_in_hours}
        if self.staff is not None:
            data["staff"] = self.staff
        return data


async def acount_users(
    model: type[models.Model],
    *,
    new_days: int,
    signed_in_hours: int,
    now: datetime | None = None,
) -> UserFigures:
    """Count ``model``'s accounts in one query (conditional counts over one scan of the table).

    Active: ``is_active`` true (every account, without such a field). New: ``date_joined``
    within ``new_days``. Signed in: ``last_login`` within ``signed_in_hours``. Staff: active
    accounts with ``is_staff``. A figure whose field the model lacks is ``None``.
    """
    now = now or timezone.now()
    has_active = model_field(model, "is_active", models.BooleanField)
    active = Q(is_active=True) if has_active else Q()
    counts: dict[str, Count] = {"total": Count("pk")}
    if has_active:
        counts["active"] = Count("pk", filter=active)
    if model_field(model, "date_joined", models.DateTimeField):
        counts["new"] = Count("pk", filter=Q(date_joined__gte=now - timedelta(days=new_days)))
    if model_field(model, "last_login", models.DateTimeField):
        since = now - timedelta(hours=signed_in_hours)
        counts["signed_in"] = Count("pk", filter=Q(last_login__gte=since))
    if model_field(model, "is_staff", models.BooleanField):
        counts["staff"] = Count("pk", filter=Q(is_staff=True) & active)
    row = await model._default_manager.aaggregate(**counts)
    return UserFigures(
        total=row["total"],
        active=row["active"] if has_active else row["total"],
        new=row.get("new"),
        signed_in=row.get("signed_in"),
        staff=row.get("staff"),
        new_days=new_days,
        signed_in_hours=signed_in_hours,
    )
