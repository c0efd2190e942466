"""What an evaluated widget is, to every surface: the page, the API and the live push.

- :class:`State`: how an evaluation ended (``ok``, ``timeout``, ``error``).
- :func:`validate_data` / :func:`validate_extras`: what ``get_data()`` and ``get_api_extras()``
  may return. The shape rules belong to the widget's type (:meth:`DashboardWidget.clean_data`:
  the default card wants a string ``headline``); the rules every type shares live here: a dict,
  JSON-serialisable, at most ``MAX_DATA_BYTES`` once serialised.
- :class:`WidgetContext`: a widget with its latest result, and :meth:`WidgetContext.as_item`,
  the item shape of the API and the live push.
- :func:`digest` and :func:`stable_item`: what ETags and change detection compare.
- :func:`resolve_url`: the card's link.

The engine produces these; nothing here evaluates anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from django.urls import NoReverseMatch, reverse

from smallstack import conf
from smallstack.displays import DashboardWidget, InvalidWidgetData
from smallstack.registry import Registration, template_for

__all__ = [
    "KNOWN_STATUSES",
    "VOLATILE_ITEM_FIELDS",
    "InvalidWidgetData",
    "State",
    "WidgetContext",
    "digest",
    "resolve_url",
    "short_error",
    "stable_item",
    "validate_data",
    "validate_extras",
]

logger = logging.getLogger("smallstack.dashboard")


class State(StrEnum):
    """How a widget's latest evaluation ended."""

    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"


#: Statuses a card colours; any other string gets a neutral badge.
KNOWN_STATUSES = frozenset({"ok", "warning", "error", "unknown"})
#: Item fields that change with every evaluation while the card shows the same thing.
VOLATILE_ITEM_FIELDS = frozenset({"elapsed_ms", "evaluated_at"})
_ERROR_MAX = 300


# -- data ------------------------------------------------------------------------------------


def validate_data(widget: DashboardWidget, data: Any) -> dict[str, Any]:
    """``get_data()``'s result, checked by the widget's type and by the shared rules; a copy."""
    if not isinstance(data, Mapping):
        raise InvalidWidgetData(f"get_data() returned {type(data).__name__}, expected a dict")
    cleaned = widget.clean_data(data)
    return _serialisable(cleaned, "get_data()")


def validate_extras(extras: Any) -> dict[str, Any]:
    """``get_api_extras()``'s result (``None``: nothing to add), checked by the shared rules."""
    if extras is None:
        return {}
    if not isinstance(extras, Mapping):
        raise InvalidWidgetData(
            f"get_api_extras() returned {type(extras).__name__}, expected a dict"
        )
    return _serialisable(extras, "get_api_extras()")


def merge_extras(data: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    """``data`` merged with validated ``extras``; the result is held to the size limit too."""
    if not extras:
        return data
    merged = {**data, **extras}
    _check_size(len(json.dumps(merged)))
    return merged


def _serialisable(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    try:
        size = len(json.dumps(data, allow_nan=False))  # ASCII: characters are bytes
    except RecursionError:
        raise InvalidWidgetData(f"{source} returned data nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise InvalidWidgetData(
            f"{source} returned data that is not JSON-serialisable: {exc}"
        ) from exc
    _check_size(size)
    return dict(data)


def _check_size(size: int) -> None:
    limit = int(conf.get("MAX_DATA_BYTES"))
    if size > limit:
        raise InvalidWidgetData(f"data is {_bytes(size)}, over the {_bytes(limit)} limit")


def _bytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"


def short_error(exc: BaseException) -> str:
    """An exception as a card shows it: ``Type: message``, at most a few hundred characters."""
    if isinstance(exc, InvalidWidgetData):
        text = str(exc)
    else:
        message = str(exc)
        text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


# -- comparing ---------------------------------------------------------------------------------


def stable_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (:meth:`WidgetContext.as_item`) without its volatile fields."""
    return {name: value for name, value in item.items() if name not in VOLATILE_ITEM_FIELDS}


def digest(value: Any) -> str:
    """SHA-256 hex of a JSON value, independent of key order."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


# -- an evaluated widget -------------------------------------------------------------------------


@dataclass
class WidgetContext:
    """A widget together with the result of its latest evaluation, ready to render."""

    registration: Registration
    state: State
    data: dict[str, Any] | None
    error: str | None
    elapsed_ms: float
    #: When ``data`` was produced (for stale data: when the last good evaluation ran).
    evaluated_at: datetime | None
    stale: bool = False
    cached: bool = False
    url: str | None = None
    #: While the widget's circuit breaker is open (it is paused, not evaluated): the
    #: breaker's state, failures, when it opened and when it retries; otherwise None.
    breaker: dict[str, Any] | None = None

    @property
    def widget(self) -> DashboardWidget:
        return self.registration.widget

    @property
    def key(self) -> str:
        return self.registration.key

    @property
    def model(self):
        return self.registration.model

    @property
    def model_name(self) -> str | None:
        return self.registration.model_name

    @property
    def group(self) -> str | None:
        return self.registration.group

    @property
    def app_label(self) -> str | None:
        return self.registration.app_label

    @property
    def template_name(self) -> str:
        return template_for(self.widget)

    @property
    def status(self) -> Any:
        """The widget's own ``status`` value, if it set one."""
        return self.data.get("status") if self.data else None

    @property
    def status_class(self) -> str:
        """CSS modifier for the badge: a known status, or "other" (neutral)."""
        return self.status if self.status in KNOWN_STATUSES else "other"

    @property
    def age_seconds(self) -> float | None:
        if self.evaluated_at is None:
            return None
        return max(0.0, (datetime.now(UTC) - self.evaluated_at).total_seconds())

    def as_item(self) -> dict[str, Any]:
        """The JSON shape shared by the API and the live push."""
        widget = self.widget
        return {
            "key": self.key,
            "title": widget.title,
            "icon": widget.icon,
            "url": self.url,
            "order": widget.order,
            "group": self.group,
            "app_label": self.app_label,
            "model_name": self.model_name,
            "span": widget.span,
            "widget_type": widget.widget_type,
            "on_dashboard": widget.on_dashboard,
            "state": self.state,
            "stale": self.stale,
            "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
            "data": self.data,
            "breaker": self.breaker,
        }


def resolve_url(registration: Registration) -> str | None:
    """The card's link: the widget's ``url_name``, else the registration's default."""
    widget = registration.widget
    if widget.url_name:
        name, kwargs = widget.url_name, widget.url_kwargs or {}
    elif registration.default_url_name:
        name, kwargs = registration.default_url_name, registration.default_url_kwargs
    else:
        return None
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        logger.warning("Dashboard widget %s links to unknown URL %r", registration.key, name)
        return None
