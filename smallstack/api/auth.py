"""Who may use the API: a staff user's bearer token, or a staff session (the page's own JS)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja.errors import AuthenticationError, AuthorizationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from smallstack import tokens
from smallstack.access import can_use_dashboard

FORBIDDEN = "The dashboard API is for active staff members only."
NO_CREDENTIALS = "Authentication required: send 'Authorization: Bearer <token>' or sign in."
BAD_TOKEN = "Invalid, expired or revoked API token."
#: The ``Authorization`` header where Django keeps it (``request.headers`` would first build a
#: mapping of every header of the request).
AUTHORIZATION = "HTTP_AUTHORIZATION"
CSRF_FAILED = (
    "CSRF check failed: a signed-in session must send the csrftoken cookie's value in an "
    "X-CSRFToken header (or use a bearer token)."
)
#: Methods that change nothing: a session needs no CSRF token for them.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class StaffAuth(HttpBearer):
    """``Authorization: Bearer ss_…`` of an active staff user.

    Returns the user (ninja sets it as ``request.auth``); None for a missing, empty or bad token,
    and a known but non-staff or inactive user raises :class:`AuthorizationError` (403). A
    request without a bearer header is left to :class:`StaffSession`, the next auth callback.
    """

    def __init__(self) -> None:
        super().__init__()  # marks the instance async; without it ninja would pass bad tokens

    async def __call__(self, request: HttpRequest) -> Any:
        if not sends_bearer(request):
            return None
        _, _, key = request.META[AUTHORIZATION].partition(" ")
        if not key.strip():
            request._bearer_error = True  # type: ignore[attr-defined]
            return None
        return await self.authenticate(request, key.strip())

    async def authenticate(self, request: HttpRequest, token: str) -> Any:
        api_token = await tokens.aauthenticate(token)
        if api_token is None:
            request._bearer_error = True  # type: ignore[attr-defined]
            return None
        user = api_token.user
        if not can_use_dashboard(user):
            raise AuthorizationError(message=FORBIDDEN)
        request.user = user
        request.api_token = api_token  # type: ignore[attr-defined]
        return user


class StaffSession(APIKeyCookie):
    """The session cookie of an active staff user (the dashboard's own scripts), used only when
    no ``Authorization: Bearer`` header is sent.

    A bearer header is the only credential looked at when sent, so token requests never touch
    the session; any other ``Authorization`` header (a reverse proxy's ``Basic …``) is not ours
    and the session decides, as without one. None means 401; a signed-in user who is not
    active staff raises :class:`AuthorizationError` (403), and so does a request that changes
    something (``PUT``, ``DELETE``…) without the session's CSRF token: a cookie is sent by
    the browser whoever made the page. Being a cookie ``apiKey`` scheme, it is published in
    the OpenAPI document beside the bearer one.
    """

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        # Django's own CSRF check, for unsafe methods only (see authenticate); marks the
        # instance async.
        super().__init__(csrf=False)

    async def __call__(self, request: HttpRequest) -> Any:
        if sends_bearer(request):
            return None
        return await self.authenticate(request, None)

    async def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = await request.auser()
        request.user = user
        if not user.is_authenticated:
            return None
        if not can_use_dashboard(user):
            raise AuthorizationError(message=FORBIDDEN)
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise AuthorizationError(message=CSRF_FAILED)
        return user


staff_auth = StaffAuth()
staff_session = StaffSession()
#: The API's auth callbacks, in the order ninja tries them: the first to return a user wins.
staff_auth_chain = [staff_auth, staff_session]


def sends_bearer(request: HttpRequest) -> bool:
    """Whether the request has an ``Authorization: Bearer …`` header (scheme case-insensitive)."""
    scheme, _, _ = request.META.get(AUTHORIZATION, "").partition(" ")
    return scheme.lower() == StaffAuth.openapi_scheme


def unauthorized(
    request: HttpRequest,
    exc: AuthenticationError | type[AuthenticationError] | None = None,
) -> HttpResponse:
    """401 with the ``WWW-Authenticate`` challenge RFC 6750 asks for."""
    bad_token = getattr(request, "_bearer_error", False)
    response = JsonResponse({"detail": BAD_TOKEN if bad_token else NO_CREDENTIALS}, status=401)
    challenge = 'Bearer realm="smallstack"'
    if bad_token:
        challenge += ', error="invalid_token"'
    response["WWW-Authenticate"] = challenge
    return response


def forbidden(
    request: HttpRequest, exc: AuthorizationError | type[AuthorizationError]
) -> HttpResponse:
    """403 with the reason the credentials were refused."""
    message = exc.message if isinstance(exc, AuthorizationError) else FORBIDDEN
    return JsonResponse({"detail": message}, status=403)


def staff_docs(view):
    """Guard the OpenAPI schema and docs page with :data:`staff_auth_chain`.

    A browser without credentials is sent to the login page for the docs page; the schema
    answers 401 like the API.
    """

    async def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            user = await staff_auth(request) or await staff_session(request)
        except AuthorizationError as exc:
            return forbidden(request, exc)
        if user is None:
            wants_html = "text/html" in request.headers.get("Accept", "")
            if wants_html and not sends_bearer(request):
                return redirect_to_login(request.get_full_path())
            return unauthorized(request)
        # Rendering reads the session (messages, CSRF), which is sync-only.
        return await sync_to_async(view)(request, *args, **kwargs)

    return guarded
