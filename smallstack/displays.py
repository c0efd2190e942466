"""The base class that every dashboard widget derives from."""

from __future__ import annotations

from typing import Any

from django.db.models import Model


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

    def get_data(self, model_class: type[Model] | None = None) -> dict[str, Any]:
        """Return ``{"headline": str, "detail": str, "status": str | None, ...}``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_data()")

    def get_api_extras(self, model_class: type[Model] | None = None) -> dict[str, Any] | None:
        """Return data added to the API item only (never to the HTML card)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.title!r}>"
