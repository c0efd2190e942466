"""Django's default middleware, with their hooks run on the event loop where that is safe.

Under ASGI, Django runs every hook of a ``MiddlewareMixin`` middleware on the request's sync
thread: a thread hop each, about a dozen per request with the default stack, which was the larger
part of what a trivial view cost here. The hooks these classes run inline only read headers,
cookies and settings, or set lazy objects. The cases that may reach the database or the cache
still go to the sync thread: saving a session (modified, or every request with
``SESSION_SAVE_EVERY_REQUEST``), messages that may live in the session, CSRF secrets kept in the
session (``CSRF_USE_SESSIONS``), and checking an unsafe request (which reads its body). Each
class's docstring states what its inline hooks rely on; tests/test_middleware_switches.py checks
it under those settings and each session engine (db, cache, cached_db).

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
    """Security headers and the HTTPS redirect.

    Inline: both hooks read settings, ``request.is_secure()``/``get_host()`` and set headers.
    """


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    """``DISALLOWED_USER_AGENTS`` and the ``APPEND_SLASH``/``PREPEND_WWW`` redirects.

    Inline: both hooks read headers and resolve paths against the URLconf in memory; the
    response hook sets ``Content-Length`` from content already rendered.
    """


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    """The ``X-Frame-Options`` header.

    Inline: ``process_response`` reads a setting and the response's attributes.
    """


class AuthenticationMiddleware(InlineHooksMixin, auth.AuthenticationMiddleware):
    """``request.user`` and ``request.auser``.

    Inline: ``process_request`` only attaches a ``SimpleLazyObject`` and a ``partial``; the
    session and the user are loaded when the view first uses them.
    """


class SessionMiddleware(InlineHooksMixin, sessions.SessionMiddleware):
    """The session store, loaded lazily and saved on the sync thread.

    Inline: ``process_request`` only builds the store from the cookie's key (the engines'
    constructors do no I/O: the cache ones only look up the cache alias). ``process_response``
    stays inline when Django will not save: ``accessed``, ``modified`` and ``is_empty()`` are
    plain attributes, and deleting the cookie of an emptied session is header work. It saves
    (and so goes to the thread) when the session is modified or ``SESSION_SAVE_EVERY_REQUEST``
    is on, and the session is not empty; ``save()`` and the expiry it reads may load and write
    the session's storage (the database, the cache or files, by engine).
    """

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        session = getattr(request, "session", None)
        if session is None:
            return False
        saves = session.modified or settings.SESSION_SAVE_EVERY_REQUEST
        return saves and not session.is_empty()


class MessageMiddleware(InlineHooksMixin, messages.MessageMiddleware):
    """Messages, kept in a cookie or in the session (``MESSAGE_STORAGE``).

    Inline: ``process_request`` only creates the storage (the session storage checks that
    ``request.session`` exists and does not load it). ``process_response`` stays inline while
    no message was read or added, when ``update()`` stores nothing; otherwise storing may load
    and modify the session, so it goes to the thread.
    """

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class CsrfViewMiddleware(InlineHooksMixin, csrf.CsrfViewMiddleware):
    """CSRF protection; where the secret lives decides which hooks may do I/O.

    ``CSRF_USE_SESSIONS=False`` (the default): the secret lives in a cookie, so
    ``process_request`` (read the cookie) and ``process_response`` (set it) are inline.

    ``CSRF_USE_SESSIONS=True``: ``process_request`` reads the secret from the session, which
    loads it from the database or cache, so it goes to the thread; ``process_response`` goes
    too when the token was used or rotated (``CSRF_COOKIE_NEEDS_UPDATE``) and it writes the
    secret into the session, and is inline otherwise (it then does nothing).

    ``process_view`` accepts safe methods (GET, HEAD, OPTIONS, TRACE) inline with either
    setting: it only marks the request as checked. Unsafe methods go to the thread: the check
    reads the body (``request.POST``) and, with ``CSRF_USE_SESSIONS``, the session.
    """

    def request_needs_thread(self, request: HttpRequest) -> bool:
        return settings.CSRF_USE_SESSIONS

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return settings.CSRF_USE_SESSIONS and bool(request.META.get("CSRF_COOKIE_NEEDS_UPDATE"))

    async def process_view(self, request, callback, callback_args, callback_kwargs):
        check = super().process_view
        if request.method in SAFE_METHODS:
            return check(request, callback, callback_args, callback_kwargs)
        return await sync_to_async(check)(request, callback, callback_args, callback_kwargs)
