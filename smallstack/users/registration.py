"""The user model's Explorer registration: a read-only list of accounts, the password hidden."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models

from explorer.registry import ModelInfo, explorer
from smallstack.users import conf
from smallstack.users.figures import model_field

#: The Explorer group (and dashboard group) of accounts.
GROUP = "Accounts"

COLUMNS = [
    ("is_staff", models.BooleanField),
    ("is_active", models.BooleanField),
    ("date_joined", models.DateTimeField),
    ("last_login", models.DateTimeField),
]
TEXT = (models.CharField, models.TextField)


def _name_column(model: type[models.Model]) -> Any:
    """An admin-method column joining ``first_name`` and ``last_name`` (those the model has)."""
    parts = [name for name in ("first_name", "last_name") if model_field(model, name, TEXT)]

    @admin.display(description="name", ordering=parts[-1])
    def name(self: Any, obj: models.Model) -> str | None:
        return " ".join(filter(None, (getattr(obj, part) for part in parts))) or None

    return name


def user_explorer_admin(model: type[models.Model]) -> type:
    """An admin class for the Explorer's pages over ``model``, from the fields it really has.

    Columns: the username field, the email field, the name, staff, active, date joined and
    last login; search: username, first and last name, email; newest accounts first. The
    ``password`` field is hidden (``explorer_hidden_fields``): no page shows or searches it.
    """
    username = getattr(model, "USERNAME_FIELD", "username")
    email = model.get_email_field_name() if hasattr(model, "get_email_field_name") else "email"
    has_name = any(model_field(model, n, TEXT) for n in ("first_name", "last_name"))
    columns = [username]
    if email != username and model_field(model, email, models.CharField):
        columns.append(email)
    if has_name:
        columns.append("name")
    columns += [name for name, kind in COLUMNS if model_field(model, name, kind)]
    searched = dict.fromkeys([username, "first_name", "last_name", email])
    attrs: dict[str, Any] = {
        "explorer_list_fields": columns,
        "search_fields": [name for name in searched if model_field(model, name, TEXT)],
        "ordering": (
            ["-date_joined"]
            if model_field(model, "date_joined", models.DateTimeField)
            else [username]
        ),
        "list_per_page": 50,
        "explorer_hidden_fields": ["password"] if model_field(model, "password", TEXT) else [],
    }
    if has_name:
        attrs["name"] = _name_column(model)
    return type("UserExplorerAdmin", (), attrs)


def register_user_model() -> ModelInfo | None:
    """Register the user model with the Explorer, read-only; None when the setting is off."""
    if not conf.get("EXPLORER"):
        return None
    model = get_user_model()
    return explorer.register(model, user_explorer_admin(model), group=GROUP, readonly=True)
