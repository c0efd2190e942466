"""project/middleware.py under the settings that move I/O into middleware hooks.

``CSRF_USE_SESSIONS`` puts the CSRF secret in the session, ``SESSION_SAVE_EVERY_REQUEST`` saves
the session on every response, and the session engine decides whether that I/O reaches the
database (``db``), the cache (``cache``) or both (``cached_db``). Each test drives the real
login page through Django's ASGI handler (``AsyncClient``) and checks what a user sees, and a
recorder checks where each hook ran: every database query, cache call and session-store
load/save made inside a middleware hook must run off the event loop, and the hooks that do no
I/O must still run on it.

The database engine would raise ``SynchronousOnlyOperation`` if queried on the event loop; the
cache engines (local-memory cache here, Redis or Memcached in production) would block the loop
silently, which only the recorder can see.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from django.contrib.sessions.backends import cache as cache_sessions
from django.contrib.sessions.backends import cached_db as cached_db_sessions
from django.contrib.sessions.backends import db as db_sessions
from django.core.cache.backends.locmem import LocMemCache
from django.db.backends.utils import CursorWrapper
from django.middleware import csrf
from django.test import AsyncClient, override_settings
from django.utils import timezone

from project import middleware

pytestmark = pytest.mark.django_db(transaction=True)

ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cache": "django.contrib.sessions.backends.cache",
    "cached_db": "django.contrib.sessions.backends.cached_db",
}
SWITCHES = {
    "defaults": {},
    "csrf_use_sessions": {"CSRF_USE_SESSIONS": True},
    "save_every_request": {"SESSION_SAVE_EVERY_REQUEST": True},
    "both": {"CSRF_USE_SESSIONS": True, "SESSION_SAVE_EVERY_REQUEST": True},
}

#: The middleware classes of settings.MIDDLEWARE whose hooks the recorder watches.
WATCHED = [
    middleware.SecurityMiddleware,
    middleware.SessionMiddleware,
    middleware.CommonMiddleware,
    middleware.CsrfViewMiddleware,
    middleware.AuthenticationMiddleware,
    middleware.MessageMiddleware,
    middleware.XFrameOptionsMiddleware,
]

#: Hooks that do no I/O with any of the settings above: they must always run inline.
ALWAYS_INLINE = {
    "SecurityMiddleware.process_request",
    "SecurityMiddleware.process_response",
    "SessionMiddleware.process_request",
    "CommonMiddleware.process_request",
    "CommonMiddleware.process_response",
    "AuthenticationMiddleware.process_request",
    "MessageMiddleware.process_request",
    "XFrameOptionsMiddleware.process_response",
}

FORM = {"username": "staff", "password": "pw-staff-123", "next": "/smallstack/"}


def on_event_loop() -> bool:
    """Whether the calling thread is running an event loop (so blocking here blocks it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@dataclass(frozen=True)
class Call:
    name: str
    hook: str | None  # the middleware hook it ran inside, if any
    on_loop: bool
    thread: str


@dataclass
class Recorder:
    """Middleware hook calls and the I/O made while the test runs, with where each ran."""

    hooks: list[Call] = field(default_factory=list)
    io: list[Call] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    def current_hook(self) -> str | None:
        stack = getattr(self._local, "stack", None)
        return stack[-1] if stack else None

    def hook(self, name: str, function: Callable, owner: type) -> Callable:
        """``function`` recorded as ``name`` when called on an instance of ``owner``.

        Views decorated with ``csrf_protect`` run Django's own ``CsrfViewMiddleware`` inside
        the view; those calls are not the project's middleware and are not recorded.
        """

        @functools.wraps(function)
        def recorded(middleware_self, *args, **kwargs):
            if not isinstance(middleware_self, owner):
                return function(middleware_self, *args, **kwargs)
            stack = self._local.__dict__.setdefault("stack", [])
            self.hooks.append(Call(name, None, on_event_loop(), threading.current_thread().name))
            stack.append(name)
            try:
                return function(middleware_self, *args, **kwargs)
            finally:
                stack.pop()

        return recorded

    def io_call(self, name: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def recorded(*args, **kwargs):
            call = Call(name, self.current_hook(), on_event_loop(), threading.current_thread().name)
            self.io.append(call)
            return function(*args, **kwargs)

        return recorded

    def clear(self) -> None:
        self.hooks.clear()
        self.io.clear()

    def ran(self, hook: str) -> list[bool]:
        """``on_loop`` for each call of ``hook``."""
        return [call.on_loop for call in self.hooks if call.name == hook]

    def io_in(self, hook: str) -> list[Call]:
        return [call for call in self.io if call.hook == hook]

    def assert_no_io_on_the_loop(self) -> None:
        """No hook did I/O on the event loop, and no session or database I/O ran there.

        Cache calls outside the hooks are left out: the dashboard view's widget engine reads
        the cache from the event loop itself, which these tests do not cover.
        """
        blocking = [
            call
            for call in self.io
            if call.on_loop and (call.hook or not call.name.startswith("cache."))
        ]
        assert blocking == [], f"I/O on the event loop: {blocking}"

    def assert_inline(self, hooks: set[str]) -> None:
        for hook in sorted(hooks):
            ran = self.ran(hook)
            assert ran, f"{hook} did not run"
            assert all(ran), f"{hook} was sent to a thread: {ran}"


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    for cls in WATCHED:
        for hook in ("process_request", "process_response"):
            if hasattr(cls, hook):
                name = f"{cls.__name__}.{hook}"
                monkeypatch.setattr(cls, hook, rec.hook(name, getattr(cls, hook), cls))
    # The project's async process_view calls Django's sync check through super().
    monkeypatch.setattr(
        csrf.CsrfViewMiddleware,
        "process_view",
        rec.hook(
            "CsrfViewMiddleware.process_view",
            csrf.CsrfViewMiddleware.process_view,
            middleware.CsrfViewMiddleware,
        ),
    )
    for method in ("execute", "executemany"):
        monkeypatch.setattr(
            CursorWrapper, method, rec.io_call(f"db.{method}", getattr(CursorWrapper, method))
        )
    for method in ("get", "set", "add", "delete", "touch", "has_key", "get_many", "set_many"):
        monkeypatch.setattr(
            LocMemCache, method, rec.io_call(f"cache.{method}", getattr(LocMemCache, method))
        )
    for module in (db_sessions, cache_sessions, cached_db_sessions):
        store = module.SessionStore
        for method in ("load", "save", "exists", "create", "delete"):
            if method in vars(store):
                label = f"session.{module.__name__.rsplit('.', 1)[1]}.{method}"
                monkeypatch.setattr(store, method, rec.io_call(label, vars(store)[method]))
    return rec


@pytest.fixture
def clock(monkeypatch) -> Callable[[float], None]:
    """Moves the wall clock that session expiry reads (the database's and the cache's) ahead."""
    offset = [0.0]
    real_time, real_now = time.time, timezone.now
    monkeypatch.setattr(time, "time", lambda: real_time() + offset[0])
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(seconds=offset[0]))

    def advance(seconds: float) -> None:
        offset[0] += seconds

    return advance


def csrf_token(page) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]


async def sign_in(client: AsyncClient) -> None:
    """Sign in as ``staff`` through the login page, as a browser does."""
    page = await client.get("/accounts/login/")
    assert page.status_code == 200
    response = await client.post(
        "/accounts/login/", {**FORM, "csrfmiddlewaretoken": csrf_token(page)}
    )
    assert response.status_code == 302 and response["Location"] == "/smallstack/"


async def signed_in(client: AsyncClient) -> bool:
    """Whether the dashboard opens (it redirects anonymous visitors to the login page)."""
    response = await client.get("/smallstack/")
    if response.status_code == 302:
        assert response["Location"].startswith("/accounts/login/")
        return False
    assert response.status_code == 200
    return True


@pytest.fixture(params=ENGINES, ids=list(ENGINES))
def engine(request) -> Iterator[str]:
    with override_settings(SESSION_ENGINE=ENGINES[request.param]):
        yield request.param


@pytest.fixture(params=SWITCHES, ids=list(SWITCHES))
def switches(request) -> Iterator[dict[str, bool]]:
    with override_settings(**SWITCHES[request.param]):
        yield SWITCHES[request.param]


async def test_login_csrf_and_session_keep_io_off_the_loop(recorder, engine, switches, staff_user):
    use_sessions = switches.get("CSRF_USE_SESSIONS", False)
    save_every = switches.get("SESSION_SAVE_EVERY_REQUEST", False)
    client = AsyncClient(enforce_csrf_checks=True)

    page = await client.get("/accounts/login/")
    assert page.status_code == 200
    token = csrf_token(page)
    if use_sessions:
        assert "csrftoken" not in client.cookies, "the secret is kept in the session"
        assert "sessionid" in client.cookies
        # LoginView's own csrf_protect stored the secret in the session inside the view, so
        # the middleware's hook had nothing left to store and stayed inline.
        assert recorder.ran("CsrfViewMiddleware.process_response") == [True]
        # Storing the secret modified the session: the save went to the thread.
        assert recorder.ran("SessionMiddleware.process_response") == [False]
        assert any(
            c.name.endswith(".save") for c in recorder.io_in("SessionMiddleware.process_response")
        )
    else:
        assert "csrftoken" in client.cookies
        assert "sessionid" not in client.cookies
        # The anonymous, empty session is not saved, even with SESSION_SAVE_EVERY_REQUEST.
        assert recorder.ran("SessionMiddleware.process_response") == [True]
    assert recorder.ran("CsrfViewMiddleware.process_view") == [True]  # a GET is accepted inline

    missing = await client.post("/accounts/login/", FORM)
    assert missing.status_code == 403, "a POST without the CSRF token is rejected"
    wrong = await client.post("/accounts/login/", {**FORM, "csrfmiddlewaretoken": "x" * 64})
    assert wrong.status_code == 403, "a POST with a wrong CSRF token is rejected"

    recorder.clear()
    response = await client.post("/accounts/login/", {**FORM, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/smallstack/"
    assert recorder.ran("CsrfViewMiddleware.process_view") == [False]  # reads the body
    assert recorder.ran("SessionMiddleware.process_response") == [False]  # saves the login
    saves = recorder.io_in("SessionMiddleware.process_response")
    assert saves and not any(call.on_loop for call in saves), saves
    if use_sessions:
        # The secret was read from the stored session, off the loop.
        assert recorder.ran("CsrfViewMiddleware.process_request") == [False]
        loads = recorder.io_in("CsrfViewMiddleware.process_request")
        assert any(c.name.endswith(".load") for c in loads), loads
        # login() rotated the secret and LoginView's csrf_protect stored it in the session
        # inside the view: the middleware's hook had nothing to store and stayed inline.
        assert recorder.ran("CsrfViewMiddleware.process_response") == [True]
    recorder.assert_no_io_on_the_loop()

    recorder.clear()
    dashboard = await client.get("/smallstack/")
    assert dashboard.status_code == 200, "still signed in: the session was saved and loaded"
    assert "Sign out staff" in dashboard.content.decode()
    refreshed = "sessionid" in dashboard.cookies
    assert refreshed == save_every, "only SESSION_SAVE_EVERY_REQUEST re-sends the cookie"
    if save_every:
        assert recorder.ran("SessionMiddleware.process_response") == [False]
        saves = recorder.io_in("SessionMiddleware.process_response")
        assert any(c.name.endswith(".save") for c in saves), saves
    else:
        assert recorder.ran("SessionMiddleware.process_response") == [True]
        assert recorder.io_in("SessionMiddleware.process_response") == []
    if use_sessions:
        assert recorder.ran("CsrfViewMiddleware.process_request") == [False]
        assert recorder.io_in("CsrfViewMiddleware.process_request"), "the session was loaded"
        # The page's sign-out form used the token: the hook compares it with the session's.
        assert recorder.ran("CsrfViewMiddleware.process_response") == [False]
    else:
        assert recorder.ran("CsrfViewMiddleware.process_request") == [True]
        assert recorder.ran("CsrfViewMiddleware.process_response") == [True]
    assert recorder.ran("MessageMiddleware.process_response") == [True]  # no messages
    recorder.assert_no_io_on_the_loop()
    recorder.assert_inline(ALWAYS_INLINE)


@pytest.mark.parametrize("save_every", [True, False], ids=["save_every_request", "default"])
async def test_save_every_request_pushes_the_expiry_forward(
    recorder, clock, engine, save_every, staff_user
):
    with override_settings(SESSION_SAVE_EVERY_REQUEST=save_every, SESSION_COOKIE_AGE=600):
        client = AsyncClient(enforce_csrf_checks=True)
        await sign_in(client)
        clock(400)
        assert await signed_in(client)
        clock(400)  # 800 s after signing in, 400 s after the last request
        assert await signed_in(client) == save_every
    recorder.assert_no_io_on_the_loop()


class SessionMiddlewareSavingOnTheLoop(middleware.SessionMiddleware):
    """A broken variant that saves the session on the event loop."""

    def response_needs_thread(self, request, response):
        return False


def with_session_middleware(path: str) -> list[str]:
    from django.conf import settings

    return [
        path if entry == "project.middleware.SessionMiddleware" else entry
        for entry in settings.MIDDLEWARE
    ]


async def test_the_recorder_sees_a_cache_session_saved_on_the_loop(recorder, staff_user):
    """The cache engine does not complain about the event loop; the recorder does."""
    broken = with_session_middleware(f"{__name__}.SessionMiddlewareSavingOnTheLoop")
    with override_settings(
        MIDDLEWARE=broken, SESSION_ENGINE=ENGINES["cache"], SESSION_SAVE_EVERY_REQUEST=True
    ):
        client = AsyncClient()
        await client.aforce_login(staff_user)
        recorder.clear()
        assert await signed_in(client)
    on_loop = [c for c in recorder.io_in("SessionMiddleware.process_response") if c.on_loop]
    assert on_loop, recorder.io
    with pytest.raises(AssertionError, match="I/O on the event loop"):
        recorder.assert_no_io_on_the_loop()


async def test_a_db_session_saved_on_the_loop_fails(staff_user):
    from django.core.exceptions import SynchronousOnlyOperation

    broken = with_session_middleware(f"{__name__}.SessionMiddlewareSavingOnTheLoop")
    with override_settings(
        MIDDLEWARE=broken, SESSION_ENGINE=ENGINES["db"], SESSION_SAVE_EVERY_REQUEST=True
    ):
        client = AsyncClient()
        await client.aforce_login(staff_user)
        with pytest.raises(SynchronousOnlyOperation):
            await client.get("/smallstack/")


async def test_session_stored_messages_keep_io_off_the_loop(recorder, engine, staff_user):
    storage = "django.contrib.messages.storage.session.SessionStorage"
    with override_settings(MESSAGE_STORAGE=storage):
        client = AsyncClient()
        await client.aforce_login(staff_user)
        recorder.clear()
        created = await client.post(
            "/smallstack/explorer/sales/order/add/",
            {"customer": "Initech", "status": "open", "amount": "1", "created": "2026-11-28 08:00"},
        )
        assert created.status_code == 302, created.content.decode()[:500]
        assert recorder.ran("MessageMiddleware.process_response") == [False]  # stores one
        page = await client.get(created["Location"])
        assert "was created." in page.content.decode()
        assert recorder.ran("MessageMiddleware.process_response") == [False, False]  # shown
        again = await client.get(created["Location"])
        assert "was created." not in again.content.decode(), "a message is shown once"
    recorder.assert_no_io_on_the_loop()
    recorder.assert_inline(ALWAYS_INLINE)
