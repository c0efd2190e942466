"""The dashboard's JSON endpoints: all widgets, one widget, a status summary for monitors."""

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix
from ninja import Router, Status
from ninja.decorators import decorate_view
from ninja.errors import HttpError
from pydantic import BeforeValidator

from smallstack import dashboard
from smallstack.api.conditional import etag_for, not_modified, set_headers
from smallstack.api.layout import arranged_contexts
from smallstack.api.polls import polls
from smallstack.api.rendering import list_body
from smallstack.api.schemas import (
    Message,
    StatusSummary,
    ValidationErrors,
    WidgetItem,
    WidgetList,
)
from smallstack.api.snapshots import Snapshot, snapshots
from smallstack.contract import State, WidgetContext

router = Router(tags=["dashboard"])

_FLAGS = {"1": True, "true": True, "0": False, "false": False}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    flag = _FLAGS.get(str(value).lower())
    if flag is None:
        raise ValueError(f"must be 1, 0, true or false, not {value!r}")
    return flag


#: A query flag that accepts exactly 1/0/true/false; anything else is a 422 naming the param.
Flag = Annotated[bool, BeforeValidator(_flag)]


async def _contexts(
    group: str | None,
    app: str | None,
    dashboard_only: bool,
    layout_of: Any = None,
    poll: HttpRequest | None = None,
) -> Snapshot:
    """The scope's widgets evaluated, as a snapshot (reused while every result is cached).

    ``poll``: a request whose path and query string name this scope, remembered for
    :mod:`~smallstack.api.polls` when the answer is a snapshot that lasts.
    """
    selected = None
    if layout_of is None:
        selected = dashboard.registry.select(group=group, app=app, dashboard_only=dashboard_only)
    if not selected:  # a group or an app with widgets selected exists
        # Unknown scopes are 404s, as on the HTML group and app pages.
        if group is not None and group not in dashboard.registry.groups():
            raise HttpError(404, f"No dashboard group named {group!r}")
        if app is not None and app not in dashboard.registry.app_labels():
            raise HttpError(404, f"No dashboard widgets for app {app!r}")
    if selected is None:  # ?layout=1: that user's order, hidden widgets not evaluated
        return Snapshot((), await arranged_contexts(layout_of, group, app, dashboard_only))
    scope = (group, app, dashboard_only, get_script_prefix())  # links depend on the prefix
    return _remembered(poll, scope, await snapshots.evaluate(scope, selected))


def _remembered(poll: HttpRequest | None, scope: Any, snapshot: Snapshot) -> Snapshot:
    if poll is not None and snapshot.expires:
        polls.remember(poll, scope)
    return snapshot


def _get_and_head(path: str, **options: Any):
    """``@router.get(path, **options)`` that answers ``HEAD`` too.

    ``HEAD`` runs the same view, so it has the status code and headers a ``GET`` would have
    (``ETag``, ``Content-Length``… and 304 on ``If-None-Match``); the server drops the body, as
    HTTP requires (uvicorn and Django's test client do). It is a second operation left out of
    the OpenAPI document, which keeps one operation and one ``operationId`` per path.
    """

    def decorator(view):
        router.add_api_operation(
            path, ["HEAD"], view, response=options["response"], include_in_schema=False
        )
        return router.get(path, **options)(view)

    return decorator


def _now() -> datetime:
    return datetime.now(UTC)


def _json(body: bytes, etag: str) -> HttpResponse:
    """A JSON response of ``body``, already serialised.

    The items are serialised once per evaluation, and checked against the response schema
    then, by :mod:`smallstack.api.rendering`: serialising and validating them through ninja on
    every poll would only cost time.
    """
    response = HttpResponse(body, content_type="application/json")
    set_headers(response, etag)
    return response


@_get_and_head(
    "/widgets/",
    response={
        200: WidgetList,
        304: None,
        401: Message,
        403: Message,
        404: Message,
        422: ValidationErrors,
    },
    summary="All widgets, evaluated",
)
@decorate_view(polls)
async def list_widgets(
    request: HttpRequest,
    group: str | None = None,
    app: str | None = None,
    dashboard_only: Flag = False,
    layout: Flag = False,
):
    """Every widget in scope, in display order, with its latest data.

    A widget that fails is listed with its state (``timeout``/``error``) and, if it had one, its
    last good data marked ``stale``. Send ``If-None-Match`` to get 304 while nothing changed.
    ``layout=1`` follows the caller's layout of the page (the group's, else the app's, else the
    main dashboard's): its order, and the widgets hidden there left out, unevaluated.
    """
    started = time.perf_counter()
    layout_of = request.user if layout else None
    snapshot = await _contexts(group, app, dashboard_only, layout_of, poll=request)
    unchanged = not_modified(request, snapshot.etag)
    if unchanged is not None:
        return unchanged
    body = list_body(snapshot.rendered, generated_at=_now().isoformat(), elapsed_ms=_ms(started))
    return _json(body, snapshot.etag)


@_get_and_head(
    "/widgets/{key}/",
    response={200: WidgetItem, 304: None, 401: Message, 403: Message, 404: Message},
    summary="One widget, evaluated",
)
@decorate_view(polls)
async def get_widget(request: HttpRequest, key: str):
    """One widget by key (404 for an unknown key)."""
    registration = dashboard.registry.get(key)
    if registration is None:
        raise HttpError(404, f"No dashboard widget with key {key!r}")
    scope = (key, get_script_prefix())
    snapshot = _remembered(request, scope, await snapshots.evaluate(scope, [registration]))
    unchanged = not_modified(request, snapshot.etag)
    if unchanged is not None:
        return unchanged
    return _json(snapshot.rendered[0].json, snapshot.etag)


def _failing(context: WidgetContext) -> bool:
    return context.state != State.OK or context.status == "error"


@_get_and_head(
    "/status/",
    response={
        200: StatusSummary,
        304: None,
        401: Message,
        403: Message,
        404: Message,
        422: ValidationErrors,
        503: StatusSummary,
    },
    summary="Health summary for uptime monitors",
)
async def status(
    request: HttpRequest,
    response: HttpResponse,
    group: str | None = None,
    app: str | None = None,
    dashboard_only: Flag = False,
):
    """Counts by state and by status, and the failing keys.

    HTTP 200 when every widget is ok, 503 when any timed out, errored or reports status
    ``error``. Same filters as the widget list.
    """
    started = time.perf_counter()
    contexts = (await _contexts(group, app, dashboard_only)).contexts
    states = {str(state): 0 for state in State}
    statuses: dict[str, int] = {}
    for context in contexts:
        states[context.state] = states.get(context.state, 0) + 1
        name = context.status if isinstance(context.status, str) else "none"
        statuses[name] = statuses.get(name, 0) + 1
    failing = [c.key for c in contexts if _failing(c)]
    summary = {
        "healthy": not failing,
        "total": len(contexts),
        "states": states,
        "statuses": statuses,
        "failing": failing,
    }
    set_headers(response, None)
    if failing:
        # No ETag: a monitor must see the 503 on every poll.
        return Status(503, {**summary, "generated_at": _now(), "elapsed_ms": _ms(started)})
    etag = etag_for([], summary)
    unchanged = not_modified(request, etag)
    if unchanged is not None:
        return unchanged
    set_headers(response, etag)
    return {**summary, "generated_at": _now(), "elapsed_ms": _ms(started)}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
