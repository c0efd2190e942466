"""Which models the Explorer browses, and the dashboard widgets attached to them.

>>> from explorer.registry import explorer
>>> explorer.register(Order, OrderAdmin, group="Sales")   # in myapp/explorer.py

Every installed app's ``explorer.py`` is imported at startup (:meth:`Explorer.autodiscover`).
Widgets listed in ``admin_class.explorer_dashboard_widgets`` are registered with the dashboard,
scoped to the model: they receive it as ``model_class`` and link to its Explorer list page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Field, Model
from django.db.models.constants import LOOKUP_SEP
from django.forms import ModelForm
from django.utils.module_loading import autodiscover_modules

from explorer.forms import model_form_class
from explorer.search import search_path
from smallstack import dashboard
from smallstack.displays import DashboardWidget
from smallstack.registry import Registration

__all__ = ["Explorer", "ModelInfo", "explorer"]

DEFAULT_GROUP = "General"


def _hidden_fields(model: type[Model], admin_class: type | None) -> frozenset[str]:
    """The model's field names that ``admin_class.explorer_hidden_fields`` lists, checked."""
    names = getattr(admin_class, "explorer_hidden_fields", None) or ()
    label = model._meta.label
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ImproperlyConfigured(
            f"explorer_hidden_fields of {label} must be a list or tuple of field names, "
            f"not {names!r}"
        )
    hidden = set()
    for name in names:
        try:
            found = model._meta.get_field(name)
        except (FieldDoesNotExist, TypeError):
            raise ImproperlyConfigured(
                f"explorer_hidden_fields of {label} names {name!r}, which is not one of its fields"
            ) from None
        if found is model._meta.pk:
            raise ImproperlyConfigured(
                f"explorer_hidden_fields of {label} cannot hide the primary key "
                f"{found.name!r}: the Explorer's links carry it"
            )
        hidden.add(found.name)
    return frozenset(hidden)


def _flatten(names: Iterable[Any]) -> list[str]:
    """Admin ``fields`` may group names in tuples to share a line: flatten them."""
    flat: list[str] = []
    for name in names:
        if isinstance(name, list | tuple):
            flat.extend(_flatten(name))
        else:
            flat.append(name)
    return flat


@dataclass(eq=False)
class ModelInfo:
    """One model registered with the Explorer, and how to browse it."""

    model: type[Model]
    admin_class: type | None
    group: str
    readonly: bool
    #: Names of the fields no page shows or queries (``explorer_hidden_fields``).
    hidden_fields: frozenset[str] = frozenset()
    #: The dashboard registrations of the widgets attached to this model.
    registrations: list[Registration] = field(default_factory=list)

    # -- identity ---------------------------------------------------------------------------

    @property
    def app_label(self) -> str:
        return self.model._meta.app_label

    @property
    def model_name(self) -> str:
        name = self.model._meta.model_name
        assert name is not None  # set for every model Django has loaded
        return name

    @property
    def label(self) -> str:
        """``app_label.model_name``."""
        return f"{self.app_label}.{self.model_name}"

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def verbose_name_plural(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    @property
    def url_kwargs(self) -> dict[str, str]:
        return {"app_label": self.app_label, "model_name": self.model_name}

    # -- options read from the admin class ---------------------------------------------------

    def option(self, name: str, default: Any = None) -> Any:
        """An attribute of the admin class (``ModelAdmin``'s default when there is none)."""
        source = self.admin_class or admin.ModelAdmin
        return getattr(source, name, default)

    @cached_property
    def model_admin(self) -> Any:
        """An instance of the admin class, for admin-method columns."""
        cls = self.admin_class or admin.ModelAdmin
        if isinstance(cls, type) and issubclass(cls, admin.ModelAdmin):
            return cls(self.model, admin.site)
        return cls()

    @cached_property
    def form_class(self) -> type[ModelForm]:
        """The ``ModelForm`` of the create and edit pages."""
        return model_form_class(
            self.model,
            form=self.option("form"),
            fields=self.form_fields,
            exclude=self.form_exclude,
        )

    @property
    def list_fields(self) -> list[str]:
        """Columns of the list page: ``explorer_list_fields``, else ``list_display``."""
        names = self.option("explorer_list_fields") or self.option("list_display") or ()
        return [name for name in names if name != "action_checkbox"] or ["__str__"]

    @property
    def search_fields(self) -> list[str]:
        return list(self.option("search_fields") or ())

    @property
    def per_page(self) -> int:
        return int(self.option("explorer_list_per_page") or self.option("list_per_page") or 100)

    @property
    def ordering(self) -> list[str]:
        """Default ordering: the admin's, else the model's, always ending with the pk."""
        ordering = list(self.option("ordering") or self.model._meta.ordering or ())
        if not any(o.lstrip("-") in ("pk", self.model._meta.pk.name) for o in ordering):
            ordering.append("-pk")
        return ordering

    @property
    def form_fields(self) -> list[str] | None:
        fields = self.option("fields")
        return _flatten(fields) if fields else None

    @property
    def form_exclude(self) -> list[str] | None:
        exclude = list(self.option("exclude") or ())
        readonly = list(self.option("readonly_fields") or ())
        return exclude + readonly + sorted(self.hidden_fields) or None

    def field_paths(self) -> list[tuple[str, str]]:
        """``(option, ORM path)`` for every field path the pages show, search, sort or edit.

        Column names that are methods rather than fields are listed too; they lead nowhere
        when a path is followed (:meth:`Explorer.hidden_target`).
        """
        paths: list[tuple[str, str]] = []
        for name in self.list_fields:
            if not isinstance(name, str) or name == "__str__":
                continue
            paths.append(("list column", name))
            order_field = self.order_field(name)
            if order_field and order_field != name:
                paths.append((f"admin_order_field of column {name!r}", order_field))
        paths += [("search_fields", search_path(name)) for name in self.search_fields]
        # The admin's ordering; a model's own Meta.ordering may sort by a hidden field (it
        # shows no value).
        ordering = self.option("ordering") or ()
        paths += [("ordering", name.lstrip("-")) for name in ordering if name != "?"]
        paths += [("fields", name) for name in self.form_fields or ()]
        return paths

    def model_field(self, name: str) -> Field | None:
        """The concrete model field a column shows, if it is one (``pk`` included)."""
        if name == "pk":
            return self.model._meta.pk
        try:
            found = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        return found if isinstance(found, Field) and found.concrete else None

    def order_field(self, column: str) -> str | None:
        """The ORM field ``?o=<column>`` sorts by, or None if the column is not sortable."""
        if not isinstance(column, str) or column not in self.list_fields:
            return None
        model_field = self.model_field(column)
        if model_field is not None:
            return model_field.name
        attr = getattr(self.admin_class, column, None) or getattr(self.model, column, None)
        order_field = getattr(attr, "admin_order_field", None)
        if isinstance(order_field, str):
            return order_field.lstrip("-")
        return None

    @property
    def widgets(self) -> list[DashboardWidget]:
        return [registration.widget for registration in self.registrations]

    def __repr__(self) -> str:
        return (
            f"<ModelInfo {self.label} group={self.group!r}{' readonly' if self.readonly else ''}>"
        )


class Explorer:
    """The models the Explorer browses, keyed by model class."""

    def __init__(self) -> None:
        self._registry: dict[type[Model], ModelInfo] = {}
        self._lock = threading.RLock()

    def register(
        self,
        model: type[Model],
        admin_class: type | None = None,
        *,
        group: str = DEFAULT_GROUP,
        readonly: bool = False,
    ) -> ModelInfo:
        """Browse ``model`` in the Explorer and put its admin's dashboard widgets on the dashboard.

        ``admin_class`` (usually the model's ``ModelAdmin``) supplies ``list_display`` or
        ``explorer_list_fields``, ``search_fields``, ``fields``/``exclude``, ``ordering``,
        ``list_per_page``, ``explorer_hidden_fields`` and ``explorer_dashboard_widgets``.
        ``readonly=True`` offers the list and detail pages only. Registering a model twice, or
        a column, search field, ordering or form field that reaches a hidden field (of this
        model, or through a relation of another registered one), raises
        ``ImproperlyConfigured``.
        """
        if not (isinstance(model, type) and issubclass(model, Model)):
            raise ImproperlyConfigured(f"explorer.register() needs a model class, not {model!r}")
        if model._meta.abstract:
            raise ImproperlyConfigured(f"{model.__name__} is abstract and cannot be explored")
        if not group or not isinstance(group, str):
            raise ImproperlyConfigured(f"The Explorer group of {model.__name__} must be a string")
        widgets = list(getattr(admin_class, "explorer_dashboard_widgets", None) or ())
        info = ModelInfo(
            model=model,
            admin_class=admin_class,
            group=group,
            readonly=readonly,
            hidden_fields=_hidden_fields(model, admin_class),
        )
        with self._lock:
            if model in self._registry:
                raise ImproperlyConfigured(
                    f"{model._meta.label} is already registered with the Explorer "
                    f"(group {self._registry[model].group!r}); register each model once."
                )
            self._refuse_exposures(info)
            try:
                for widget in widgets:
                    info.registrations.append(
                        dashboard.register(
                            widget,
                            model=model,
                            group=group,
                            default_url_name="explorer:list",
                            default_url_kwargs=info.url_kwargs,
                        )
                    )
            except Exception:
                for registration in info.registrations:
                    dashboard.unregister(registration.key)
                raise
            self._registry[model] = info
        return info

    def unregister(self, model: type[Model]) -> None:
        """Stop exploring ``model`` and remove its dashboard widgets (``KeyError`` if unknown)."""
        with self._lock:
            info = self._registry.pop(model, None)
            if info is None:
                raise KeyError(f"{model!r} is not registered with the Explorer")
            for registration in info.registrations:
                if registration.key in dashboard.registry:
                    dashboard.unregister(registration.key)

    def hidden_target(
        self, model: type[Model], path: str, extra: ModelInfo | None = None
    ) -> str | None:
        """The hidden field (``"app.Model.field"``) that following ``path`` from ``model`` reaches.

        Each step's model counts with its registration's hidden fields (``extra`` stands for a
        registration not yet made). None when the path reaches none: it ends, leaves the model
        fields (a method, a transform such as ``__year``), or reaches only visible ones.
        """
        current = model
        for part in path.split(LOOKUP_SEP):
            name = current._meta.pk.name if part == "pk" else part
            try:
                found = current._meta.get_field(name)
            except FieldDoesNotExist:
                return None
            owner = extra if extra is not None and extra.model is current else None
            owner = owner or self._registry.get(current)
            if owner is not None and found.name in owner.hidden_fields:
                return f"{current._meta.label}.{found.name}"
            related = found.related_model if found.is_relation else None
            if not isinstance(related, type):
                return None
            current = related
        return None

    def _refuse_exposures(self, info: ModelInfo) -> None:
        """Raise if ``info``, or a registration its hidden fields concern, would expose one."""
        problems = []
        for subject in [info, *self._registry.values()]:
            for option, path in subject.field_paths():
                target = self.hidden_target(subject.model, path, extra=info)
                if target is not None:
                    problems.append(
                        f"{subject.model._meta.label}'s {option} {path!r} reaches {target}, "
                        "which explorer_hidden_fields hides"
                    )
        if problems:
            raise ImproperlyConfigured(
                f"Cannot register {info.model._meta.label} with the Explorer: "
                + "; ".join(problems)
                + ". Remove the path, or the field from explorer_hidden_fields."
            )

    def is_registered(self, model: type[Model]) -> bool:
        return model in self._registry

    def get_model_info(self, model: type[Model]) -> ModelInfo | None:
        return self._registry.get(model)

    def lookup(self, app_label: str, model_name: str) -> ModelInfo | None:
        """The registration for URL parts ``<app_label>/<model_name>``, or None."""
        for info in self._registry.values():
            if info.app_label == app_label and info.model_name == model_name.lower():
                return info
        return None

    def get_models(self, group: str | None = None) -> list[ModelInfo]:
        """Registered models (optionally one group's), sorted by group then verbose name."""
        infos = [i for i in self._registry.values() if group is None or i.group == group]
        return sorted(infos, key=lambda i: (i.group.lower(), i.verbose_name_plural.lower()))

    def get_groups(self) -> list[str]:
        """Group names, sorted."""
        return sorted({info.group for info in self._registry.values()}, key=str.lower)

    def get_dashboard_widgets(self) -> list[tuple[DashboardWidget, ModelInfo]]:
        """``(widget, model_info)`` for each widget of an ``explorer_dashboard_widgets`` list."""
        return [
            (registration.widget, info)
            for info in self.get_models()
            for registration in info.registrations
        ]

    def autodiscover(self) -> None:
        """Import ``explorer.py`` from every installed app. Errors inside one propagate."""
        autodiscover_modules("explorer")

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, model: object) -> bool:
        return model in self._registry


#: The process-wide Explorer registry.
explorer = Explorer()
