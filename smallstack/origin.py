"""The websocket ``Origin`` check, refusing without touching the channel layer.

Channels' ``AllowedHostsOriginValidator`` refuses a foreign origin with a ``WebsocketDenier``,
a consumer like any other: it opens a channel on the default layer and listens on it. With Redis
down that listen fails and the refusal becomes an "Exception in ASGI application". The denier
here uses no layer at all, so a refusal never depends on Redis.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings

#: A channel layer alias that is never configured: consumers using it run without a layer.
NO_CHANNEL_LAYER = "smallstack.no-channel-layer"


class LayerFreeDenier(WebsocketDenier):
    """Accepts nothing; needs no channel layer."""

    channel_layer_alias = NO_CHANNEL_LAYER


class LayerFreeOriginValidator(OriginValidator):
    """:class:`OriginValidator` whose refusals are made by :class:`LayerFreeDenier`."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not self.valid_origin(_parsed_origin(scope)):
            return await LayerFreeDenier()(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _parsed_origin(scope: dict[str, Any]) -> Any:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            try:
                return urlparse(value.decode("latin1"))
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def AllowedHostsOriginValidator(application: Any) -> LayerFreeOriginValidator:
    """Like Channels' factory of that name: origins must match ``ALLOWED_HOSTS``."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return LayerFreeOriginValidator(application, allowed_hosts)
