"""What the dashboard consumer relies on in Channels, and the channel-layer recovery built on it.

Channels has no hook for a failing channel layer. ``LayerReceiveThatRecovers`` (in
``smallstack.consumers``) relies on ``AsyncConsumer.__call__`` assigning the consumer's
``channel_receive`` and then using that attribute, through ``await_many_dispatch``, to receive
every channel-layer message. The first tests run Channels' own ``AsyncConsumer`` against a fake
layer and fail if it stops doing so; the last shows the recovery working on a real socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from smallstack import dashboard, live
from smallstack.consumers import DashboardConsumer, LayerReceiveThatRecovers
from tests.test_ws import connect, receive
from tests.widgets import Returns

PROBE_LAYER = "smallstack.contract-probe"


class FakeLayer:
    """A channel layer that hands out the messages it was given, then waits forever."""

    def __init__(self, **config: Any) -> None:
        self.messages: list[dict[str, Any] | Exception] = []
        self.receives: list[str] = []

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}probe!1"

    async def receive(self, channel: str) -> dict[str, Any]:
        self.receives.append(channel)
        if not self.messages:
            await asyncio.Event().wait()
        message = self.messages.pop(0)
        if isinstance(message, Exception):
            raise message
        return message


@pytest.fixture
def fake_layer(settings) -> FakeLayer:
    settings.CHANNEL_LAYERS = {
        **settings.CHANNEL_LAYERS,
        PROBE_LAYER: {"BACKEND": f"{__name__}.FakeLayer"},
    }
    layer = get_channel_layer(PROBE_LAYER)
    assert isinstance(layer, FakeLayer)
    return layer


class Recorded:
    """Records what Channels assigns to ``channel_receive`` and counts the calls through it."""

    def __set__(self, consumer: ProbeConsumer, receive: Any) -> None:
        consumer.assigned.append(receive)

    def __get__(self, consumer: ProbeConsumer | None, owner: type | None = None) -> Any:
        if consumer is None:
            return self
        [assigned] = consumer.assigned

        async def counted() -> dict[str, Any]:
            consumer.calls_through_attribute += 1
            return await assigned()

        return counted


class ProbeConsumer(AsyncConsumer):
    """Channels' base consumer on the fake layer; a ``probe.stop`` event ends it."""

    channel_layer_alias = PROBE_LAYER
    channel_receive = Recorded()

    def __init__(self) -> None:
        self.assigned: list[Any] = []
        self.calls_through_attribute = 0
        self.events: list[dict[str, Any]] = []

    async def probe_event(self, message: dict[str, Any]) -> None:
        self.events.append(message)

    async def probe_stop(self, message: dict[str, Any]) -> None:
        raise StopConsumer


async def no_client_messages() -> dict[str, Any]:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def ignore(message: dict[str, Any]) -> None:
    pass


async def run(consumer: AsyncConsumer) -> None:
    await asyncio.wait_for(consumer({"type": "probe"}, no_client_messages, ignore), 3)


async def test_channels_receives_layer_messages_through_the_consumers_channel_receive(
    fake_layer,
):
    fake_layer.messages = [{"type": "probe.event", "n": 1}, {"type": "probe.event", "n": 2}]
    fake_layer.messages.append({"type": "probe.stop"})
    consumer = ProbeConsumer()
    await run(consumer)

    assert [event["n"] for event in consumer.events] == [1, 2]
    # Assigned once, a receive on the consumer's own channel ...
    [assigned] = consumer.assigned
    assert callable(assigned)
    assert fake_layer.receives[0] == consumer.channel_name == "specific.probe!1"
    # ... and every receive from the layer went through the attribute.
    assert set(fake_layer.receives) == {consumer.channel_name}
    assert consumer.calls_through_attribute == len(fake_layer.receives) == 3


async def test_without_the_workaround_a_failing_layer_ends_the_consumer(fake_layer):
    """Why the workaround exists: Channels lets the layer's exception end the consumer."""

    class PlainConsumer(AsyncConsumer):
        channel_layer_alias = PROBE_LAYER

    fake_layer.messages = [ConnectionError("layer down")]
    with pytest.raises(ConnectionError, match="layer down"):
        await run(PlainConsumer())


async def test_with_the_workaround_a_failing_layer_is_reported_and_waited_out(
    fake_layer, monkeypatch
):
    class RecoveringConsumer(ProbeConsumer):
        channel_receive = LayerReceiveThatRecovers()

    fake_layer.messages = [
        {"type": "probe.event", "n": 1},
        ConnectionError("layer down"),
        {"type": "probe.event", "n": 2},
        {"type": "probe.stop"},
    ]
    hub = live.hub()
    lost: list[BaseException] = []

    async def record_lost(exc: BaseException) -> None:
        lost.append(exc)

    # The hub's own recovery is exercised by the test below.
    monkeypatch.setattr(hub, "lost", record_lost)
    consumer = RecoveringConsumer()
    await run(consumer)
    assert [event["n"] for event in consumer.events] == [1, 2]
    assert [str(exc) for exc in lost] == ["layer down"]
    assert set(fake_layer.receives) == {consumer.channel_name}


@pytest.mark.django_db(transaction=True)
async def test_a_socket_survives_the_channel_layer_failing(
    staff_user, register, group, monkeypatch
):
    widget = Returns({"headline": "before"})
    registration = register(widget)
    layer = get_channel_layer()
    real_receive = layer.receive
    failing = asyncio.Event()

    async def receive_failing_once(channel):
        message = await real_receive(channel)
        if failing.is_set():
            failing.clear()
            raise ConnectionError("channel layer down")
        return message

    monkeypatch.setattr(layer, "receive", receive_failing_once)
    communicator = await connect(staff_user, {"group": group})
    [consumer] = live.hub().sockets
    assert isinstance(consumer, DashboardConsumer)

    failing.set()
    await dashboard.arefresh(registration.key)  # its delivery fails: lost
    assert await receive(communicator) == {"type": "status", "push": "unavailable"}
    assert live.hub().last_error == "ConnectionError: channel layer down"
    assert await receive(communicator) == {"type": "status", "push": "live"}

    # Still open, still in the group, still receiving.
    widget.value = {"headline": "after"}
    await dashboard.arefresh(registration.key)
    update = await receive(communicator)
    assert update["type"] == "widget.update" and update["widget"]["data"]["headline"] == "after"
    await communicator.send_json_to({"type": "subscribe", "group": group})
    assert (await receive(communicator))["type"] == "subscribed"
    await communicator.disconnect()
