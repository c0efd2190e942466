"""The dashboard websocket, driven in-process with Channels' WebsocketCommunicator."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import AsyncClient

from smallstack import dashboard
from smallstack.refresher import refresher
from smallstack.routing import websocket_urlpatterns
from tests.widgets import Returns, SleepyAsync, SleepySync

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/smallstack/dashboard/"
ORIGIN = (b"origin", b"http://localhost")
consumer_app = URLRouter(websocket_urlpatterns)


class Counter(Returns):
    """Returns a different headline on every call."""

    def get_data(self):
        self.calls += 1
        return {"headline": f"call {self.calls}"}


async def receive(communicator: WebsocketCommunicator, timeout: float = 3) -> dict:  # noqa: ASYNC109
    return json.loads(await communicator.receive_from(timeout))


@pytest.fixture
async def staff(staff_user):
    return staff_user


async def connect(user, subscribe: dict | None = None) -> WebsocketCommunicator:
    """A communicator for ``user`` (scope user set directly), connected and subscribed."""
    communicator = WebsocketCommunicator(consumer_app, PATH, headers=[ORIGIN])
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    assert await receive(communicator) == {"type": "status", "push": "live"}
    if subscribe is not None:
        await communicator.send_json_to({"type": "subscribe", **subscribe})
        assert (await receive(communicator))["type"] == "subscribed"
    return communicator


# -- authentication, through the real ASGI application -------------------------------------


async def _session_cookie(client, user) -> tuple[bytes, bytes]:
    await client.aforce_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())


async def _through_asgi(headers) -> tuple[bool, dict | None, WebsocketCommunicator]:
    from project.asgi import application

    communicator = WebsocketCommunicator(application, PATH, headers=headers)
    connected, _ = await communicator.connect()
    message = await communicator.receive_output(2) if connected else None
    return connected, message, communicator


async def test_anonymous_is_closed_with_4401():
    connected, message, communicator = await _through_asgi([ORIGIN])
    assert connected
    assert message == {"type": "websocket.close", "code": 4401}
    await communicator.wait()


async def test_non_staff_is_closed_with_4403(async_client, plain_user):
    cookie = await _session_cookie(async_client, plain_user)
    connected, message, communicator = await _through_asgi([ORIGIN, cookie])
    assert connected
    assert message == {"type": "websocket.close", "code": 4403}
    await communicator.wait()


async def test_staff_session_connects_and_is_live(async_client, staff_user):
    cookie = await _session_cookie(async_client, staff_user)
    connected, message, communicator = await _through_asgi([ORIGIN, cookie])
    assert connected
    assert json.loads(message["text"]) == {"type": "status", "push": "live"}
    await communicator.disconnect()


async def _session_socket(user) -> WebsocketCommunicator:
    """A socket through the real ASGI stack, authenticated by a new session of ``user``."""
    client = AsyncClient()
    _, message, communicator = await _through_asgi([ORIGIN, await _session_cookie(client, user)])
    assert json.loads(message["text"]) == {"type": "status", "push": "live"}
    communicator.client = client  # to sign that session out
    return communicator


async def test_signing_out_closes_only_that_sessions_dashboards(
    staff_user, django_user_model, register, group
):
    widget = Returns({"headline": "before"})
    registration = register(widget)
    other = await django_user_model.objects.acreate(username="other", is_staff=True)
    watching = await connect(other)
    leaving = await _session_socket(staff_user)  # e.g. the laptop
    staying = await _session_socket(staff_user)  # the same user's phone, still signed in

    assert (await leaving.client.post("/accounts/logout/")).status_code == 302

    assert await leaving.receive_output(3) == {"type": "websocket.close", "code": 4401}
    assert await staying.receive_nothing(0.3), "the user's other session was closed too"
    assert await watching.receive_nothing(0.1), "another user's dashboard stays open"
    # The other session's socket still serves and still receives pushes.
    await staying.send_json_to({"type": "subscribe", "group": group})
    assert (await receive(staying))["type"] == "subscribed"
    widget.value = {"headline": "after"}
    await dashboard.arefresh(registration.key)
    assert (await receive(staying))["widget"]["data"]["headline"] == "after"
    await staying.disconnect()
    await watching.disconnect()


async def test_losing_staff_status_closes_that_users_open_dashboards(staff_user):
    first = await _session_socket(staff_user)
    second = await _session_socket(staff_user)

    staff_user.last_name = "unchanged access"
    await staff_user.asave(update_fields=["last_name"])
    assert await first.receive_nothing(0.3)

    staff_user.is_staff = False
    await staff_user.asave()
    assert await first.receive_output(3) == {"type": "websocket.close", "code": 4403}
    assert await second.receive_output(3) == {"type": "websocket.close", "code": 4403}


async def test_deactivation_closes_every_session_too(staff_user):
    first = await _session_socket(staff_user)
    second = await _session_socket(staff_user)
    staff_user.is_active = False
    await staff_user.asave(update_fields=["is_active"])
    assert await first.receive_output(3) == {"type": "websocket.close", "code": 4403}
    assert await second.receive_output(3) == {"type": "websocket.close", "code": 4403}


async def test_foreign_origin_is_rejected(async_client, staff_user):
    cookie = await _session_cookie(async_client, staff_user)
    connected, message, _ = await _through_asgi([(b"origin", b"http://evil.example"), cookie])
    assert not connected
    assert message is None


async def test_foreign_origin_is_refused_without_the_channel_layer(settings):
    """With Redis down, refusing a foreign origin is still a clean close, not an ASGI error."""
    from channels.layers import channel_layers
    from channels.security.websocket import OriginValidator
    from redis.exceptions import ConnectionError as RedisConnectionError

    from smallstack.origin import AllowedHostsOriginValidator
    from tests.servers import free_port

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{free_port()}/0"]},
        }
    }
    headers = [(b"origin", b"http://evil.example")]
    try:
        # Channels' own validator: its denier listens on the (dead) layer and fails.
        channels_own = OriginValidator(consumer_app, ["localhost"])
        communicator = WebsocketCommunicator(channels_own, PATH, headers=headers)
        assert await communicator.connect() == (False, 1000)
        with pytest.raises(RedisConnectionError):
            await communicator.wait(3)
        # Ours refuses the same way and ends cleanly.
        communicator = WebsocketCommunicator(
            AllowedHostsOriginValidator(consumer_app), PATH, headers=headers
        )
        assert await communicator.connect() == (False, 1000)
        await communicator.wait(3)
    finally:
        channel_layers.backends.pop("default", None)


async def test_anonymous_scope_user_is_closed_too():
    communicator = WebsocketCommunicator(consumer_app, PATH, headers=[ORIGIN])
    communicator.scope["user"] = AnonymousUser()
    assert (await communicator.connect())[0]
    assert await communicator.receive_output(2) == {"type": "websocket.close", "code": 4401}


async def test_inactive_staff_is_refused_by_the_access_policy(django_user_model):
    user = await django_user_model.objects.acreate(
        username="former", is_staff=True, is_active=False
    )
    communicator = WebsocketCommunicator(consumer_app, PATH, headers=[ORIGIN])
    communicator.scope["user"] = user
    assert (await communicator.connect())[0]
    assert await communicator.receive_output(2) == {"type": "websocket.close", "code": 4403}


# -- subscribing and bad input -------------------------------------------------------------------


async def test_subscribe_to_group_and_app(staff, register, group):
    registration = register(Returns({"headline": "x"}, on_dashboard=False))
    communicator = await connect(staff)
    await communicator.send_json_to({"type": "subscribe", "group": group})
    assert await receive(communicator) == {
        "type": "subscribed",
        "scope": {"group": group},
        "keys": [registration.key],
    }
    await communicator.send_json_to({"type": "subscribe", "app": "heartbeat"})
    subscribed = await receive(communicator)
    assert subscribed["scope"] == {"app": "heartbeat"}
    assert "smallstack.status" in subscribed["keys"]
    await communicator.send_json_to({"type": "subscribe"})
    main = await receive(communicator)
    assert main["scope"] == {} and registration.key not in main["keys"]  # hidden from main
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            {"type": "subscribe", "group": "no-such-group"},
            "No dashboard group named 'no-such-group'",
        ),
        ({"type": "subscribe", "app": "nope"}, "No dashboard widgets for app 'nope'"),
        ({"type": "subscribe", "group": 3}, "'group' must be a string"),
        ({"type": "subscribe", "group": "a", "app": "b"}, "not both"),
        ({"type": "subscribe", "colour": "red"}, "unexpected field(s) in subscribe: colour"),
        ({"type": "dance"}, "unknown message type 'dance'"),
        ({"no": "type"}, "unknown message type None"),
        ({"type": [[[["deep"]]]]}, "unknown message type (not a string)"),
        ({"type": "snapshot", "keys": "all"}, "'keys' must be a list"),
        ({"type": "refresh", "key": "no.such.widget"}, "unknown widget 'no.such.widget'"),
        ({"type": "refresh"}, "'key' must be a widget key"),
        ([1, 2], "must be a JSON object"),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_stays(staff, payload, error):
    communicator = await connect(staff)
    await communicator.send_to(text_data=json.dumps(payload))
    message = await receive(communicator)
    assert message["type"] == "error" and error in message["error"], message
    # Still serving: a valid subscribe works afterwards.
    await communicator.send_json_to({"type": "subscribe"})
    assert (await receive(communicator))["type"] == "subscribed"
    await communicator.disconnect()


async def test_malformed_oversized_and_binary_input(staff):
    communicator = await connect(staff)
    await communicator.send_to(text_data="{not json")
    assert "malformed JSON" in (await receive(communicator))["error"]
    await communicator.send_to(text_data=json.dumps({"type": "subscribe", "pad": "x" * 10_000}))
    assert "message too large" in (await receive(communicator))["error"]
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert "binary messages are not supported" in (await receive(communicator))["error"]
    await communicator.send_json_to({"type": "subscribe"})
    assert (await receive(communicator))["type"] == "subscribed"
    await communicator.disconnect()


@pytest.mark.parametrize("text", ["[" * 2000 + "]" * 2000, '[{"":' * 700, "[" * 4000])
async def test_deeply_nested_json_is_an_error_and_the_socket_stays(staff, register, group, text):
    # Under the size limit, but deep enough to exhaust the parser's recursion.
    assert len(text) < 4096
    registration = register(Counter(refresh_interval=60))
    communicator = await connect(staff, {"group": group})
    await communicator.send_to(text_data=text)
    message = await receive(communicator)
    assert message["type"] == "error" and "nested too deeply" in message["error"], message
    await communicator.send_json_to({"type": "subscribe", "group": group})
    assert (await receive(communicator))["type"] == "subscribed"
    await communicator.disconnect()
    assert registration.key not in refresher().active()
    assert not refresher().watchers, "the closed socket still watches widgets"


# -- pushes ----------------------------------------------------------------------------------------


async def test_refresh_pushes_the_rendered_card(staff, register, group):
    widget = Returns({"headline": "<b>one</b>", "detail": "first"})
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    widget.value = {"headline": "<b>two</b>", "detail": "second", "status": "ok"}
    await dashboard.arefresh(registration.key)
    message = await receive(communicator)
    assert message["type"] == "widget.update"
    item = message["widget"]
    assert item["key"] == registration.key and item["state"] == "ok"
    assert item["data"] == {"headline": "<b>two</b>", "detail": "second", "status": "ok"}
    assert set(item) >= {"title", "url", "group", "elapsed_ms", "evaluated_at", "stale", "error"}
    html = message["html"]
    assert f'data-key="{registration.key}"' in html and "&lt;b&gt;two&lt;/b&gt;" in html
    assert "<b>two</b>" not in html  # escaped, like on the page
    await communicator.disconnect()


async def test_no_push_when_nothing_changed(staff, register, group):
    widget = Returns({"headline": "same"})
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    await dashboard.arefresh(registration.key)
    assert (await receive(communicator))["widget"]["data"]["headline"] == "same"
    await dashboard.arefresh(registration.key)  # same data, new timings: nothing to push
    assert await communicator.receive_nothing(0.3)
    assert widget.calls == 2
    widget.value = {"headline": "changed"}
    await dashboard.arefresh(registration.key)
    assert (await receive(communicator))["widget"]["data"]["headline"] == "changed"
    await communicator.disconnect()


async def test_state_change_is_pushed(staff, register, group):
    widget = Returns({"headline": "fine"})
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    await dashboard.arefresh(registration.key)
    await receive(communicator)
    widget.raises = RuntimeError("database on fire")
    await dashboard.arefresh(registration.key)
    item = (await receive(communicator))["widget"]
    assert item["state"] == "error" and "database on fire" in item["error"]
    assert item["stale"] is True and item["data"]["headline"] == "fine"
    await communicator.disconnect()


async def test_updates_reach_only_sockets_whose_scope_holds_the_widget(staff, register, group):
    widget = Returns({"headline": "a"}, on_dashboard=False)
    registration = register(widget)
    watching = await connect(staff, {"group": group})
    elsewhere = await connect(staff, {})  # main dashboard: the widget is hidden there
    await dashboard.arefresh(registration.key)
    assert (await receive(watching))["widget"]["key"] == registration.key
    assert await elsewhere.receive_nothing(0.3)
    await watching.disconnect()
    await elsewhere.disconnect()


async def test_sync_refresh_from_a_thread(staff, register, group):
    widget = Returns({"headline": "from sync code"})
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    context = await sync_to_async(dashboard.refresh, thread_sensitive=False)(registration.key)
    assert context.data == {"headline": "from sync code"}
    assert (await receive(communicator))["widget"]["data"]["headline"] == "from sync code"
    await communicator.disconnect()


async def test_refresh_bypasses_cache_ttl(staff, register, group):
    widget = Counter(cache_ttl=60)
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    first = await dashboard.arefresh(registration.key)
    second = await dashboard.arefresh(registration.key)
    assert (first.data["headline"], second.data["headline"]) == ("call 1", "call 2")
    await communicator.disconnect()


async def test_client_refresh_message(staff, register, group):
    widget = Counter()
    registration = register(widget)
    communicator = await connect(staff, {"group": group})
    await communicator.send_json_to({"type": "refresh", "key": registration.key})
    update = await receive(communicator)
    assert update["type"] == "widget.update", update
    assert update["widget"]["data"]["headline"] == "call 1"
    assert await receive(communicator) == {
        "type": "refreshed",
        "key": registration.key,
        "state": "ok",
    }
    await communicator.disconnect()


@pytest.fixture
def slow_channel_layer(monkeypatch):
    """Channel-layer messages arrive 0.2 s late, as over a busy Redis."""
    from channels.layers import InMemoryChannelLayer

    receive_now = InMemoryChannelLayer.receive

    async def receive_late(self, channel):
        message = await receive_now(self, channel)
        await asyncio.sleep(0.2)
        return message

    monkeypatch.setattr(InMemoryChannelLayer, "receive", receive_late)


async def test_refresh_update_comes_before_refreshed_without_duplicates(
    staff, register, group, slow_channel_layer
):
    widget = Returns({"headline": "first"})
    registration = register(widget)
    requester = await connect(staff, {"group": group})
    watcher = await connect(staff, {"group": group})

    for headline in ("first", "second"):  # a change: everyone gets it, the requester first
        widget.value = {"headline": headline}
        await requester.send_json_to({"type": "refresh", "key": registration.key})
        update = await receive(requester)
        assert update["type"] == "widget.update", f"{update} came before the update"
        assert update["widget"]["data"]["headline"] == headline
        assert (await receive(requester))["type"] == "refreshed"
        assert (await receive(watcher))["widget"]["data"]["headline"] == headline
        assert await requester.receive_nothing(0.5), "the requester got the update twice"
        assert await watcher.receive_nothing(0.1)

    # Unchanged: the requester still gets its card (with the new timings), nobody else does.
    await requester.send_json_to({"type": "refresh", "key": registration.key})
    update = await receive(requester)
    assert update["type"] == "widget.update"
    assert update["widget"]["data"]["headline"] == "second"
    assert (await receive(requester))["type"] == "refreshed"
    assert await watcher.receive_nothing(0.5)
    assert await requester.receive_nothing(0.1)
    await requester.disconnect()
    await watcher.disconnect()


async def test_refresh_outside_the_scope_answers_refreshed_only(staff, register, group):
    registration = register(Returns({"headline": "hidden"}, on_dashboard=False))
    communicator = await connect(staff, {})  # the main dashboard: the widget is not on it
    await communicator.send_json_to({"type": "refresh", "key": registration.key})
    assert await receive(communicator) == {
        "type": "refreshed",
        "key": registration.key,
        "state": "ok",
    }
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


# -- snapshots and late cards ---------------------------------------------------------------------


async def test_snapshot_sends_each_card_as_it_finishes(staff, register, group):
    fast = register(Returns({"headline": "fast"}))
    slow = register(SleepyAsync(0.5))
    communicator = await connect(staff, {"group": group})
    started = time.monotonic()
    await communicator.send_json_to({"type": "snapshot"})
    first = await receive(communicator)
    first_at = time.monotonic() - started
    second = await receive(communicator)
    assert [first["widget"]["key"], second["widget"]["key"]] == [fast.key, slow.key]
    assert first_at < 0.4, "the fast card waited for the slow one"
    assert await receive(communicator) == {"type": "snapshot.done", "count": 2}
    await communicator.disconnect()


async def test_snapshot_of_some_keys_only(staff, register, group):
    register(Returns({"headline": "a"}))
    wanted = register(Returns({"headline": "b"}))
    communicator = await connect(staff, {"group": group})
    await communicator.send_json_to({"type": "snapshot", "keys": [wanted.key, "not.in.scope"]})
    assert (await receive(communicator))["widget"]["key"] == wanted.key
    assert await receive(communicator) == {"type": "snapshot.done", "count": 1}
    await communicator.disconnect()


async def test_late_card_joins_the_page_evaluation(staff, register, group, async_client, settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "RENDER_BUDGET": 0.1}
    slow = SleepySync(0.6)
    registration = register(slow)
    fast = register(Returns({"headline": "quick"}))
    await async_client.aforce_login(staff)
    started = time.monotonic()
    page = await async_client.get(f"/smallstack/group/{group}/")
    assert time.monotonic() - started < 0.5
    text = page.content.decode()
    assert f'data-key="{registration.key}" data-state="pending"' in text
    assert f'data-key="{fast.key}" data-state="ok"' in text
    assert f"[&quot;{registration.key}&quot;]" not in text  # json_script, not attribute-escaped
    assert f'["{registration.key}"]' in text
    communicator = await connect(staff, {"group": group})
    await communicator.send_json_to({"type": "snapshot", "keys": [registration.key]})
    message = await receive(communicator, timeout=3)
    assert message["widget"]["state"] == "ok" and message["widget"]["data"]["headline"] == (
        "slept 0.6"
    )
    assert time.monotonic() - started < 1.2
    assert slow.calls == 1, "the socket started a second evaluation instead of joining"
    await communicator.disconnect()


async def test_late_card_that_times_out_arrives_degraded(
    staff, register, group, async_client, settings
):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "RENDER_BUDGET": 0.05}
    registration = register(SleepyAsync(5, timeout=0.4))
    await async_client.aforce_login(staff)
    page = await async_client.get(f"/smallstack/group/{group}/")
    assert 'data-state="pending"' in page.content.decode()
    communicator = await connect(staff, {"group": group})
    await communicator.send_json_to({"type": "snapshot", "keys": [registration.key]})
    message = await receive(communicator, timeout=3)
    assert message["widget"]["state"] == "timeout"
    assert "timed out after 0.4 s" in message["html"]
    await communicator.disconnect()


async def test_wait_renders_every_card(staff, register, group, async_client, settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "RENDER_BUDGET": 0.05}
    register(SleepyAsync(0.3))
    await async_client.aforce_login(staff)
    text = (await async_client.get(f"/smallstack/group/{group}/")).content.decode()
    assert 'data-state="pending"' in text and '<a href="?wait=1">' in text  # noscript link
    text = (await async_client.get(f"/smallstack/group/{group}/?wait=1")).content.decode()
    assert 'data-state="pending"' not in text and 'data-state="ok"' in text
    assert "<noscript>" not in text


# -- the interval refresher -------------------------------------------------------------------


async def test_interval_refresh_pushes_while_watched_and_stops_after_the_last_leaves(
    staff, register, group
):
    widget = Counter(refresh_interval=0.15)
    registration = register(widget)
    first = await connect(staff, {"group": group})
    second = await connect(staff, {"group": group})
    assert registration.key in refresher().active()
    headlines = [(await receive(first))["widget"]["data"]["headline"] for _ in range(3)]
    assert headlines == ["call 1", "call 2", "call 3"]
    await first.disconnect()
    assert registration.key in refresher().active()  # one watcher left
    await receive(second)
    await second.disconnect()
    assert registration.key not in refresher().active()
    calls = widget.calls
    await asyncio.sleep(0.5)
    assert widget.calls == calls, "the widget kept being evaluated with nobody watching"


async def test_interval_runs_once_per_period_however_many_watch(staff, register, group):
    widget = Counter(refresh_interval=0.2)
    register(widget)
    sockets = [await connect(staff, {"group": group}) for _ in range(5)]
    await asyncio.sleep(1.05)
    assert 3 <= widget.calls <= 6, widget.calls
    for communicator in sockets:
        await communicator.disconnect()


async def test_widgets_without_interval_start_no_task(staff, register, group):
    registration = register(Returns({"headline": "still"}))
    communicator = await connect(staff, {"group": group})
    assert registration.key not in refresher().active()
    await communicator.disconnect()


async def test_refreshes_in_progress_are_capped_per_socket(staff, register, group):
    registration = register(SleepyAsync(0.5))
    communicator = await connect(staff, {"group": group})
    for _ in range(9):
        await communicator.send_json_to({"type": "refresh", "key": registration.key})
    message = await receive(communicator)
    assert message["type"] == "error" and "too many refreshes in progress" in message["error"]
    await communicator.disconnect()
