"""The base class that every dashboard widget derives from, and the error its data rules raise."""

from __future__ import annotations

import math
import numbers
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

#: What ``get_data()`` returns: a JSON-ready mapping (its shape is up to the widget's type).
WidgetData = Mapping[str, Any]


class InvalidWidgetData(ValueError):
    """A widget returned data its card cannot show; the message says what was wrong."""


#: The most points a sparkline's ``series`` may hold.
MAX_SERIES_POINTS = 500


def clean_card(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The default card's rules: a string ``headline``; ``detail``, ``status``: strings or None."""
    headline = data.get("headline")
    if not isinstance(headline, str):
        found = type(headline).__name__ if "headline" in data else "nothing"
        raise InvalidWidgetData(f"get_data() must return a string 'headline', got {found}")
    for name in ("detail", "status"):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidWidgetData(
                f"get_data() '{name}' must be a string or None, got {type(value).__name__}"
            )
    return data


def clean_sparkline(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A card's rules, plus ``series`` (finite numbers) and optional ``series_labels`` (strings)."""
    data = clean_card(data)
    series = data.get("series")
    if not isinstance(series, Sequence) or isinstance(series, str | bytes):
        found = type(series).__name__ if "series" in data else "nothing"
        raise InvalidWidgetData(f"a sparkline needs 'series', a list of numbers, got {found}")
    if len(series) > MAX_SERIES_POINTS:
        raise InvalidWidgetData(
            f"'series' has {len(series)} points, over the {MAX_SERIES_POINTS} limit"
        )
    for index, value in enumerate(series):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidWidgetData(
                f"'series' item {index} is {type(value).__name__}, not a number"
            )
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int beyond any float
            finite = False
        if not finite:
            raise InvalidWidgetData(f"'series' item {index} is {value}, not a finite number")
    cleaned = {**data, "series": [v if isinstance(v, int) else float(v) for v in series]}
    labels = data.get("series_labels")
    if labels is not None:
        if (
            not isinstance(labels, Sequence)
            or isinstance(labels, str | bytes)
            or not all(isinstance(label, str) for label in labels)
        ):
            raise InvalidWidgetData("'series_labels' must be a list of strings")
        if len(labels) != len(series):
            raise InvalidWidgetData(
                f"'series_labels' has {len(labels)} items for {len(series)} points"
            )
        cleaned["series_labels"] = list(labels)
    return cleaned


#: The data rules of the widget types that ship with the dashboard, by ``widget_type``. Any
#: other type (a project's own template) gets the default card's rules unless its widget
#: overrides :meth:`DashboardWidget.clean_data`.
TYPE_RULES: dict[str, Callable[[Mapping[str, Any]], Mapping[str, Any]]] = {
    "card": clean_card,
    "sparkline": clean_sparkline,
}


class FromSettings:
    """The type of :data:`FROM_SETTINGS`."""

    def __repr__(self) -> str:
        return "FROM_SETTINGS"


#: A widget attribute left to the ``SMALLSTACK_DASHBOARD`` setting of the same purpose.
FROM_SETTINGS: Final = FromSettings()


class DashboardWidget:
    """A card on the dashboard.

    Subclass it, set the class attributes that describe the card, and implement
    ``get_data()`` (a plain or an ``async def`` method) returning at least a ``headline``.
    Instances are registered with :func:`smallstack.dashboard.register` or attached to an
    Explorer registration through ``explorer_dashboard_widgets``.
    """

    #: Label on the card.
    title: str = ""
    #: Inline SVG markup. Developer-provided and trusted: rendered without escaping.
    icon: str = ""
    #: Lower numbers come first.
    order: int = 50
    #: Optional URL name (and kwargs) the card links to.
    url_name: str | None = None
    url_kwargs: dict[str, Any] | None = None
    #: False hides the card from the main dashboard; scoped pages still show it.
    on_dashboard: bool = True
    #: Grid columns the card spans: 1 (normal) or 2 (wide).
    span: int = 1
    #: Group of a standalone widget, for the ``/smallstack/group/<group>/`` page and filters.
    group: str | None = None
    #: Selects the template ``smallstack/widgets/<widget_type>.html``.
    widget_type: str = "card"
    #: A template to use instead of the one ``widget_type`` selects.
    template_name: str | None = None
    #: Stable unique id. Derived from the app, the model and the title when left empty.
    key: str | None = None
    #: Seconds before the evaluation is abandoned; None uses ``WIDGET_TIMEOUT``.
    timeout: float | None = None
    #: Seconds a good result is reused without evaluating again; 0 evaluates every time.
    cache_ttl: float = 0
    #: Seconds between live re-evaluations pushed to open dashboards; None never refreshes.
    refresh_interval: float | None = None
    #: Consecutive failures after which the widget is paused (its circuit breaker opens);
    #: None never pauses it. Left alone, ``BREAKER_FAILURES`` decides.
    breaker_failures: int | FromSettings | None = FROM_SETTINGS
    #: Seconds of the first pause (it doubles with each failed retry); None uses
    #: ``BREAKER_COOLDOWN``.
    breaker_cooldown: float | None = None

    def get_data(self, *args: Any, **kwargs: Any) -> WidgetData | Awaitable[WidgetData]:
        """Return ``{"headline": str, "detail": str, "status": str | None, ...}``.

        A plain or an ``async def`` method. Widgets attached to an Explorer model are called
        with ``model_class=<the model>``; standalone widgets with no arguments.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement get_data()")

    def get_api_extras(
        self, *args: Any, **kwargs: Any
    ) -> WidgetData | Awaitable[WidgetData | None] | None:
        """Return data added to the API item only (never to the HTML card); same arguments."""
        return None

    def clean_data(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """Check ``get_data()``'s result against this widget type's rules; return what to keep.

        Raise :class:`InvalidWidgetData` to reject it. The default card shows a string
        ``headline`` and, optionally, a string ``detail`` and ``status``; the ``sparkline`` type
        also a ``series`` (see :data:`TYPE_RULES`). A widget with a template of its own overrides
        this with its own rules. Whatever the type, the data must also be JSON-serialisable and
        within ``MAX_DATA_BYTES``.
        """
        return TYPE_RULES.get(self.widget_type, clean_card)(data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}>"


class SparklineWidget(DashboardWidget):
    """A card with a small line chart of ``series`` beside its headline.

    ``get_data()`` returns the card's keys plus ``series`` (up to :data:`MAX_SERIES_POINTS`
    finite numbers, oldest first) and, optionally, ``series_labels`` (one string per point, such
    as the hour it counts), which the chart's text alternative names.
    """

    widget_type = "sparkline"
