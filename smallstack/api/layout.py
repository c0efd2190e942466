"""Personal layouts over the API: ``GET``/``PUT``/``DELETE /api/dashboard/layout/?scope=…``.

Staff only, like the rest of the API; a session caller's ``PUT`` and ``DELETE`` need the CSRF
token (``X-CSRFToken``), a bearer token's do not. Each acts on the caller's own layout only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Router
from ninja.errors import ValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from smallstack import layouts
from smallstack.api.conditional import set_headers
from smallstack.api.schemas import Message, ValidationErrors
from smallstack.contract import WidgetContext
from smallstack.engine import engine
from smallstack.registry import registry

router = Router(tags=["layouts"])

PATH = "/layout/"
SCOPE_HELP = '"dashboard" (the main page), "group:<name>" or "app:<label>"'


def _known_scope(value: str) -> str:
    try:
        layouts.parse_scope(value)
    except layouts.InvalidScope as exc:  # a 422 naming the parameter
        raise PydanticCustomError("scope", "{problem}", {"problem": str(exc)}) from None
    return value


#: The ``scope`` query parameter: a page that exists now.
ScopeParam = Annotated[str, AfterValidator(_known_scope), Field(description=SCOPE_HELP)]


def _whole_number(value: Any) -> Any:
    # Literal[1, 2] alone would take true and 2.0 for 1 and 2.
    if type(value) is not int:
        raise PydanticCustomError("span", "must be 1 or 2, not {value}", {"value": repr(value)})
    return value


#: A card's width in grid columns.
Span = Annotated[Literal[1, 2], BeforeValidator(_whole_number)]


class LayoutIn(BaseModel):
    """A layout to save. Keys that are not widgets of the page are dropped; keys left out of
    ``order`` keep their default position."""

    model_config = ConfigDict(extra="forbid")

    scope: str | None = Field(None, description="optional; when sent, it must be the query's scope")
    order: list[str] = Field(default_factory=list, description="widget keys, first card first")
    hidden: list[str] = Field(default_factory=list, description="widget keys not to show")
    spans: dict[str, Span] = Field(
        default_factory=dict, description="widget key → width in grid columns, 1 or 2"
    )


class LayoutOut(BaseModel):
    """The caller's layout of the page, normalised: ``order`` lists every widget of the page
    (hidden ones too), ``hidden`` and ``spans`` only widgets of the page."""

    scope: str = Field(description=SCOPE_HELP)
    order: list[str]
    hidden: list[str]
    spans: dict[str, Span]


ERRORS: dict[int, Any] = {401: Message, 403: Message, 422: ValidationErrors}


def too_large(
    request: HttpRequest, exc: RequestDataTooBig | type[RequestDataTooBig]
) -> HttpResponse:
    """413 for a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django would answer an HTML 400)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return JsonResponse({"detail": f"Request body too large: at most {limit} bytes"}, status=413)


def _answer(response: HttpResponse, layout: layouts.Layout) -> dict[str, Any]:
    set_headers(response, None)  # the caller's own data: private, revalidated
    return layout.as_dict()


@router.get(PATH, response={200: LayoutOut, **ERRORS}, summary="Your layout of a page")
async def get_layout(request: HttpRequest, response: HttpResponse, scope: ScopeParam):
    """The caller's layout of the page; the default order when they saved none."""
    page = layouts.parse_scope(scope)
    keys = [r.key for r in page.registrations()]
    return _answer(response, await layouts.aget(request.user, page.name, keys))


router.add_api_operation(
    PATH, ["HEAD"], get_layout, response={200: LayoutOut, **ERRORS}, include_in_schema=False
)


@router.put(
    PATH,
    response={200: LayoutOut, 400: Message, 413: Message, **ERRORS},
    summary="Save your layout of a page",
)
async def put_layout(
    request: HttpRequest, response: HttpResponse, scope: ScopeParam, layout: LayoutIn
):
    """Replace the caller's layout of the page; answers it normalised.

    A span other than 1 or 2, an unknown field, or a body ``scope`` that differs from the
    query's is a 422 naming the field; a body that is not JSON is a 400, one over
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` a 413.
    """
    if layout.scope is not None and layout.scope != scope:
        raise ValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "layout", "scope"],
                    "msg": f"must be the query's scope {scope!r}, not {layout.scope!r}",
                }
            ]
        )
    page = layouts.parse_scope(scope)
    saved = await layouts.asave(
        request.user, page, order=layout.order, hidden=layout.hidden, spans=layout.spans
    )
    return _answer(response, saved)


@router.delete(PATH, response={200: LayoutOut, **ERRORS}, summary="Reset your layout of a page")
async def delete_layout(request: HttpRequest, response: HttpResponse, scope: ScopeParam):
    """Forget the caller's layout of the page; answers the default layout."""
    return _answer(response, await layouts.adelete(request.user, layouts.parse_scope(scope)))


async def arranged_contexts(
    user: Any, group: str | None, app: str | None, dashboard_only: bool
) -> list[WidgetContext]:
    """The widget list's ``?layout=1``: the selected widgets evaluated in ``user``'s order of
    the page (the group's if ``group`` is given, else the app's, else the main dashboard's),
    without the ones hidden there, which are not evaluated at all."""
    registrations = registry.select(group=group, app=app, dashboard_only=dashboard_only)
    page = layouts.scope_for(group, app)
    _, visible, _ = await layouts.aarranged(user, page.name, registrations)
    return await engine.evaluate(visible, with_extras=True)
