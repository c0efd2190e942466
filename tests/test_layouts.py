"""Personal layouts: the API (validation, CSRF, access, isolation), the pages, ``?layout=1``,
``use_layout``, and the live socket skipping hidden cards."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError
from django.test import AsyncClient, Client, RequestFactory
from django.views.generic import TemplateView

from smallstack import dashboard, layouts, tokens
from smallstack.dashboard import DashboardWidgetsMixin
from smallstack.models import DashboardLayout
from tests.conftest import bearer
from tests.test_api_contract import LAYOUT, LAYOUT_DOCUMENTED, check
from tests.test_ws import ORIGIN, PATH, Counter, connect, consumer_app, receive
from tests.widgets import Returns

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/dashboard/layout/"
_apps = itertools.count()


@pytest.fixture
def other_staff(django_user_model):
    return django_user_model.objects.create_user("other", password="pw-other-123", is_staff=True)


@pytest.fixture
def document(client, staff_key) -> dict[str, Any]:
    response = client.get("/api/openapi.json", **bearer(staff_key))
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def three(register):
    """Three counting widgets in this test's group, in default order a, b, c."""
    return [
        register(Returns({"headline": f"card {name}"}, title=f"Card {name}", order=index))
        for index, name in enumerate("abc")
    ]


def put(client, scope: str, body: Any, **extra):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.put(f"{URL}?scope={scope}", data, content_type="application/json", **extra)


def keys(registrations) -> list[str]:
    return [r.key for r in registrations]


def grid_keys(html: str) -> list[str]:
    """The keys of the cards in the page's grid, in order (not those of the hidden list)."""
    grid = html.split('<section class="grid"', 1)[1].split("</section>", 1)[0]
    return re.findall(r'<article class="card[^"]*" data-key="([^"]+)"', grid)


# -- normalising ------------------------------------------------------------------------------


def test_normalise_drops_unknown_keys_duplicates_and_bad_spans():
    layout = layouts.normalise(
        "dashboard",
        ["a", "b", "c", "d"],
        order=["c", "gone", "a", "c", 7],
        hidden=["d", "gone", "a", None],
        spans={"a": 2, "b": 3, "c": True, "gone": 2, "d": 1},
    )
    # a and c as asked; b and d (left out) at their default indexes 1 and 3.
    assert layout.order == ["c", "b", "a", "d"]
    assert layout.hidden == ["a", "d"]  # in the layout's order, unknown ones gone
    assert layout.spans == {"a": 2, "d": 1}


def test_normalise_inserts_new_keys_at_their_default_position():
    saved = ["d", "c", "b", "a"]
    assert layouts.normalise("dashboard", ["a", "b", "new", "c", "d"], saved).order == [
        "d",
        "c",
        "new",
        "b",
        "a",
    ]
    assert layouts.normalise("dashboard", ["first", "a", "b"], ["b", "a"]).order == [
        "first",
        "b",
        "a",
    ]
    assert layouts.normalise("dashboard", ["a", "b", "last"], ["b", "a"]).order == [
        "b",
        "a",
        "last",
    ]


def test_parse_scope(register, group):
    register(Returns({"headline": "x"}), app_label="layoutparse")
    assert layouts.parse_scope("dashboard") == layouts.PageScope("dashboard")
    assert layouts.parse_scope(f"group:{group}").group == group
    assert layouts.parse_scope("app:layoutparse").filters == {"app": "layoutparse"}
    for bad, message in [
        ("", "must be 'dashboard'"),
        ("Dashboard", "must be 'dashboard'"),
        ("group:", "must be 'dashboard'"),
        ("model:x", "must be 'dashboard'"),
        ("group:no-such-group", "no dashboard group named 'no-such-group'"),
        ("app:nope", "no dashboard widgets for app 'nope'"),
        ("group:" + "x" * 300, "at most 255 characters"),
    ]:
        with pytest.raises(layouts.InvalidScope, match=re.escape(message)):
            layouts.parse_scope(bad)


# -- the endpoint ---------------------------------------------------------------------------


def test_default_layout_when_none_is_saved(client, staff_key, three, group):
    response = client.get(f"{URL}?scope=group:{group}", **bearer(staff_key))
    assert response.status_code == 200
    assert response.json() == {
        "scope": f"group:{group}",
        "order": keys(three),
        "hidden": [],
        "spans": {},
    }
    assert response["Cache-Control"] == "private, no-cache"


def test_put_stores_the_normalised_layout_and_get_returns_it(client, staff_key, three, group):
    a, b, c = keys(three)
    auth = bearer(staff_key)
    body = {"order": [c, "no.such.widget", a], "hidden": [b, "gone"], "spans": {a: 2, "x": 1}}
    response = put(client, f"group:{group}", body, **auth)
    assert response.status_code == 200, response.content
    expected = {"scope": f"group:{group}", "order": [c, b, a], "hidden": [b], "spans": {a: 2}}
    assert response.json() == expected
    assert client.get(f"{URL}?scope=group:{group}", **auth).json() == expected
    row = DashboardLayout.objects.get()
    assert (row.scope, row.order, row.hidden, row.spans) == (
        f"group:{group}",
        [c, b, a],
        [b],
        {a: 2},
    )
    # A body scope equal to the query's is accepted.
    same = put(client, f"group:{group}", {"scope": f"group:{group}", "order": [b]}, **auth)
    assert same.status_code == 200 and same.json()["order"] == [a, b, c]


def test_delete_resets_to_the_default(client, staff_key, three, group):
    a, b, c = keys(three)
    auth = bearer(staff_key)
    assert (
        put(client, f"group:{group}", {"order": [c, b, a], "hidden": [a]}, **auth).status_code
        == 200
    )
    response = client.delete(f"{URL}?scope=group:{group}", **auth)
    assert response.status_code == 200
    assert response.json() == {
        "scope": f"group:{group}",
        "order": [a, b, c],
        "hidden": [],
        "spans": {},
    }
    assert not DashboardLayout.objects.exists()
    assert client.get(f"{URL}?scope=group:{group}", **auth).json()["order"] == [a, b, c]
    # Resetting what is not saved is no error.
    assert client.delete(f"{URL}?scope=group:{group}", **auth).status_code == 200


@pytest.mark.parametrize(
    ("query", "body", "loc", "message"),
    [
        ("scope=group:no-such-group", {}, ["query", "scope"], "no dashboard group named"),
        ("scope=app:nope", {}, ["query", "scope"], "no dashboard widgets for app 'nope'"),
        ("scope=main", {}, ["query", "scope"], "must be 'dashboard', 'group:<name>'"),
        ("", {}, ["query", "scope"], "Field required"),
        (
            "scope=dashboard",
            {"spans": {"smallstack.status": 3}},
            ["spans", "smallstack.status"],
            "1 or 2",
        ),
        (
            "scope=dashboard",
            {"spans": {"smallstack.status": 0}},
            ["spans", "smallstack.status"],
            "1 or 2",
        ),
        ("scope=dashboard", {"spans": {"x": True}}, ["spans", "x"], "must be 1 or 2, not True"),
        ("scope=dashboard", {"spans": {"x": 2.0}}, ["spans", "x"], "must be 1 or 2, not 2.0"),
        ("scope=dashboard", {"spans": {"x": "2"}}, ["spans", "x"], "must be 1 or 2, not '2'"),
        ("scope=dashboard", {"spans": [1]}, ["spans"], "valid dictionary"),
        ("scope=dashboard", {"order": "a,b"}, ["order"], "valid list"),
        ("scope=dashboard", {"hidden": [1]}, ["hidden", 0], "valid string"),
        ("scope=dashboard", {"colour": "red"}, ["colour"], "Extra inputs are not permitted"),
        ("scope=dashboard", {"scope": "app:smallstack"}, ["scope"], "must be the query's scope"),
    ],
)
def test_422_names_the_field_and_loses_nothing(client, staff_key, query, body, loc, message):
    auth = bearer(staff_key)
    saved = put(client, "dashboard", {"hidden": ["smallstack.help"]}, **auth)
    assert saved.status_code == 200
    response = client.put(
        f"{URL}?{query}", json.dumps(body), content_type="application/json", **auth
    )
    assert response.status_code == 422, response.content
    [issue] = response.json()["detail"]
    assert issue["loc"] == (loc if loc[0] == "query" else ["body", "layout", *loc])
    assert message in issue["msg"], issue
    assert client.get(f"{URL}?scope=dashboard", **auth).json() == saved.json()


@pytest.mark.parametrize("text", ["{not json", "[" * 3000 + "]" * 3000, ""])
def test_a_body_that_is_not_json_is_a_clear_error(client, staff_key, text):
    response = put(client, "dashboard", text, **bearer(staff_key))
    if text:
        assert response.status_code == 400
        assert response.json() == {"detail": "Cannot parse request body"}
    else:
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "layout"]
    assert not DashboardLayout.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_anonymous_is_401_and_non_staff_is_403(client, plain_user, method):
    call = getattr(client, method)
    response = call(
        f"{URL}?scope=dashboard",
        **({"data": "{}", "content_type": "application/json"} if method == "put" else {}),
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")
    response = call(f"{URL}?scope=dashboard", **bearer(tokens.create_token(plain_user)[1]))
    assert response.status_code == 403
    client.force_login(plain_user)
    assert call(f"{URL}?scope=dashboard").status_code == 403
    assert not DashboardLayout.objects.exists()


def _csrf_client(user) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser, signed in, with the page's CSRF cookie."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/smallstack/").status_code == 200  # sets the csrftoken cookie
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_session_callers_need_the_csrf_token_to_change_a_layout(staff_user, three, group):
    client, token = _csrf_client(staff_user)
    scope = f"group:{group}"
    a = three[0].key

    refused = put(client, scope, {"hidden": [a]})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = put(client, scope, {"hidden": [a]}, HTTP_X_CSRFTOKEN="x" * 32)
    assert wrong.status_code == 403
    assert not DashboardLayout.objects.exists()

    saved = put(client, scope, {"hidden": [a]}, HTTP_X_CSRFTOKEN=token)
    assert saved.status_code == 200 and saved.json()["hidden"] == [a]
    # Reading needs no token.
    assert client.get(f"{URL}?scope={scope}").json()["hidden"] == [a]
    assert client.delete(f"{URL}?scope={scope}").status_code == 403
    assert DashboardLayout.objects.count() == 1
    assert client.delete(f"{URL}?scope={scope}", HTTP_X_CSRFTOKEN=token).status_code == 200
    assert not DashboardLayout.objects.exists()


def test_bearer_callers_need_no_csrf_token(staff_user, staff_key, three, group):
    client = Client(enforce_csrf_checks=True)
    response = put(client, f"group:{group}", {"hidden": [three[0].key]}, **bearer(staff_key))
    assert response.status_code == 200
    # A bearer header is the only credential looked at: a session beside it changes nothing.
    client.force_login(staff_user)
    assert put(client, f"group:{group}", {}, **bearer(staff_key)).status_code == 200


def test_each_user_has_their_own_layout(client, staff_user, other_staff, three, group):
    a, b, c = keys(three)
    mine, theirs = (
        bearer(tokens.create_token(staff_user)[1]),
        bearer(tokens.create_token(other_staff)[1]),
    )
    scope = f"group:{group}"
    assert put(client, scope, {"order": [c, b, a], "hidden": [b]}, **mine).status_code == 200
    assert client.get(f"{URL}?scope={scope}", **theirs).json()["order"] == [a, b, c]
    assert put(client, scope, {"hidden": [c]}, **theirs).status_code == 200
    assert client.get(f"{URL}?scope={scope}", **mine).json()["hidden"] == [b]
    assert client.delete(f"{URL}?scope={scope}", **theirs).status_code == 200
    assert client.get(f"{URL}?scope={scope}", **mine).json()["order"] == [c, b, a]
    assert list(DashboardLayout.objects.values_list("user__username", flat=True)) == ["staff"]
    # Each page has its own layout too.
    assert client.get(f"{URL}?scope=dashboard", **mine).json()["hidden"] == []


def test_new_widgets_appear_at_their_default_position_and_removed_ones_vanish(
    client, staff_key, register, group
):
    a, b, c = keys([register(Returns({"headline": n}, order=i * 10)) for i, n in enumerate("abc")])
    auth = bearer(staff_key)
    scope = f"group:{group}"
    assert (
        put(client, scope, {"order": [c, b, a], "hidden": [b], "spans": {b: 2}}, **auth).status_code
        == 200
    )
    new = register(Returns({"headline": "new"}, order=5)).key  # default order: a, new, b, c
    assert client.get(f"{URL}?scope={scope}", **auth).json()["order"] == [c, new, b, a]
    dashboard.unregister(b)
    assert client.get(f"{URL}?scope={scope}", **auth).json() == {
        "scope": scope,
        "order": [c, new, a],
        "hidden": [],
        "spans": {},
    }


async def test_concurrent_saves_of_one_layout_all_succeed(staff_user, three, group):
    key = await sync_to_async(tokens.create_token)(staff_user, "race")
    client = AsyncClient()
    a, b, c = keys(three)
    bodies = [{"order": list(o), "hidden": [o[0]]} for o in itertools.permutations([a, b, c])]
    bodies = bodies * 2

    async def save(body):
        return await client.put(
            f"{URL}?scope=group:{group}",
            json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key[1]}"},
        )

    responses = await asyncio.gather(*(save(body) for body in bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.content for r in responses]
    rows = [row async for row in DashboardLayout.objects.all()]
    assert len(rows) == 1
    assert {"order": rows[0].order, "hidden": rows[0].hidden} in bodies


async def test_a_save_that_loses_the_insert_race_retries(staff_user, three, group, monkeypatch):
    real = DashboardLayout.objects.aupdate_or_create
    calls = []

    async def racing(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise IntegrityError("UNIQUE constraint failed")  # another save inserted first
        return await real(**kwargs)

    monkeypatch.setattr(DashboardLayout.objects, "aupdate_or_create", racing)
    page = layouts.parse_scope(f"group:{group}")
    layout = await layouts.asave(staff_user, page, hidden=[three[1].key])
    assert len(calls) == 2 and layout.hidden == [three[1].key]
    assert (await DashboardLayout.objects.aget()).hidden == [three[1].key]


def test_every_documented_code_is_produced_and_matches_the_document(
    client, document, staff_key, plain_user, staff_user, three, group
):
    auth, scope = bearer(staff_key), f"group:{group}"
    json_body = {"data": json.dumps({"hidden": [three[0].key]}), "content_type": "application/json"}
    calls = {
        "get": lambda url, **kw: client.get(url, **kw),
        "put": lambda url, **kw: client.put(url, **json_body, **kw),
        "delete": lambda url, **kw: client.delete(url, **kw),
    }
    for method, call in calls.items():
        check(document, LAYOUT, call(f"{URL}?scope={scope}", **auth), 200, method)
        check(document, LAYOUT, call(f"{URL}?scope=group:nope", **auth), 422, method)
        check(document, LAYOUT, call(f"{URL}?scope={scope}"), 401, method)
        nonstaff = bearer(tokens.create_token(plain_user)[1])
        check(document, LAYOUT, call(f"{URL}?scope={scope}", **nonstaff), 403, method)
    bad = put(client, scope, {"spans": {three[0].key: 5}}, **auth)
    check(document, LAYOUT, bad, 422, "put")
    check(document, LAYOUT, put(client, scope, "{oops", **auth), 400, "put")
    huge = json.dumps({"order": ["x" * 100] * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 100)})
    too_large = put(client, scope, huge, **auth)
    check(document, LAYOUT, too_large, 413, "put")
    assert "too large" in too_large.json()["detail"]
    assert set(LAYOUT_DOCUMENTED) == set(calls)
    # HEAD answers like GET, without a body.
    head = client.head(f"{URL}?scope={scope}", **auth)
    assert head.status_code == 200 and head.content == b""


# -- the pages --------------------------------------------------------------------------------


def test_a_page_follows_the_layout_and_never_evaluates_hidden_cards(
    staff_client, staff_user, three, group
):
    a, b, c = three
    scope = f"group:{group}"
    page = layouts.parse_scope(scope)
    asyncio.run(
        layouts.asave(
            staff_user, page, order=[c.key, a.key, b.key], hidden=[b.key], spans={c.key: 2}
        )
    )
    response = staff_client.get(f"/smallstack/group/{group}/?wait=1")
    assert response.status_code == 200
    assert [w.key for w in response.context["widgets"]] == [c.key, a.key]
    assert grid_keys(response.content.decode()) == [c.key, a.key]
    assert (a.widget.calls, b.widget.calls, c.widget.calls) == (1, 0, 1)
    assert response.context["layout"] == {
        "scope": scope,
        "order": [c.key, a.key, b.key],
        "hidden": [b.key],
        "spans": {c.key: 2},
    }
    assert response.context["layout_url"] == URL
    assert response.context["hidden_widgets"] == [{"key": b.key, "title": "Card b"}]
    # Reloading does not evaluate it either.
    staff_client.get(f"/smallstack/group/{group}/?wait=1")
    assert b.widget.calls == 0 and a.widget.calls >= 1


def test_the_main_and_app_pages_follow_their_own_layouts(staff_client, staff_user, register):
    label = f"layoutapp{next(_apps)}"
    one, two = (
        register(Returns({"headline": n}, order=-100 + i), app_label=label)
        for i, n in enumerate("xy")
    )
    asyncio.run(layouts.asave(staff_user, layouts.parse_scope("dashboard"), hidden=[one.key]))
    asyncio.run(
        layouts.asave(staff_user, layouts.parse_scope(f"app:{label}"), order=[two.key, one.key])
    )

    main = staff_client.get("/smallstack/?wait=1")
    assert one.key not in [w.key for w in main.context["widgets"]]
    assert main.context["hidden_widgets"] == [{"key": one.key, "title": one.widget.title}]
    assert one.widget.calls == 0
    assert main.context["layout"]["scope"] == "dashboard"

    app = staff_client.get(f"/smallstack/app/{label}/?wait=1")
    assert [w.key for w in app.context["widgets"]] == [two.key, one.key]  # not hidden here
    assert app.context["layout"]["scope"] == f"app:{label}"
    assert one.widget.calls == 1


def test_without_a_saved_layout_the_page_has_the_default_one(
    staff_client, other_staff, three, group
):
    # Another user's layout changes nothing for this one.
    asyncio.run(
        layouts.asave(other_staff, layouts.parse_scope(f"group:{group}"), hidden=[three[0].key])
    )
    response = staff_client.get(f"/smallstack/group/{group}/?wait=1")
    assert [w.key for w in response.context["widgets"]] == keys(three)
    assert response.context["layout"] == {
        "scope": f"group:{group}",
        "order": keys(three),
        "hidden": [],
        "spans": {},
    }
    assert response.context["hidden_widgets"] == []
    assert all(r.widget.calls == 1 for r in three)


# -- ?layout=1 on the widget list -----------------------------------------------------------------


def test_the_widget_list_follows_the_callers_layout_with_layout_1(
    client, staff_user, staff_key, other_staff, three, group
):
    a, b, c = three
    asyncio.run(
        layouts.asave(
            staff_user,
            layouts.parse_scope(f"group:{group}"),
            order=[c.key, b.key, a.key],
            hidden=[a.key],
        )
    )
    auth = bearer(staff_key)
    listed = client.get(f"/api/dashboard/widgets/?group={group}&layout=1", **auth)
    assert listed.status_code == 200
    assert [w["key"] for w in listed.json()["widgets"]] == [c.key, b.key]
    assert a.widget.calls == 0
    plain = client.get(f"/api/dashboard/widgets/?group={group}", **auth)
    assert [w["key"] for w in plain.json()["widgets"]] == keys(three)
    assert plain["ETag"] != listed["ETag"]
    # The session caller's own layout; another user's list stays in default order.
    client.force_login(staff_user)
    assert [
        w["key"]
        for w in client.get(f"/api/dashboard/widgets/?group={group}&layout=true").json()["widgets"]
    ] == [c.key, b.key]
    client.force_login(other_staff)
    theirs = client.get(f"/api/dashboard/widgets/?group={group}&layout=1").json()["widgets"]
    assert [w["key"] for w in theirs] == keys(three)


def test_layout_flag_is_validated(client, staff_key):
    response = client.get("/api/dashboard/widgets/?layout=maybe", **bearer(staff_key))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "layout"]


# -- DashboardWidgetsMixin.use_layout -------------------------------------------------------


def _view(group: str, **attrs):
    class Ops(DashboardWidgetsMixin, TemplateView):
        template_name = "myapp/ops.html"
        widget_group = group
        use_layout = True

    for name, value in attrs.items():
        setattr(Ops, name, value)
    return Ops


def test_use_layout_in_a_sync_view(staff_user, three, group):
    a, b, c = three
    asyncio.run(
        layouts.asave(
            staff_user, layouts.parse_scope(f"group:{group}"), order=[b.key, a.key], hidden=[c.key]
        )
    )
    request = RequestFactory().get("/ops/")
    request.user = staff_user
    response = _view(group).as_view()(request)
    response.render()
    context = response.context_data
    assert [w.key for w in context["widgets"]] == [b.key, a.key]
    assert c.widget.calls == 0
    assert context["layout"]["hidden"] == [c.key]
    assert context["hidden_widgets"] == [{"key": c.key, "title": "Card c"}]
    assert context["layout_url"] == URL
    html = response.content.decode()
    assert html.index(f'data-key="{b.key}"') < html.index(f'data-key="{a.key}"')
    assert f'data-key="{c.key}"' not in html

    # Without use_layout, the same view shows everything in default order.
    plain = _view(group, use_layout=False).as_view()(request)
    plain.render()
    assert [w.key for w in plain.context_data["widgets"]] == keys(three)
    assert "layout" not in plain.context_data


async def test_use_layout_in_an_async_view_with_an_explicit_scope(staff_user, three, group):
    a, b, c = three
    await layouts.asave(staff_user, layouts.parse_scope("dashboard"), hidden=[a.key])

    class AsyncOps(DashboardWidgetsMixin):
        widget_group = group
        use_layout = True
        layout_scope = "dashboard"  # this view follows the main dashboard's layout

    request = RequestFactory().get("/ops/")

    async def auser():
        return staff_user

    request.auser = auser
    view = AsyncOps()
    view.request = request
    widgets = await view.aget_widgets()
    assert [w.key for w in widgets] == [b.key, c.key]
    assert a.widget.calls == 0
    assert view.hidden_widgets == [{"key": a.key, "title": "Card a"}]


# -- the live socket ------------------------------------------------------------------------------


async def test_the_socket_skips_cards_hidden_in_its_users_layout(
    staff_user, other_staff, register, group
):
    shown, hidden = register(Counter()), register(Counter())
    await layouts.asave(staff_user, layouts.parse_scope(f"group:{group}"), hidden=[hidden.key])
    mine = await connect(staff_user)
    await mine.send_json_to({"type": "subscribe", "group": group})
    assert await receive(mine) == {
        "type": "subscribed",
        "scope": {"group": group},
        "keys": [shown.key],
    }
    theirs = await connect(other_staff, {"group": group})

    await dashboard.arefresh(hidden.key)
    assert (await receive(theirs))["widget"]["key"] == hidden.key
    assert await mine.receive_nothing(0.3), "a hidden card was pushed"
    await dashboard.arefresh(shown.key)
    assert (await receive(mine))["widget"]["key"] == shown.key
    assert (await receive(theirs))["widget"]["key"] == shown.key

    # A snapshot, whole or of named keys, leaves it out too.
    await mine.send_json_to({"type": "snapshot"})
    assert (await receive(mine))["widget"]["key"] == shown.key
    assert await receive(mine) == {"type": "snapshot.done", "count": 1}
    await mine.send_json_to({"type": "snapshot", "keys": [hidden.key]})
    assert await receive(mine) == {"type": "snapshot.done", "count": 0}
    # Its own refresh of it says it happened, without the card.
    await mine.send_json_to({"type": "refresh", "key": hidden.key})
    message = await receive(mine)
    assert message["type"] == "refreshed" and message["key"] == hidden.key
    await mine.disconnect()
    await theirs.disconnect()


async def test_saving_a_layout_updates_that_users_open_sockets_without_a_reconnect(
    staff_user, other_staff, register, group
):
    first, second = register(Counter()), register(Counter())
    key = (await sync_to_async(tokens.create_token)(staff_user, "live"))[1]
    client, auth = AsyncClient(), {"Authorization": f"Bearer {key}"}
    mine = await connect(staff_user, {"group": group})
    main_page = await connect(staff_user, {})  # the same user's main dashboard: another page
    theirs = await connect(other_staff, {"group": group})

    saved = await client.put(
        f"{URL}?scope=group:{group}",
        json.dumps({"order": [second.key, first.key], "hidden": [first.key]}),
        content_type="application/json",
        headers=auth,
    )
    assert saved.status_code == 200
    assert await receive(mine) == {
        "type": "layout.changed",
        "scope": {"group": group},
        "keys": [second.key],
    }
    assert await theirs.receive_nothing(0.2), "another user's socket was told"
    assert await main_page.receive_nothing(0.1), "a socket of another page was told"

    await dashboard.arefresh(first.key)
    assert (await receive(theirs))["widget"]["key"] == first.key
    assert await mine.receive_nothing(0.3), "the card hidden just now was pushed"

    # Reset: the card comes back to this socket.
    assert (await client.delete(f"{URL}?scope=group:{group}", headers=auth)).status_code == 200
    changed = await receive(mine)
    default = [r.key for r in dashboard.registry.scope(group=group)]
    assert changed["type"] == "layout.changed" and changed["keys"] == default
    await dashboard.arefresh(first.key)
    assert (await receive(mine))["widget"]["key"] == first.key
    for socket in (mine, main_page, theirs):
        await socket.disconnect()


async def test_a_socket_that_cannot_read_the_layout_still_serves(
    staff_user, register, group, monkeypatch, caplog
):
    registration = register(Counter())

    async def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(layouts, "aget", broken)
    socket = await connect(staff_user, {"group": group})
    await dashboard.arefresh(registration.key)
    assert (await receive(socket))["widget"]["key"] == registration.key
    assert "could not read the layout" in caplog.text
    await socket.disconnect()


async def test_the_layout_is_read_when_the_socket_connects(staff_user, register):
    """Before any subscribe, a socket follows the main dashboard, in its user's layout."""
    hidden = register(Counter())  # on the main dashboard (on_dashboard defaults to True)
    await layouts.asave(staff_user, layouts.parse_scope("dashboard"), hidden=[hidden.key])
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(consumer_app, PATH, headers=[ORIGIN])
    communicator.scope["user"] = staff_user
    assert (await communicator.connect())[0]
    assert (await receive(communicator))["type"] == "status"
    await dashboard.arefresh(hidden.key)
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


# -- the admin ------------------------------------------------------------------------------------


def test_the_admin_shows_layouts_read_only_and_deleting_one_resets_it(
    client, django_user_model, staff_user, three, group
):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    asyncio.run(
        layouts.asave(staff_user, layouts.parse_scope(f"group:{group}"), hidden=[three[0].key])
    )
    row = DashboardLayout.objects.get()
    client.force_login(admin)
    listing = client.get("/admin/smallstack/dashboardlayout/")
    assert listing.status_code == 200 and f"group:{group}" in listing.content.decode()
    page = client.get(f"/admin/smallstack/dashboardlayout/{row.pk}/change/")
    assert page.status_code == 200
    assert three[0].key in page.content.decode()
    assert 'name="hidden"' not in page.content.decode(), "the fields are read-only"
    assert client.get("/admin/smallstack/dashboardlayout/add/").status_code == 403
    deleted = client.post(f"/admin/smallstack/dashboardlayout/{row.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not DashboardLayout.objects.exists()


def test_a_row_edited_by_hand_into_nonsense_reads_as_what_can_be_used(staff_user, three, group):
    a, b, c = keys(three)
    DashboardLayout.objects.create(
        user=staff_user,
        scope=f"group:{group}",
        order=[c, {"x": 1}, [a], a],
        hidden="b",
        spans=[2],
    )
    layout = layouts.get(staff_user, f"group:{group}", [a, b, c])
    assert layout == layouts.Layout(f"group:{group}", order=[c, b, a], hidden=[], spans={})


async def test_a_hidden_card_is_not_watched_for_interval_refreshes(staff_user, register, group):
    from smallstack.refresher import refresher

    shown, hidden = register(Counter(refresh_interval=60)), register(Counter(refresh_interval=60))
    await layouts.asave(staff_user, layouts.parse_scope(f"group:{group}"), hidden=[hidden.key])
    socket = await connect(staff_user, {"group": group})
    assert refresher().watchers[shown.key] == 1
    assert refresher().watchers[hidden.key] == 0
    assert hidden.key not in refresher().active()
    # Shown again: watched from then on, without a reconnect.
    await layouts.adelete(staff_user, layouts.parse_scope(f"group:{group}"))
    assert (await receive(socket))["type"] == "layout.changed"
    assert refresher().watchers[hidden.key] == 1
    await socket.disconnect()
    assert not refresher().watchers[shown.key] and not refresher().watchers[hidden.key]
