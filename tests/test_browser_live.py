"""The live dashboard in a real headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest
from django.conf import settings
from websockets.sync.client import connect as ws_connect

from tests.conftest import page_failures
from tests.servers import PASSWORD, ROOT, LiveServer

pytestmark = pytest.mark.browser


def refresh_from_the_server(server: LiveServer, key: str) -> None:
    """Ask the server to re-evaluate a widget, as app code calling dashboard.refresh() would."""
    client = server.login(httpx.Client(base_url=server.url, timeout=10))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    headers = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": server.url}
    with ws_connect(
        f"ws://127.0.0.1:{server.port}/ws/smallstack/dashboard/", additional_headers=headers
    ) as socket:
        socket.recv(5)  # status
        socket.send(json.dumps({"type": "refresh", "key": key}))
        while json.loads(socket.recv(5))["type"] != "refreshed":
            pass


def test_late_card_live_update_and_reconnect(dashboard_server, browser, tmp_path):
    server, value_file = dashboard_server
    page = browser.new_page()
    failed = page_failures(page)

    page.goto(f"{server.url}/accounts/login/?next=/smallstack/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/smallstack/")

    # The page came before the 1.5 s widget: a placeholder that fills in over the socket.
    late = page.locator('[data-key="late-card"]')
    assert late.get_attribute("data-state") == "pending"
    assert "Late card" in late.inner_text()
    page.wait_for_selector('[data-key="late-card"][data-state="ok"]', timeout=5000)
    assert "arrived late" in page.locator('[data-key="late-card"]').inner_text()
    page.wait_for_selector('#live-indicator[data-state="live"]', timeout=5000)
    assert page.locator('[data-key="live-value"] .headline').inner_text() == "before"

    # A refresh on the server side changes the card in place, without a reload.
    page.evaluate("window.__sameDocument = true")
    value_file.write_text("after <b>refresh</b>")
    started = time.monotonic()
    refresh_from_the_server(server, "live-value")
    page.wait_for_function(
        "document.querySelector('[data-key=\"live-value\"] .headline')"
        ".textContent === 'after <b>refresh</b>'",
        timeout=2000,
    )
    assert time.monotonic() - started < 2.0
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.locator('[data-key="live-value"] .headline b').count() == 0  # escaped

    # The server restarts: the indicator shows reconnecting, then live again, and the
    # reconnect snapshot brings what changed while the socket was away.
    server.stop()
    page.wait_for_selector('#live-indicator[data-state="reconnecting"]', timeout=5000)
    assert page.locator("#live-indicator").inner_text() == "Reconnecting…"
    value_file.write_text("changed while away")
    server.start()
    page.wait_for_selector('#live-indicator[data-state="live"]', timeout=20000)
    page.wait_for_function(
        "document.querySelector('[data-key=\"live-value\"] .headline')"
        ".textContent === 'changed while away'",
        timeout=5000,
    )
    assert page.evaluate("window.__sameDocument") is True

    screenshot = tmp_path / "live-dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(screenshot, artifacts / "live-dashboard.png")
    assert screenshot.stat().st_size > 10_000
    assert not failed, failed  # no script errors, no missing static files


def test_noscript_page_waits_for_every_card(dashboard_server):
    server, _ = dashboard_server
    client = server.login()
    quick = client.get("/smallstack/")
    assert 'data-key="late-card" data-state="pending"' in quick.text
    assert '<a href="?wait=1">' in quick.text
    full = client.get("/smallstack/?wait=1")
    assert 'data-key="late-card" data-state="ok"' in full.text
    assert "arrived late" in full.text
