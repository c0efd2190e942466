"""The API's published OpenAPI document against the responses the endpoints really send.

Each endpoint's documented status codes are listed in ``DOCUMENTED``; every one of them is
produced for real (through Django's test client and the whole middleware stack) and its body
is validated with ``jsonschema`` against the schema the document gives for that endpoint and
code, ``$ref``s resolved within the document. A response whose code the document does not list
for its endpoint, or whose body does not match, fails.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from smallstack import tokens
from smallstack.contract import InvalidWidgetData
from smallstack.displays import DashboardWidget
from tests.conftest import bearer
from tests.widgets import Hangs, Returns, unique

pytestmark = pytest.mark.django_db(transaction=True)

LIST = "/api/dashboard/widgets/"
ONE = "/api/dashboard/widgets/{key}/"
STATUS = "/api/dashboard/status/"

#: Every status code each endpoint can answer, as the document must list them.
DOCUMENTED = {
    LIST: {200, 304, 401, 403, 404, 422},
    ONE: {200, 304, 401, 403, 404},
    STATUS: {200, 304, 401, 403, 404, 422, 503},
}
#: The personal layout endpoint: its methods and their codes (tests/test_layouts.py produces
#: each of them and validates the bodies with :func:`check`).
LAYOUT = "/api/dashboard/layout/"
LAYOUT_DOCUMENTED = {
    "get": {200, 401, 403, 422},
    "put": {200, 400, 401, 403, 413, 422},
    "delete": {200, 401, 403, 422},
}
DOCUMENT_URI = "urn:smallstack:openapi"
JSON = "application/json"

formats = FormatChecker(formats=())


@formats.checks("date-time", raises=ValueError)
def _is_aware_datetime(value: object) -> bool:
    """RFC 3339 date-times as the API writes them: ISO 8601 with a UTC offset."""
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


class Points(DashboardWidget):
    """A widget type whose data is a list of numbers and no headline."""

    def __init__(self, points: list[float]) -> None:
        self.title, self.points = unique("points"), points

    def get_data(self) -> dict[str, Any]:
        return {"points": self.points}

    def clean_data(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        if not isinstance(data.get("points"), list):
            raise InvalidWidgetData("needs 'points', a list")
        return data


@pytest.fixture
def document(client, staff_key) -> dict[str, Any]:
    """The OpenAPI document exactly as ``/api/openapi.json`` publishes it."""
    response = client.get("/api/openapi.json", **bearer(staff_key))
    assert response.status_code == 200
    return response.json()


def operation(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    assert path in document["paths"], f"{path} is not in the OpenAPI document"
    return document["paths"][path][method]


def validator_for(
    document: dict[str, Any], path: str, code: int, method: str = "get"
) -> Draft202012Validator | None:
    """A validator for the body the document declares for ``method`` ``path`` and ``code``.

    None when the document declares that the response has no body (a 304).
    """
    responses = operation(document, path, method)["responses"]
    assert str(code) in responses, (
        f"{method.upper()} {path} answered {code}, which the document omits"
    )
    if "content" not in responses[str(code)]:
        return None
    assert list(responses[str(code)]["content"]) == [JSON]
    pointer = "/".join(
        part.replace("~", "~0").replace("/", "~1")
        for part in ("", "paths", path, method, "responses", str(code), "content", JSON, "schema")
    )
    registry = Registry().with_resource(
        DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"{DOCUMENT_URI}#{quote(pointer)}"}, registry=registry, format_checker=formats
    )


def check(document: dict[str, Any], path: str, response, code: int, method: str = "get") -> None:
    """``response`` has status ``code``, documented for ``path``, with a body that matches."""
    assert response.status_code == code, response.content
    validator = validator_for(document, path, code, method)
    if validator is None:
        assert response.content == b""
        return
    assert response["Content-Type"].partition(";")[0] == JSON
    validator.validate(response.json())


# -- the document itself ------------------------------------------------------------------


def test_each_endpoint_documents_exactly_the_codes_it_answers(document):
    assert set(document["paths"]) == {*DOCUMENTED, LAYOUT}
    assert list(document["paths"][LAYOUT]) == list(LAYOUT_DOCUMENTED)  # HEAD: not published
    for method, codes in LAYOUT_DOCUMENTED.items():
        responses = operation(document, LAYOUT, method)["responses"]
        assert {int(code) for code in responses} == codes, method
        for code in codes:
            assert list(responses[str(code)]["content"]) == [JSON], (method, code)
    for path, codes in DOCUMENTED.items():
        assert list(document["paths"][path]) == ["get"]  # HEAD answers but is not published
        responses = operation(document, path)["responses"]
        assert {int(code) for code in responses} == codes, path
        assert "content" not in responses["304"]
        for code in codes - {304}:
            assert list(responses[str(code)]["content"]) == [JSON], (path, code)


def test_each_operation_requires_the_bearer_scheme_or_the_staff_session(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["StaffAuth"] == {"type": "http", "scheme": "bearer"}
    assert schemes["StaffSession"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": settings.SESSION_COOKIE_NAME,
    }
    for path in DOCUMENTED:
        assert operation(document, path)["security"] == [{"StaffAuth": []}, {"StaffSession": []}]
    for method in LAYOUT_DOCUMENTED:
        security = operation(document, LAYOUT, method)["security"]
        assert security == [{"StaffAuth": []}, {"StaffSession": []}]


def test_the_validation_rejects_bodies_that_break_the_document(client, document, staff_key):
    item = client.get("/api/dashboard/widgets/smallstack.status/", **bearer(staff_key)).json()
    one = validator_for(document, ONE, 200)
    one.validate(item)
    for broken in (
        {k: v for k, v in item.items() if k != "state"},
        {**item, "state": "unknown"},
        {**item, "evaluated_at": "yesterday"},
        {**item, "evaluated_at": "2026-01-01T00:00:00"},  # no UTC offset
        {**item, "data": {**(item["data"] or {}), "headline": 42}},
    ):
        with pytest.raises(ValidationError):
            one.validate(broken)
    with pytest.raises(ValidationError):
        validator_for(document, LIST, 422).validate({"detail": "not a list"})
    with pytest.raises(AssertionError, match="omits"):
        validator_for(document, ONE, 422)


def test_data_without_a_headline_is_documented_as_valid(client, document, staff_key):
    """A widget type with its own data keys (a sparkline's points) needs no headline."""
    item = client.get("/api/dashboard/widgets/smallstack.status/", **bearer(staff_key)).json()
    sparkline = copy.deepcopy(item)
    sparkline["data"] = {"points": [3, 1, 4, 1, 5], "status": "ok"}
    validator_for(document, ONE, 200).validate(sparkline)
    data = document["components"]["schemas"]["WidgetData"]
    assert "headline" not in data.get("required", [])
    assert data["additionalProperties"] is True


# -- the real responses -------------------------------------------------------------------


def test_200_and_304(client, document, staff_key, register, group):
    ok = register(Returns({"headline": "7 orders", "detail": "today", "status": "ok"}))
    register(Returns({"headline": "x", "extra": {"nested": [1, {"a": None}]}}, span=2))
    # Failing on every request below: their circuit breakers would pause them, and the
    # recovery at the end would then wait for the cooldown.
    stale = register(Returns({"headline": "was fine"}, breaker_failures=None))
    never = register(Returns(raises=ValueError("never worked"), breaker_failures=None))
    points = register(Points([3, 1, 4, 1, 5]))
    auth = bearer(staff_key)
    assert client.get(f"/api/dashboard/widgets/{stale.key}/", **auth).json()["state"] == "ok"
    stale.widget.raises = RuntimeError("down now")

    listed = client.get(f"{LIST}?group={group}", **auth)
    check(document, LIST, listed, 200)
    items = {w["key"]: w for w in listed.json()["widgets"]}
    assert items[stale.key]["stale"] is True and items[never.key]["data"] is None
    assert items[points.key]["state"] == "ok"
    assert items[points.key]["data"] == {"points": [3, 1, 4, 1, 5]}  # no headline
    unchanged = client.get(f"{LIST}?group={group}", HTTP_IF_NONE_MATCH=listed["ETag"], **auth)
    check(document, LIST, unchanged, 304)
    check(document, LIST, client.get(LIST, **auth), 200)  # every registered widget

    for key in ("smallstack.status", "smallstack.users"):  # data that moves between polls
        check(document, ONE, client.get(f"/api/dashboard/widgets/{key}/", **auth), 200)
    for key in (ok.key, stale.key, never.key, points.key):
        one = client.get(f"/api/dashboard/widgets/{key}/", **auth)
        check(document, ONE, one, 200)
        again = client.get(f"/api/dashboard/widgets/{key}/", HTTP_IF_NONE_MATCH=one["ETag"], **auth)
        check(document, ONE, again, 304)

    stale.widget.raises = never.widget.raises = None
    never.widget.value = {"headline": "works now"}
    healthy = client.get(f"{STATUS}?group={group}", **auth)
    check(document, STATUS, healthy, 200)
    assert healthy.json()["healthy"] is True
    unchanged = client.get(f"{STATUS}?group={group}", HTTP_IF_NONE_MATCH=healthy["ETag"], **auth)
    check(document, STATUS, unchanged, 304)


def test_503_from_status_when_a_widget_fails(client, document, staff_key, register, group):
    register(Returns({"headline": "fine", "status": "ok"}))
    register(Returns(raises=ValueError("x")))
    register(Returns({"headline": "disk full", "status": "error"}))
    slow = register(Hangs(timeout=0.2))
    try:
        response = client.get(f"{STATUS}?group={group}", **bearer(staff_key))
        check(document, STATUS, response, 503)
        assert response.json()["healthy"] is False and len(response.json()["failing"]) == 3
    finally:
        slow.widget.release.set()


@pytest.mark.parametrize("path", list(DOCUMENTED))
@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz"], ids=str
)
def test_401_without_a_usable_key(client, document, path, header):
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.get(path.format(key="smallstack.status"), **extra)
    check(document, path, response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", list(DOCUMENTED))
def test_403_for_a_non_staff_key_or_session(client, document, plain_user, path):
    url = path.format(key="smallstack.status")
    check(document, path, client.get(url, **bearer(tokens.create_token(plain_user)[1])), 403)
    client.force_login(plain_user)
    check(document, path, client.get(url), 403)


@pytest.mark.parametrize(
    ("path", "url"),
    [
        (LIST, f"{LIST}?group=Nope"),
        (LIST, f"{LIST}?app=nope"),
        (ONE, "/api/dashboard/widgets/no.such.widget/"),
        (STATUS, f"{STATUS}?group=Nope"),
        (STATUS, f"{STATUS}?app=nope"),
    ],
)
def test_404_for_an_unknown_key_group_or_app(client, document, staff_key, path, url):
    check(document, path, client.get(url, **bearer(staff_key)), 404)


@pytest.mark.parametrize("path", [path for path, codes in DOCUMENTED.items() if 422 in codes])
@pytest.mark.parametrize("value", ["maybe", "", "2"])
def test_422_for_a_bad_dashboard_only(client, document, staff_key, path, value):
    response = client.get(f"{path}?dashboard_only={value}", **bearer(staff_key))
    check(document, path, response, 422)
    assert response.json()["detail"][0]["loc"] == ["query", "dashboard_only"]
