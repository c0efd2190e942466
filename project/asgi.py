"""ASGI entry point: ``uvicorn project.asgi:application``.

HTTP goes to Django; websockets (the live dashboard) go through Channels, which loads the
session's user after :mod:`smallstack.origin` has checked the ``Origin`` against
``ALLOWED_HOSTS`` (refusing without needing Redis).
"""

import os

from smallstack.asgi import get_asgi_application  # Django's, minus a per-request ref cycle

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# Set up Django (apps, settings) before importing anything that imports models.
django_application = get_asgi_application()

from project.checks import log_startup_problems  # noqa: E402

log_startup_problems()  # e.g. DEBUG off and the static files never collected (project.W001)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from smallstack.origin import AllowedHostsOriginValidator  # noqa: E402
from smallstack.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
