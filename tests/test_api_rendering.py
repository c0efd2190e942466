"""The widget list's fast path: items serialised once, whole lists reused within cache_ttl,
and one token lookup for concurrent requests."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from django.core.cache import caches

from smallstack import dashboard, tokens
from smallstack.api.rendering import ItemRenderer, list_body
from smallstack.api.schemas import WidgetList
from smallstack.api.snapshots import snapshots
from smallstack.engine import engine
from tests.conftest import wait_until
from tests.widgets import Returns, SleepyAsync

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(client, staff_key):
    def get(path: str, **extra):
        return client.get(path, HTTP_AUTHORIZATION=f"Bearer {staff_key}", **extra)

    return get


@pytest.fixture
def evaluations(monkeypatch) -> list[int]:
    """How many widgets each ``engine.evaluate`` call was given, in order."""
    calls: list[int] = []
    evaluate = engine.evaluate

    async def counting(registrations, **options):
        registrations = list(registrations)
        calls.append(len(registrations))
        return await evaluate(registrations, **options)

    monkeypatch.setattr(engine, "evaluate", counting)
    return calls


def headlines(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [w["data"]["headline"] for w in response.json()["widgets"]]


# -- items ----------------------------------------------------------------------------------


def _item(**changes):
    item = {
        "key": "k", "title": "T", "icon": "", "url": None, "order": 1, "group": "g",
        "app_label": None, "model_name": None, "span": 1, "widget_type": "card",
        "on_dashboard": True, "state": "ok", "stale": False, "error": None, "elapsed_ms": 1.5,
        "evaluated_at": "2026-01-01T00:00:00+00:00",
        "data": {"headline": "1", "extra": {"rows": [1, 2]}}, "breaker": None,
    }  # fmt: skip
    return {**item, **changes}


def test_an_unchanged_item_is_not_serialised_again():
    renderer = ItemRenderer()
    first = renderer.render(_item())
    assert renderer.render(_item()) is first  # equal item, other dicts: reused as it is
    assert json.loads(first.json) == _item()


def test_a_changed_item_is_serialised_again_with_a_new_digest():
    renderer = ItemRenderer()
    first = renderer.render(_item())
    deeper = renderer.render(_item(data={"headline": "1", "extra": {"rows": [1, 3]}}))
    assert deeper.digest != first.digest
    assert json.loads(deeper.json)["data"]["extra"]["rows"] == [1, 3]
    state = renderer.render(_item(state="error", stale=True, error="ValueError: x"))
    assert state.digest not in {first.digest, deeper.digest}
    # Only the volatile fields moved (re-evaluated to the same result): same digest, new JSON.
    again = renderer.render(_item(elapsed_ms=9.0, evaluated_at="2026-01-01T00:00:05+00:00"))
    assert again.digest == first.digest
    assert json.loads(again.json)["evaluated_at"] == "2026-01-01T00:00:05+00:00"


def test_the_list_body_is_the_items_json_with_the_fields_after():
    renderer = ItemRenderer()
    rendered = [renderer.render(_item(key="a")), renderer.render(_item(key="b"))]
    body = json.loads(list_body(rendered, generated_at="2026-01-01T00:00:00+00:00", elapsed_ms=1))
    assert [w["key"] for w in body["widgets"]] == ["a", "b"]
    WidgetList.model_validate(body)
    assert json.loads(list_body([])) == {"widgets": []}


def test_an_item_off_the_documented_schema_is_logged_once_and_served(api, register, group, caplog):
    class LaxType(Returns):
        widget_type = "card"

        def clean_data(self, data):
            return data  # lets a number through where the schema says string

    registration = register(LaxType({"headline": 5}))  # cache_ttl 0: evaluated every poll
    path = f"/api/dashboard/widgets/?group={group}"
    with caplog.at_level(logging.ERROR, logger="smallstack.api"):
        assert api(path).json()["widgets"][0]["data"] == {"headline": 5}
        assert api(path).json()["widgets"][0]["data"] == {"headline": 5}
    assert registration.widget.calls == 2
    logged = [r for r in caplog.records if registration.key in r.getMessage()]
    assert len(logged) == 1  # checked when first serialised, not on every poll
    assert "WidgetItem schema" in logged[0].getMessage()


# -- whole lists within cache_ttl ---------------------------------------------------------


def test_a_cached_list_is_reused_until_the_first_widget_is_cache_ttl_old(
    api, register, group, evaluations
):
    widget = register(Returns({"headline": "v1"}, cache_ttl=0.6)).widget
    path = f"/api/dashboard/widgets/?group={group}"
    first = api(path)
    assert headlines(first) == ["v1"] and evaluations == [1]
    widget.value = {"headline": "v2"}
    again = api(path)
    assert headlines(again) == ["v1"]  # within cache_ttl: the same evaluation
    assert evaluations == [1]  # answered without asking the engine
    assert again["ETag"] == first["ETag"]
    assert api(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert json.loads(again.content)["generated_at"] >= json.loads(first.content)["generated_at"]
    time.sleep(0.7)
    later = api(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert headlines(later) == ["v2"] and widget.calls == 2
    assert later["ETag"] != first["ETag"]


def test_one_cached_widget_is_reused_the_same_way(api, register, evaluations):
    registration = register(Returns({"headline": "v1"}, cache_ttl=60))
    path = f"/api/dashboard/widgets/{registration.key}/"
    first = api(path)
    assert first.json()["data"] == {"headline": "v1"}
    registration.widget.value = {"headline": "v2"}
    assert api(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert evaluations == [1]
    caches["default"].clear()
    changed = api(path, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed.json()["data"] == {"headline": "v2"}
    assert evaluations == [1, 1]


def test_a_refresh_shows_at_once_however_long_the_cache_ttl(api, register, group):
    registration = register(Returns({"headline": "v1"}, cache_ttl=60))
    path = f"/api/dashboard/widgets/?group={group}"
    for _ in range(3):
        assert headlines(api(path)) == ["v1"]
    registration.widget.value = {"headline": "v2"}
    assert dashboard.refresh(registration.key).data == {"headline": "v2"}
    assert headlines(api(path)) == ["v2"]
    assert api(f"/api/dashboard/widgets/{registration.key}/").json()["data"] == {"headline": "v2"}


def test_a_cleared_cache_shows_a_changed_value_at_once(api, register, group):
    widget = register(Returns({"headline": "v1"}, cache_ttl=60)).widget
    path = f"/api/dashboard/widgets/?group={group}"
    etag = api(path)["ETag"]
    widget.value = {"headline": "v2"}
    assert headlines(api(path)) == ["v1"]
    caches["default"].clear()  # the dashboard cache: results and their version
    changed = api(path, HTTP_IF_NONE_MATCH=etag)
    assert headlines(changed) == ["v2"] and changed["ETag"] != etag


def test_a_widget_registered_in_scope_is_listed_at_once(api, register, group):
    register(Returns({"headline": "first"}, cache_ttl=60, order=1))
    path = f"/api/dashboard/widgets/?group={group}"
    etag = api(path)["ETag"]
    register(Returns({"headline": "second"}, cache_ttl=60, order=2))
    response = api(path, HTTP_IF_NONE_MATCH=etag)
    assert headlines(response) == ["first", "second"]
    assert response["ETag"] != etag


def test_a_list_with_an_uncached_widget_is_evaluated_on_every_poll(
    api, register, group, evaluations
):
    cached = register(Returns({"headline": "cached"}, cache_ttl=60)).widget
    live = register(Returns({"headline": "live"})).widget  # cache_ttl 0
    path = f"/api/dashboard/widgets/?group={group}"
    for _ in range(3):
        assert sorted(headlines(api(path))) == ["cached", "live"]
    assert evaluations == [2, 2, 2] and live.calls == 3 and cached.calls == 1


def test_each_scope_has_its_own_snapshot(api, register, group):
    register(Returns({"headline": "shown"}, cache_ttl=60))
    register(Returns({"headline": "hidden"}, cache_ttl=60, on_dashboard=False))
    path = f"/api/dashboard/widgets/?group={group}"
    assert sorted(headlines(api(path))) == ["hidden", "shown"]
    assert headlines(api(f"{path}&dashboard_only=1")) == ["shown"]
    assert sorted(headlines(api(path))) == ["hidden", "shown"]


def test_status_summary_from_a_snapshot_turns_503_when_a_widget_fails(api, register, group):
    registration = register(Returns({"headline": "fine"}, cache_ttl=0.5))
    path = f"/api/dashboard/status/?group={group}"
    assert api(path).status_code == 200
    registration.widget.raises = ValueError("down")
    assert api(path).status_code == 200  # the result is still within cache_ttl
    time.sleep(0.6)
    failing = api(path)
    assert failing.status_code == 503 and failing.json()["failing"] == [registration.key]


async def test_concurrent_polls_of_a_scope_share_one_evaluation(register, group, evaluations):
    registration = register(SleepyAsync(0.2, cache_ttl=60))
    selected = dashboard.registry.select(group=group)
    made = await asyncio.gather(*(snapshots.evaluate(("t", group), selected) for _ in range(20)))
    assert evaluations == [1]  # not one per poll in flight
    assert all(snapshot is made[0] for snapshot in made)
    assert made[0].contexts[0].key == registration.key and made[0].contexts[0].state == "ok"


async def test_polls_waiting_on_a_snapshot_whose_poll_went_away_make_it_themselves(
    register, group, evaluations
):
    register(SleepyAsync(0.2, cache_ttl=60))
    selected = dashboard.registry.select(group=group)
    first = asyncio.ensure_future(snapshots.evaluate(("t", group), selected))
    await asyncio.sleep(0.02)
    others = asyncio.gather(*(snapshots.evaluate(("t", group), selected) for _ in range(3)))
    await asyncio.sleep(0.02)
    first.cancel()
    made = await others
    assert all(s.contexts[0].state == "ok" for s in made) and made[0] is made[1] is made[2]
    assert evaluations == [1, 1]  # the cancelled poll's, then one for the three waiting


# -- tokens -------------------------------------------------------------------------------


@pytest.fixture
def slow_lookups(monkeypatch) -> list[str]:
    """Token lookups made (by digest), each taking 0.1 s longer."""
    made: list[str] = []
    lookup = tokens._lookup

    async def slow(prefix, digest):
        made.append(digest)
        await asyncio.sleep(0.1)
        return await lookup(prefix, digest)

    monkeypatch.setattr(tokens, "_lookup", slow)
    return made


async def test_concurrent_requests_with_one_key_share_one_lookup(staff_key, slow_lookups):
    found = await asyncio.gather(*(tokens.aauthenticate(staff_key) for _ in range(20)))
    assert len(slow_lookups) == 1
    assert {token.pk for token in found} == {found[0].pk} and found[0].user.is_staff
    forged = staff_key[:-2] + ("AA" if not staff_key.endswith("AA") else "BB")
    refused = await asyncio.gather(*(tokens.aauthenticate(forged) for _ in range(5)))
    assert refused == [None] * 5 and len(slow_lookups) == 2
    assert await tokens.aauthenticate(forged) is None and len(slow_lookups) == 3  # not kept


async def test_a_lookup_whose_request_went_away_is_made_again_by_the_others(
    staff_key, slow_lookups
):
    first = asyncio.ensure_future(tokens.aauthenticate(staff_key))
    await asyncio.sleep(0.02)
    others = asyncio.gather(*(tokens.aauthenticate(staff_key) for _ in range(3)))
    await asyncio.sleep(0.02)
    first.cancel()
    found = await others
    assert all(token is not None for token in found)
    assert len(slow_lookups) == 2  # the cancelled one, then one for the three waiting


class WithExtras(Returns):
    def get_api_extras(self):
        return {"api_only": self.value["headline"]}


def test_a_refresh_outdates_the_api_view_of_a_widget_with_extras(api, register, group):
    registration = register(WithExtras({"headline": "v1"}, cache_ttl=60))
    path = f"/api/dashboard/widgets/{registration.key}/"
    assert api(path).json()["data"] == {"headline": "v1", "api_only": "v1"}
    registration.widget.value = {"headline": "v2"}
    assert api(path).json()["data"]["headline"] == "v1"  # within cache_ttl
    dashboard.refresh(registration.key)
    assert api(path).json()["data"] == {"headline": "v2", "api_only": "v2"}


def test_pages_and_the_api_share_the_evaluations_of_widgets_without_extras(
    api, staff_client, register, group
):
    plain = register(Returns({"headline": "plain"}, cache_ttl=60)).widget
    extra = register(WithExtras({"headline": "extra"}, cache_ttl=60)).widget
    assert staff_client.get(f"/smallstack/group/{group}/").status_code == 200
    assert wait_until(lambda: engine.in_flight() == 0)
    assert sorted(headlines(api(f"/api/dashboard/widgets/?group={group}"))) == ["extra", "plain"]
    assert plain.calls == 1, "the page's result serves the API too"
    assert extra.calls == 2, "the API's view of a widget with extras is its own"


def test_a_snapshot_outlives_other_widgets_evaluations_but_not_a_refresh(
    api, staff_client, register, group, evaluations
):
    listed = register(Returns({"headline": "listed"}, cache_ttl=60))
    elsewhere = register(Returns({"headline": "elsewhere"}), group=f"{group}-other")
    path = f"/api/dashboard/widgets/?group={group}"
    assert headlines(api(path)) == ["listed"] and evaluations == [1]
    for _ in range(3):  # pages evaluating other widgets store their results
        assert staff_client.get(f"/smallstack/group/{group}-other/").status_code == 200
    assert elsewhere.widget.calls == 3
    assert headlines(api(path)) == ["listed"] and evaluations == [1]  # still the snapshot
    listed.widget.value = {"headline": "refreshed"}
    dashboard.refresh(listed.key)
    assert headlines(api(path)) == ["refreshed"]
