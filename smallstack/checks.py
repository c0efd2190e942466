"""System checks: dashboard configuration errors reported by ``manage.py check``, not per request.

Django runs these before ``runserver`` and ``migrate`` and on ``manage.py check`` (all carry the
``smallstack`` tag, so ``check --tag smallstack`` runs only them). Widget checks look at every
registered widget, or with ``check <app_label>…`` at the widgets of those apps; the settings and
thread-pool checks are project-wide and run unless the apps given leave out ``smallstack``.

- ``smallstack.E001`` (tag ``urls``): a widget's link does not reverse: its ``url_name`` with
  ``url_kwargs`` (or, without ``url_name``, its registration's ``default_url_name`` with
  ``default_url_kwargs``) raises instead of giving a URL. At request time the card would just
  lose its link, with a log line per request.
- ``smallstack.E002`` (tag ``templates``): a widget's card template (``template_name``, else
  ``smallstack/widgets/<widget_type>.html``) does not exist or does not compile with the
  current ``TEMPLATES``. ``register()`` refuses such a widget; this re-verifies every registered
  widget, since templates and settings can differ from the ones it was registered under.
- ``smallstack.E003``: ``SMALLSTACK_DASHBOARD`` is not a dict.
- ``smallstack.E004``: ``SMALLSTACK_DASHBOARD`` holds keys the dashboard does not know (a typo
  silently leaves the default in force); the message names the closest known key.
- ``smallstack.E005``: a known ``SMALLSTACK_DASHBOARD`` key has a value of the wrong type or
  range (e.g. a timeout that is not a positive number, a ``CACHE`` alias missing from
  ``CACHES``).
- ``smallstack.W001``: ``THREAD_POOL_SIZE`` is smaller than the number of sync widgets (plain
  ``def get_data``) one page can show: the main dashboard, a group page or an app page. Those
  widgets then queue for a thread, and the last ones time out while waiting rather than while
  working.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.template.loader import get_template
from django.urls import reverse

from smallstack import conf
from smallstack.registry import Registration, registry, template_for

#: Tag of every dashboard check: ``manage.py check --tag smallstack``.
TAG = "smallstack"
#: The app label whose presence in ``check <app_label>…`` selects the project-wide checks.
APP_LABEL = "smallstack"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_networks(value: Any) -> bool:
    """A list or tuple of IP addresses or networks (``10.0.0.0/8``)."""
    if not isinstance(value, (list, tuple)):
        return False
    try:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
    except (TypeError, ValueError):
        return False
    return True


def _is_redis_url(value: Any) -> bool:
    return isinstance(value, str) and (
        value == "" or urlsplit(value).scheme in {"redis", "rediss", "unix"}
    )


#: What each ``SMALLSTACK_DASHBOARD`` value must be: (test, description for the message).
VALUE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "WIDGET_TIMEOUT": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "THREAD_POOL_SIZE": (_is_count, "a positive integer"),
    "CACHE": (
        lambda v: isinstance(v, str) and v in getattr(settings, "CACHES", {}),
        "the alias of a cache in CACHES",
    ),
    "STALE_TTL": (
        lambda v: v is None or (_is_number(v) and v >= 0),
        "0 or more seconds, or None (keep forever)",
    ),
    "BUILTIN_WIDGETS": (lambda v: isinstance(v, bool), "True or False"),
    "RENDER_BUDGET": (lambda v: _is_number(v) and v >= 0, "0 or more seconds"),
    "LOCK_URL": (_is_redis_url, 'a redis://, rediss:// or unix:// URL, or ""'),
    "RETRY_AFTER": (lambda v: _is_number(v) and v >= 0, "0 or more seconds"),
    "MAX_DATA_BYTES": (_is_count, "a positive integer (bytes)"),
    "LOOP_BLOCK_LIMIT": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "LOOP_BLOCK_COOLDOWN": (lambda v: _is_number(v) and v >= 0, "0 or more seconds"),
    "BREAKER_FAILURES": (lambda v: v is None or _is_count(v), "a positive integer, or None"),
    "BREAKER_COOLDOWN": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "BREAKER_MAX_COOLDOWN": (lambda v: _is_number(v) and v > 0, "a positive number of seconds"),
    "LIVE_MAX_MESSAGE": (_is_count, "a positive integer (characters)"),
    "API_TOKEN_CACHE": (lambda v: _is_number(v) and v >= 0, "0 or more seconds (0 = off)"),
    "METRICS_ALLOWED_IPS": (
        _is_networks,
        "a list of IP addresses or networks, e.g. ['127.0.0.1', '10.0.0.0/8'] ([] = any)",
    ),
}


def _registrations(app_configs: Sequence[AppConfig] | None) -> list[Registration]:
    """Every registration, or those of the given apps."""
    registrations = registry.all()
    if app_configs is None:
        return registrations
    labels = {config.label for config in app_configs}
    return [r for r in registrations if r.app_label in labels]


def _project_wide(app_configs: Sequence[AppConfig] | None) -> bool:
    return app_configs is None or any(config.label == APP_LABEL for config in app_configs)


def _link(registration: Registration) -> tuple[str, str, Any] | None:
    """(where the link comes from, URL name, kwargs) the card's link is reversed from."""
    widget = registration.widget
    if widget.url_name:
        return "url_name", widget.url_name, widget.url_kwargs or {}
    if registration.default_url_name:
        return (
            "default_url_name",
            registration.default_url_name,
            registration.default_url_kwargs,
        )
    return None


@register(Tags.urls, TAG)
def check_widget_urls(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """smallstack.E001 for each widget whose link does not reverse."""
    messages: list[CheckMessage] = []
    for registration in _registrations(app_configs):
        link = _link(registration)
        if link is None:
            continue
        source, name, url_kwargs = link
        try:
            reverse(name, kwargs=url_kwargs)
        except Exception as exc:  # NoReverseMatch, or kwargs reverse() cannot use
            messages.append(
                Error(
                    f"Dashboard widget {registration.key!r} links to {name!r} "
                    f"with kwargs {url_kwargs!r} (its {source}), which does not reverse: "
                    f"{type(exc).__name__}: {exc}",
                    hint="Use the name (with its namespace, e.g. 'admin:...') and the "
                    "kwargs of a pattern in ROOT_URLCONF, or leave url_name unset for "
                    "a card without a link.",
                    obj=registration.widget,
                    id="smallstack.E001",
                )
            )
    return messages


@register(Tags.templates, TAG)
def check_widget_templates(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """smallstack.E002 for each widget whose card template is missing or does not compile."""
    messages: list[CheckMessage] = []
    for registration in _registrations(app_configs):
        widget = registration.widget
        template = template_for(widget)
        chosen_by = (
            f"template_name {widget.template_name!r}"
            if widget.template_name
            else f"widget_type {widget.widget_type!r}"
        )
        try:
            get_template(template)
        except TemplateDoesNotExist:
            problem = f"no template {template!r} exists"
        except TemplateSyntaxError as exc:
            problem = f"template {template!r} does not compile: {exc}"
        else:
            continue
        messages.append(
            Error(
                f"Dashboard widget {registration.key!r} cannot render its card: {problem} "
                f"(chosen by its {chosen_by}).",
                hint="Fix the template, set template_name or widget_type to one that exists, "
                "or check TEMPLATES (DIRS, APP_DIRS) and INSTALLED_APPS.",
                obj=widget,
                id="smallstack.E002",
            )
        )
    return messages


@register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """smallstack.E003-E005: the ``SMALLSTACK_DASHBOARD`` setting's shape, keys and values."""
    if not _project_wide(app_configs):
        return []
    return conf.check_settings_dict(
        "SMALLSTACK_DASHBOARD",
        conf.DEFAULTS,
        VALUE_RULES,
        ("smallstack.E003", "smallstack.E004", "smallstack.E005"),
        dict_hint="Set it to a dict of the keys to change, e.g. {'WIDGET_TIMEOUT': 5.0}.",
    )


def _pages() -> Iterable[tuple[str, list[Registration]]]:
    """Every page of widgets: (its name, its widgets)."""
    yield "the main dashboard", registry.select(dashboard_only=True)
    for group in registry.groups():
        yield f"the group page {group!r}", registry.select(group=group)
    for app_label in registry.app_labels():
        yield f"the app page {app_label!r}", registry.select(app=app_label)


@register(TAG)
def check_thread_pool(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """smallstack.W001 for each page with more sync widgets than ``THREAD_POOL_SIZE``."""
    if not _project_wide(app_configs):
        return []
    if not isinstance(getattr(settings, "SMALLSTACK_DASHBOARD", {}), dict):
        return []  # smallstack.E003 reports it
    size = conf.get("THREAD_POOL_SIZE")
    if not _is_count(size):
        return []  # smallstack.E005 reports it
    messages: list[CheckMessage] = []
    for page, registrations in _pages():
        sync = [r.key for r in registrations if not r.is_async]
        if len(sync) <= size:
            continue
        messages.append(
            Warning(
                f"{page[0].upper()}{page[1:]} shows {len(sync)} sync widgets but "
                f"THREAD_POOL_SIZE is {size}: each time the page is evaluated, "
                f"{len(sync) - size} of them queue for a free thread and may time out "
                "waiting. "
                f"Sync widgets: {', '.join(sync)}.",
                hint=f"Set SMALLSTACK_DASHBOARD['THREAD_POOL_SIZE'] to at least {len(sync)}, "
                "or make some of these widgets' get_data() async.",
                obj="settings.SMALLSTACK_DASHBOARD",
                id="smallstack.W001",
            )
        )
    return messages
