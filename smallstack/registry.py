"""Which widgets exist: :class:`WidgetRegistry`, and :data:`registry`, the one every surface reads.

Like ``django.contrib.admin``'s ``site`` beside ``AdminSite``: the class for those who need
another (tests, benchmarks), the instance for everyone else.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from inspect import iscoroutinefunction
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.utils.text import slugify

from smallstack.displays import FROM_SETTINGS, DashboardWidget

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: What a group or an app label must look like to be a segment of its page's URL
#: (``/smallstack/group/<str:group>/``, ``/smallstack/app/<str:app_label>/``).
URL_SEGMENT_RE = re.compile(r"[^/]+")


def template_for(widget: DashboardWidget) -> str:
    """The template a widget's card renders with: ``template_name``, else by ``widget_type``."""
    return widget.template_name or f"smallstack/widgets/{widget.widget_type}.html"


@dataclass(frozen=True, eq=False)
class Registration:
    """One widget as registered: the instance plus where it belongs."""

    widget: DashboardWidget
    key: str
    group: str | None
    app_label: str | None
    model: type[Model] | None = None
    #: URL name (and kwargs) used when the widget sets no ``url_name`` (e.g. the Explorer page).
    default_url_name: str | None = None
    default_url_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        return self.model._meta.model_name if self.model is not None else None

    @cached_property
    def has_api_extras(self) -> bool:
        """Whether the widget adds API-only data (overrides ``get_api_extras``)."""
        method = getattr(self.widget.get_api_extras, "__func__", None)
        return method is not DashboardWidget.get_api_extras

    @cached_property
    def is_async(self) -> bool:
        """Whether ``get_data`` is an ``async def`` (looked up once: it is on every evaluation)."""
        return iscoroutinefunction(self.widget.get_data)


class UnknownScope(LookupError):
    """A group or app label that no registered widget belongs to (a 404 on pages and the API)."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _validate(widget: DashboardWidget) -> None:
    name = type(widget).__name__
    if not isinstance(widget, DashboardWidget):
        raise ImproperlyConfigured(f"{widget!r} is not a DashboardWidget instance")
    if not widget.title:
        raise ImproperlyConfigured(f"{name} needs a title")
    if widget.span not in (1, 2):
        raise ImproperlyConfigured(f"{name}.span must be 1 or 2, not {widget.span!r}")
    if widget.timeout is not None and not widget.timeout > 0:
        raise ImproperlyConfigured(f"{name}.timeout must be a positive number of seconds")
    if widget.cache_ttl is None or widget.cache_ttl < 0:
        raise ImproperlyConfigured(f"{name}.cache_ttl must be 0 or more seconds")
    if widget.refresh_interval is not None and not widget.refresh_interval > 0:
        raise ImproperlyConfigured(f"{name}.refresh_interval must be positive seconds or None")
    failures = widget.breaker_failures
    if failures is not FROM_SETTINGS and failures is not None and not _is_count(failures):
        raise ImproperlyConfigured(
            f"{name}.breaker_failures must be a whole number of at least 1, or None"
        )
    if widget.breaker_cooldown is not None and not widget.breaker_cooldown > 0:
        raise ImproperlyConfigured(f"{name}.breaker_cooldown must be positive seconds or None")
    if widget.key is not None and not KEY_RE.match(widget.key):
        raise ImproperlyConfigured(
            f"{name}.key {widget.key!r} may hold only letters, digits, '.', '_' and '-'"
        )
    _check_template(widget)


def _check_template(widget: DashboardWidget) -> None:
    """The card's template must exist and compile: a page cannot render without it."""
    name = type(widget).__name__
    template = template_for(widget)
    chosen_by = (
        f"template_name {widget.template_name!r}"
        if widget.template_name
        else f"widget_type {widget.widget_type!r}"
    )
    try:
        get_template(template)
    except TemplateDoesNotExist:
        raise ImproperlyConfigured(
            f"{name}: no template {template!r} (chosen by its {chosen_by})"
        ) from None
    except TemplateSyntaxError as exc:
        raise ImproperlyConfigured(
            f"{name}: template {template!r} does not compile: {exc}"
        ) from exc


def _check_url_segment(widget: DashboardWidget, what: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not URL_SEGMENT_RE.fullmatch(value):
        raise ImproperlyConfigured(
            f"{type(widget).__name__}: {what} {value!r} cannot be part of its page's URL; "
            "use a non-empty string without '/'"
        )


def _app_label_of(widget: DashboardWidget) -> str:
    module = type(widget).__module__
    config = apps.get_containing_app_config(module)
    return config.label if config is not None else module.split(".")[0]


class WidgetRegistry:
    """Holds registrations by key, like ``django.contrib.admin.AdminSite`` holds model admins."""

    def __init__(self) -> None:
        self._registry: dict[str, Registration] = {}
        self._lock = threading.Lock()
        #: Counts registrations and removals: what was read from the registry is still current
        #: while this is unchanged.
        self.generation = 0

    def register(
        self,
        widget: DashboardWidget,
        *,
        model: type[Model] | None = None,
        group: str | None = None,
        app_label: str | None = None,
        default_url_name: str | None = None,
        default_url_kwargs: dict[str, Any] | None = None,
    ) -> Registration:
        """Add a widget. Two widgets with the same key raise ``ImproperlyConfigured``."""
        _validate(widget)
        if model is not None:
            app_label = app_label or model._meta.app_label
        app_label = app_label or _app_label_of(widget)
        key = widget.key or ".".join(
            part
            for part in (
                app_label,
                model._meta.model_name if model else None,
                slugify(widget.title),
            )
            if part
        )
        group = group or widget.group
        _check_url_segment(widget, "group", group)
        _check_url_segment(widget, "app label", app_label)
        registration = Registration(
            widget=widget,
            key=key,
            group=group,
            app_label=app_label,
            model=model,
            default_url_name=default_url_name,
            default_url_kwargs=dict(default_url_kwargs or {}),
        )
        with self._lock:
            existing = self._registry.get(key)
            if existing is not None:
                raise ImproperlyConfigured(
                    f"Dashboard widget key {key!r} is already registered by "
                    f"{existing.widget!r}; give {widget!r} a distinct `key` or title."
                )
            self._registry[key] = registration
            self.generation += 1
        return registration

    def unregister(self, key: str) -> None:
        """Remove a widget by key; an unknown key raises ``KeyError``."""
        with self._lock:
            if key not in self._registry:
                raise KeyError(f"No dashboard widget is registered with key {key!r}")
            del self._registry[key]
            self.generation += 1

    def get(self, key: str) -> Registration | None:
        return self._registry.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._registry

    def __len__(self) -> int:
        return len(self._registry)

    def all(self) -> list[Registration]:
        return sorted(
            self._registry.values(), key=lambda r: (r.widget.order, r.widget.title, r.key)
        )

    def select(
        self,
        *,
        group: str | None = None,
        app: str | None = None,
        model: type[Model] | str | None = None,
        dashboard_only: bool = False,
    ) -> list[Registration]:
        """Registrations matching every given filter, in display order.

        ``model`` is a model class or an ``"app_label.model_name"`` string.
        """
        if isinstance(model, str):
            model = apps.get_model(model)
        return [
            r
            for r in self.all()
            if (group is None or r.group == group)
            and (app is None or r.app_label == app)
            and (model is None or r.model is model)
            and (not dashboard_only or r.widget.on_dashboard)
        ]

    def scope(
        self,
        *,
        group: str | None = None,
        app: str | None = None,
        dashboard_only: bool | None = None,
    ) -> list[Registration]:
        """The widgets of a page's scope, in display order; the one scope rule of every surface.

        A group, an app label, or neither: the main dashboard. ``dashboard_only`` defaults to
        "the main dashboard only when unscoped" (a group or app page shows all of its widgets).
        An unknown group or app label raises :class:`UnknownScope`, with the message to show.
        """
        if group is not None and group not in self.groups():
            raise UnknownScope(f"No dashboard group named {group!r}")
        if app is not None and app not in self.app_labels():
            raise UnknownScope(f"No dashboard widgets for app {app!r}")
        if dashboard_only is None:
            dashboard_only = group is None and app is None
        return self.select(group=group, app=app, dashboard_only=dashboard_only)

    def groups(self) -> list[str]:
        return sorted({r.group for r in self._registry.values() if r.group})

    def app_labels(self) -> list[str]:
        return sorted({r.app_label for r in self._registry.values() if r.app_label})


#: The process-wide registry that the pages, the API and the live push read.
registry = WidgetRegistry()
