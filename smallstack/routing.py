"""Websocket URL routes of the dashboard (mounted by ``project/asgi.py``)."""

from django.urls import path

from smallstack.consumers import DashboardConsumer
from smallstack.live import SOCKET_PATH

websocket_urlpatterns = [
    path(SOCKET_PATH.lstrip("/"), DashboardConsumer.as_asgi(), name="smallstack-live"),
]
