"""The dashboard's JSON API (django-ninja), mounted at ``/api/`` by ``project/urls.py``.

``GET`` (and ``HEAD``) ``/api/dashboard/widgets/``, ``/api/dashboard/widgets/{key}/`` and
``/api/dashboard/status/``; ``GET``/``PUT``/``DELETE /api/dashboard/layout/`` (the caller's
layouts); staff only (bearer token or session); docs at ``/api/docs``.
``GET /api/metrics``: Prometheus metrics (:mod:`smallstack.api.metrics`), same access.
"""

from django.core.exceptions import RequestDataTooBig
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError

from smallstack.api.auth import forbidden, staff_auth_chain, staff_docs, unauthorized
from smallstack.api.endpoints import router
from smallstack.api.layout import router as layout_router
from smallstack.api.layout import too_large
from smallstack.api.metrics import router as metrics_router

__all__ = ["api"]

api = NinjaAPI(
    title="SmallStack dashboard API",
    version="1",
    description=(
        "Dashboard widgets as JSON for monitors and single-page apps. Authenticate with "
        "`Authorization: Bearer <token>` (`manage.py create_api_token USERNAME`) of an active "
        "staff user, or a staff session. Responses carry a weak `ETag`; send it back in "
        "`If-None-Match` to get `304 Not Modified` while the data is unchanged. Every endpoint "
        "also answers `HEAD`: the status and headers of a `GET`, without the body."
    ),
    auth=staff_auth_chain,
    docs_decorator=staff_docs,
    urls_namespace="smallstack-api",
)
api.add_exception_handler(AuthenticationError, unauthorized)
api.add_exception_handler(AuthorizationError, forbidden)
api.add_exception_handler(RequestDataTooBig, too_large)
api.add_router("/dashboard/", router)
api.add_router("/dashboard/", layout_router)
api.add_router("/", metrics_router)
