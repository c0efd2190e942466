"""A dashboard socket leaves nothing behind, however its consumer ends.

Nothing of a consumer may outlive it: not its watches in the interval refresher (which would
keep evaluating widgets for nobody), not its place in the hub and the broadcast group, not its
background refreshes and snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from channels.layers import get_channel_layer

from smallstack import dashboard, live
from smallstack.consumers import DashboardConsumer
from smallstack.refresher import refresher
from tests.test_ws import Counter, connect, receive
from tests.widgets import SleepyAsync

pytestmark = pytest.mark.django_db(transaction=True)


def only_consumer() -> DashboardConsumer:
    [consumer] = list(live.hub().sockets)
    return consumer


async def assert_nothing_left(consumer: DashboardConsumer, tasks=()) -> None:
    watcher = refresher()
    assert not watcher.watchers, f"watches left behind: {dict(watcher.watchers)}"
    assert not watcher.active(), f"interval tasks left running: {watcher.active()}"
    assert consumer not in live.hub().sockets
    group = get_channel_layer().groups.get(live.BROADCAST_GROUP, {})
    assert consumer.channel_name not in group
    for _ in range(200):
        if all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.01)
    assert all(task.done() for task in tasks), "the consumer's own tasks are still running"


async def test_nothing_is_left_after_a_normal_disconnect(staff_user, register, group):
    register(Counter(refresh_interval=60))
    communicator = await connect(staff_user, {"group": group})
    consumer = only_consumer()
    assert refresher().active()
    await communicator.disconnect()
    await assert_nothing_left(consumer)


async def test_unexpected_exception_in_a_message_handler_is_answered_and_logged(
    staff_user, register, group, monkeypatch, caplog
):
    registration = register(Counter(refresh_interval=60))
    communicator = await connect(staff_user, {"group": group})
    consumer = only_consumer()

    async def broken_subscribe(self, message):
        raise RuntimeError("bug in a handler")

    monkeypatch.setattr(DashboardConsumer, "on_subscribe", broken_subscribe)
    with caplog.at_level(logging.ERROR, logger="smallstack.live"):
        await communicator.send_json_to({"type": "subscribe"})
        message = await receive(communicator)
    assert message["type"] == "error" and "see the server log" in message["error"], message
    assert "bug in a handler" not in message["error"], "internals are not sent to the client"
    assert any("bug in a handler" in (r.exc_text or "") for r in caplog.records), caplog.text

    # The socket stays open and keeps its scope.
    await communicator.send_json_to({"type": "refresh", "key": registration.key})
    replies = {(await receive(communicator))["type"] for _ in range(2)}
    assert replies == {"widget.update", "refreshed"}
    assert registration.key in refresher().active()
    await communicator.disconnect()
    await assert_nothing_left(consumer)


async def test_exception_escaping_an_event_handler_still_cleans_up(
    staff_user, register, group, monkeypatch
):
    registration = register(Counter(refresh_interval=60))
    communicator = await connect(staff_user, {"group": group})
    consumer = only_consumer()

    async def broken_update(self, event):
        raise RuntimeError("bug in an event handler")

    monkeypatch.setattr(DashboardConsumer, "widget_update", broken_update)
    await dashboard.arefresh(registration.key)
    # Channels ends the consumer with the exception (the server then drops the socket).
    with pytest.raises(RuntimeError, match="bug in an event handler"):
        await communicator.wait(3)
    await assert_nothing_left(consumer)


async def test_consumer_cancelled_while_a_handler_awaits(staff_user, register, group, monkeypatch):
    register(Counter(refresh_interval=60))
    slow = register(SleepyAsync(5, timeout=10))
    communicator = await connect(staff_user, {"group": group})
    consumer = only_consumer()
    # A refresh in the background, and a snapshot of a slow card.
    await communicator.send_json_to({"type": "refresh", "key": slow.key})
    await communicator.send_json_to({"type": "snapshot", "keys": [slow.key]})
    entered = asyncio.Event()

    async def hanging_subscribe(self, message):
        entered.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(DashboardConsumer, "on_subscribe", hanging_subscribe)
    await communicator.send_json_to({"type": "subscribe"})
    await asyncio.wait_for(entered.wait(), 3)
    tasks = {*consumer._tasks, consumer._snapshot}
    assert len(tasks) == 2 and not any(task.done() for task in tasks)

    communicator.future.cancel()  # e.g. the server shutting down
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.future
    await assert_nothing_left(consumer, tasks)


async def test_a_cancellation_lost_in_the_channel_layer_does_not_keep_the_socket_open(
    staff_user, monkeypatch
):
    """The Redis client can lose one cancellation (a race in Python 3.11's ``wait_for``) and
    carry on with its next blocking pop; the consumer still ends, so the server can stop."""
    layer = get_channel_layer()
    real_receive = layer.receive
    swallowed = []

    async def receive_losing_one_cancellation(channel):
        try:
            return await real_receive(channel)
        except asyncio.CancelledError:
            swallowed.append(channel)  # as the race does: on to the next pop
            return await real_receive(channel)

    monkeypatch.setattr(layer, "receive", receive_losing_one_cancellation)
    communicator = await connect(staff_user)
    consumer = only_consumer()
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    # The application's own end, not ``communicator.wait()`` (which cancels it again).
    done, _ = await asyncio.wait({communicator.future}, timeout=3)
    assert done, "the consumer is still waiting for the channel layer's receive to end"
    assert swallowed == [consumer.channel_name]
    await assert_nothing_left(consumer)
