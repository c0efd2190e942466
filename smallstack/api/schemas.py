"""Typed shapes of the API's responses (they also document the OpenAPI schema).

Plain pydantic models: the items are dicts, and ninja's ``Schema`` reads its input through an
attribute getter that costs about a millisecond per response and drops undeclared keys.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["ok", "timeout", "error"]


class WidgetData(BaseModel):
    """What ``get_data()`` returned, merged with ``get_api_extras()``; extra keys pass through.

    Each widget type sets its own keys (a sparkline's ``points``, say); ``headline`` is the
    default card type's.
    """

    model_config = ConfigDict(extra="allow")

    headline: str | None = Field(
        None, description="the card's main figure; present for the default card widget type"
    )
    detail: str | None = None
    status: str | None = Field(None, description="ok, warning, error, unknown or the widget's own")


class BreakerInfo(BaseModel):
    """A paused widget's circuit breaker: open after too many consecutive failures."""

    state: Literal["open"]
    failures: int = Field(description="consecutive failures (timeouts or errors)")
    opened_at: datetime
    retry_at: datetime = Field(description="when the next evaluation (the trial) may run")
    reason: str | None = Field(
        description="why it opened, when not for counted failures (it blocked the event loop)"
    )


class WidgetItem(BaseModel):
    """One widget and the result of its latest evaluation."""

    key: str
    title: str
    icon: str = Field(description="Inline SVG markup set by the widget's developer")
    url: str | None
    order: int
    group: str | None
    app_label: str | None
    model_name: str | None
    span: int
    widget_type: str
    on_dashboard: bool
    state: State
    stale: bool = Field(description="data is the last good result, kept while the widget fails")
    error: str | None
    elapsed_ms: float
    evaluated_at: datetime | None = Field(description="when data was produced")
    data: WidgetData | None = Field(description="null when the widget has never succeeded")
    breaker: BreakerInfo | None = Field(
        None,
        description="set while the widget is paused by its circuit breaker (state is error)",
    )


class WidgetList(BaseModel):
    widgets: list[WidgetItem]
    generated_at: datetime
    elapsed_ms: float


class StatusSummary(BaseModel):
    """A summary for uptime monitors: HTTP 200 when ``healthy``, 503 otherwise."""

    healthy: bool
    total: int
    states: dict[str, int] = Field(description="widgets by state: ok, timeout, error")
    statuses: dict[str, int] = Field(
        description="widgets by their own data status; 'none' counts widgets without one"
    )
    failing: list[str] = Field(
        description="keys of widgets that timed out, errored or report status 'error'"
    )
    generated_at: datetime
    elapsed_ms: float


class Message(BaseModel):
    """The body of a 401, 403 or 404."""

    detail: str


class ValidationIssue(BaseModel):
    """One rejected parameter, as pydantic reports it."""

    model_config = ConfigDict(extra="allow")

    type: str
    loc: list[str | int] = Field(description='where: ["query", "dashboard_only"]')
    msg: str


class ValidationErrors(BaseModel):
    """The body of a 422: a query parameter with a value the endpoint does not accept."""

    detail: list[ValidationIssue]
