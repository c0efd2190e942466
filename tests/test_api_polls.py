"""Repeated conditional polls answered in front of the operation (smallstack.api.polls).

Whether the operation ran is counted at ``snapshots.evaluate``, which the view calls on every
request it answers; a poll answered in front of it only looks at the snapshot.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.utils import timezone
from prometheus_client import REGISTRY

from smallstack import dashboard, tokens
from smallstack.api import polls as polls_module
from smallstack.api.polls import ConditionalPolls, polls
from smallstack.api.snapshots import snapshots
from smallstack.models import APIToken
from tests.conftest import bearer
from tests.widgets import Returns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ran(monkeypatch) -> list[object]:
    """The scopes the view evaluated, one per request the operation answered."""
    scopes: list[object] = []
    evaluate = snapshots.evaluate

    async def counting(scope, registrations):
        scopes.append(scope)
        return await evaluate(scope, registrations)

    monkeypatch.setattr(snapshots, "evaluate", counting)
    return scopes


@pytest.fixture
def api(client, staff_key):
    def get(path: str, key: str = staff_key, method: str = "get", **extra):
        return getattr(client, method)(path, **bearer(key), **extra)

    return get


@pytest.fixture
def listed(register, group) -> tuple[str, list]:
    """A group of two cached widgets and its list's path."""
    widgets = [
        register(Returns({"headline": name}, cache_ttl=60, order=n)).widget
        for n, name in enumerate(["one", "two"])
    ]
    return f"/api/dashboard/widgets/?group={group}", widgets


def test_a_repeated_poll_is_answered_without_running_the_operation(api, listed, ran):
    path, widgets = listed
    first = api(path)
    assert first.status_code == 200 and len(ran) == 1
    for _ in range(5):
        again = api(path, HTTP_IF_NONE_MATCH=first["ETag"])
        assert again.status_code == 304
        assert again["ETag"] == first["ETag"]
        assert again["Cache-Control"] == first["Cache-Control"] == "private, no-cache"
        assert again.content == b""
    assert len(ran) == 1, "answered in front of the operation"
    assert [w.calls for w in widgets] == [1, 1]


def test_it_answers_as_the_operation_does(api, listed, ran):
    path, _ = listed
    etag = api(path)["ETag"]
    fast = api(path, HTTP_IF_NONE_MATCH=etag)
    polls.forget()
    full = api(path, HTTP_IF_NONE_MATCH=etag)
    assert len(ran) == 2, "the second 304 came from the operation"
    assert (fast.status_code, full.status_code) == (304, 304)
    assert dict(fast.headers) == dict(full.headers)


def test_a_poll_with_another_etag_gets_the_list(api, listed, ran):
    path, _ = listed
    etag = api(path)["ETag"]
    for stale in ['W/"0123"', "*-not-a-tag", etag.replace("W/", "")[:-3] + 'ab"']:
        response = api(path, HTTP_IF_NONE_MATCH=stale)
        assert response.status_code == 200 and len(response.json()["widgets"]) == 2
    assert len(ran) == 4
    weak_or_strong = api(path, HTTP_IF_NONE_MATCH=f'"other", {etag.removeprefix("W/")}')
    assert weak_or_strong.status_code == 304 and len(ran) == 4  # weak comparison, as the view


def test_head_polls_are_answered_too(api, listed, ran):
    path, _ = listed
    etag = api(path, method="head")["ETag"]
    response = api(path, method="head", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and response["ETag"] == etag
    assert len(ran) == 1


def test_one_widget_polls_are_answered_too(api, register, ran):
    registration = register(Returns({"headline": "single"}, cache_ttl=60))
    path = f"/api/dashboard/widgets/{registration.key}/"
    etag = api(path)["ETag"]
    assert api(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ran) == 1


@pytest.mark.parametrize("credentials", ["none", "forged", "not staff", "revoked"])
def test_refused_credentials_get_the_operations_answer_not_a_304(
    client, api, listed, ran, plain_user, staff_key, credentials
):
    path, _ = listed
    etag = api(path)["ETag"]
    headers = {"HTTP_IF_NONE_MATCH": etag}
    if credentials == "forged":
        headers |= bearer(staff_key[:-4] + "AAAA")
    elif credentials == "not staff":
        headers |= bearer(tokens.create_token(plain_user, "t")[1])
    elif credentials == "revoked":
        APIToken.objects.update(revoked=timezone.now())
        tokens.forget_verified()
        headers |= bearer(staff_key)
    response = client.get(path, **headers)
    expected = 403 if credentials == "not staff" else 401
    assert response.status_code == expected, response.content
    assert "ETag" not in response and len(ran) == 1
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_staff_session_is_answered_too(staff_client, listed, ran):
    path, _ = listed
    etag = staff_client.get(path)["ETag"]
    assert staff_client.get(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ran) == 1


def test_a_query_string_ninja_refused_is_never_answered(api, listed, ran):
    path, _ = listed
    etag = api(path)["ETag"]
    for bad in ("&dashboard_only=maybe", "&layout=2"):
        response = api(path + bad, HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 422, response.content
        assert response.json()["detail"][0]["loc"][-1] in {"dashboard_only", "layout"}


def test_the_same_filters_spelt_differently_go_through_the_operation(api, listed, ran, group):
    path, _ = listed
    etag = api(path)["ETag"]
    respelt = f"/api/dashboard/widgets/?dashboard_only=0&group={group}"
    assert api(respelt, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ran) == 2  # a different query string: validated by ninja, then remembered
    assert api(respelt, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(ran) == 2


def test_a_refresh_a_cleared_cache_or_a_new_widget_ends_the_answers(api, listed, ran, register):
    path, widgets = listed
    etag = api(path)["ETag"]
    widgets[0].value = {"headline": "refreshed"}
    dashboard.refresh(dashboard.registry.select(group=path.rpartition("=")[2])[0].key)
    changed = api(path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed.json()["widgets"][0]["data"]["headline"] == "refreshed"
    etag = changed["ETag"]
    assert api(path, HTTP_IF_NONE_MATCH=etag).status_code == 304 and len(ran) == 2
    widgets[1].value = {"headline": "changed"}
    caches["default"].clear()  # results and their version
    cleared = api(path, HTTP_IF_NONE_MATCH=etag)
    assert cleared.status_code == 200 and cleared.json()["widgets"][1]["data"]["headline"] == (
        "changed"
    )
    etag = cleared["ETag"]
    register(Returns({"headline": "three"}, cache_ttl=60, order=9))
    grown = api(path, HTTP_IF_NONE_MATCH=etag)
    assert grown.status_code == 200 and len(grown.json()["widgets"]) == 3
    assert len(ran) == 4


def test_layout_polls_are_per_user_and_never_remembered(api, listed, ran):
    path, _ = listed
    etag = api(path + "&layout=1")["ETag"]
    for _ in range(2):
        assert api(path + "&layout=1", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert ran == [], "a layout list is evaluated per user, never from a shared snapshot"
    assert not any(key[2].endswith("layout=1") for key in polls._scopes)


def test_answered_polls_count_as_cache_hits(api, listed):
    path, _ = listed
    etag = api(path)["ETag"]
    before = REGISTRY.get_sample_value("smallstack_cache_hits_total") or 0.0
    for _ in range(3):
        assert api(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert REGISTRY.get_sample_value("smallstack_cache_hits_total") - before == 3 * 2


def test_decorating_anything_but_an_operation_is_a_configuration_error():
    async def view(request):
        return None

    with pytest.raises(ImproperlyConfigured, match="decorate_view"):
        ConditionalPolls()(view)


class _User:
    is_authenticated = True


class _Operation:
    """The two attributes of a ninja operation the decorator reads, and its run method."""

    def __init__(self, throttles: list[object]) -> None:
        self.auth_callbacks: list[object] = []
        self.throttle_objects = throttles
        self.runs = 0

    async def run(self, request):
        self.runs += 1
        return "the operation's answer"


@pytest.mark.parametrize("throttled", [False, True])
async def test_a_throttled_operation_always_runs(monkeypatch, throttled):
    asked: list[object] = []

    async def answer(request, auth_callbacks):
        asked.append(request)
        return "answered in front"

    decorator = ConditionalPolls()
    monkeypatch.setattr(decorator, "answer", answer)
    operation = _Operation([object()] if throttled else [])
    run = decorator(operation.run)
    response = await run(RequestFactory().get("/"))
    if throttled:
        assert (response, operation.runs, asked) == ("the operation's answer", 1, [])
    else:
        assert (response, operation.runs, len(asked)) == ("answered in front", 0, 1)


async def test_only_async_callbacks_that_accept_the_request_authenticate():
    request = RequestFactory().get("/")

    async def refuses(request):
        return None

    async def raises(request):
        raise RuntimeError("backend down")

    async def accepts(request):
        return _User()

    def sync_accepts(request):
        return _User()

    authenticated = polls_module._authenticated
    assert not await authenticated(request, [refuses])
    assert not await authenticated(request, [raises, accepts]), "an error ends the attempt"
    assert not await authenticated(request, [sync_accepts]), "would block the event loop"
    assert not hasattr(request, "auth")
    assert await authenticated(request, [refuses, accepts])
    assert isinstance(request.auth, _User)
