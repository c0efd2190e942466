"""Django's default middleware, with their hooks run on the event loop where that is safe.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware on the request's sync
thread: a thread hop each, about a dozen per request with the default stack, which was the larger
part of what a trivial view cost here. The hooks these classes run inline only read headers,
cookies and settings, or set lazy objects. The cases that may reach the database still go to the
sync thread: saving a modified session, messages that may live in the session, CSRF secrets kept
in the session, and checking an unsafe request (which reads its body).

Each class is a drop-in replacement for the Django middleware it names; the sync (WSGI) path is
unchanged.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class InlineHooksMixin:
    """Runs ``process_request``/``process_response`` on the event loop unless told otherwise."""

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            if self.request_needs_thread(request):
                response = await sync_to_async(self.process_request)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    """Security headers and the HTTPS redirect: headers and settings only."""


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    """``APPEND_SLASH``/``PREPEND_WWW`` redirects: the URLconf and headers only."""


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    """The ``X-Frame-Options`` header."""


class AuthenticationMiddleware(InlineHooksMixin, auth.AuthenticationMiddleware):
    """Sets the lazy ``request.user`` / ``request.auser``; nothing is loaded here."""


class SessionMiddleware(InlineHooksMixin, sessions.SessionMiddleware):
    """The session is loaded lazily; only saving a modified one needs the database."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class MessageMiddleware(InlineHooksMixin, messages.MessageMiddleware):
    """Message storage is created lazily; storing messages may use the session."""

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class CsrfViewMiddleware(InlineHooksMixin, csrf.CsrfViewMiddleware):
    """Cookie-based CSRF: safe requests are checked inline, unsafe ones on the sync thread."""

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return settings.CSRF_USE_SESSIONS

    async def process_view(self, request, callback, callback_args, callback_kwargs):
        check = super().process_view
        if request.method in SAFE_METHODS and not settings.CSRF_USE_SESSIONS:
            return check(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check)(request, callback, callback_args, callback_kwargs)
