"""The project's middleware run their hooks on the event loop, and still do their jobs."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import SyncToAsync
from django.test import AsyncClient, override_settings

pytestmark = pytest.mark.django_db(transaction=True)

STOCK_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


@pytest.fixture
def hops(monkeypatch) -> list[str]:
    """The names of the sync functions sent to a thread while a test runs."""
    calls: list[str] = []
    original = SyncToAsync.__call__

    def counting(self, *args, **kwargs):
        calls.append(getattr(self.func, "__qualname__", None) or type(self.func).__qualname__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


def middleware_hops(calls: list[str]) -> list[str]:
    return [name for name in calls if "Middleware" in name]


async def test_a_get_needs_no_thread_for_middleware(hops, staff_user):
    client = AsyncClient()
    await client.aforce_login(staff_user)
    hops.clear()
    response = await client.get("/api/dashboard/status/?app=no-such-app")
    assert response.status_code == 404  # through auth (session), the view, every hook
    assert middleware_hops(hops) == []


async def test_the_stock_middleware_would_need_a_dozen(hops, staff_user):
    with override_settings(MIDDLEWARE=STOCK_MIDDLEWARE):
        client = AsyncClient()
        await client.aforce_login(staff_user)
        hops.clear()
        response = await client.get("/api/dashboard/status/?app=no-such-app")
    assert response.status_code == 404
    assert len(middleware_hops(hops)) >= 10, hops


async def test_login_over_asgi_saves_the_session_and_enforces_csrf(staff_user):
    client = AsyncClient(enforce_csrf_checks=True)
    page = await client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    form = {"username": "staff", "password": "pw-staff-123", "next": "/smallstack/"}

    refused = await client.post("/accounts/login/", form)
    assert refused.status_code == 403, "a POST without the CSRF token is rejected"

    signed_in = await client.post("/accounts/login/", {**form, "csrfmiddlewaretoken": token})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/smallstack/"
    dashboard = await client.get("/smallstack/?wait=1")
    assert dashboard.status_code == 200, "the modified session was saved"
    assert dashboard["X-Frame-Options"] == "DENY"
    assert dashboard["X-Content-Type-Options"] == "nosniff"


async def test_messages_survive_the_redirect_over_asgi(staff_user):
    client = AsyncClient()
    await client.aforce_login(staff_user)
    created = await client.post(
        "/smallstack/explorer/sales/order/add/",
        {"customer": "Initech", "status": "open", "amount": "12.50", "created": "2026-11-28 08:00"},
    )
    assert created.status_code == 302, created.content.decode()[:500]
    page = await client.get(created["Location"])
    assert "was created." in page.content.decode()
