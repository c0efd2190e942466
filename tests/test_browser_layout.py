"""Personal layouts, the page side: the cards' widths and the "Edit layout" markup as rendered,
then the editor in a real headless Chromium (Debian's) against a real uvicorn server."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory

from smallstack.cards import Placeholder, effective_span, render_card
from smallstack.contract import State, WidgetContext
from smallstack.registry import Registration
from tests.conftest import page_failures
from tests.servers import PASSWORD, ROOT, LiveServer
from tests.test_browser_live import refresh_from_the_server
from tests.widgets import Returns

LAYOUT_URL = "/api/dashboard/layout/"


# -- the page as rendered ----------------------------------------------------------------------


def evaluated(registration: Registration, headline: str = "value") -> WidgetContext:
    return WidgetContext(
        registration=registration,
        state=State.OK,
        data={"headline": headline},
        error=None,
        elapsed_ms=0.0,
        evaluated_at=None,
    )


def page(**context) -> str:
    request = RequestFactory().get("/smallstack/")
    request.user = AnonymousUser()
    base = {"title": "Dashboard", "scope": {}, "groups": [], "widgets": []}
    return render_to_string("smallstack/dashboard.html", {**base, **context}, request)


def card_tag(html: str, key: str) -> str:
    start = html.index(f'data-key="{key}"')
    return html[html.rindex("<article", 0, start) : start]


def test_card_width_follows_the_layout(register):
    normal = register(Returns({"headline": "a"}, title="Normal by default"))
    wide = register(Returns({"headline": "b"}, title="Wide by default", span=2))
    untouched = register(Returns({"headline": "c"}, title="Untouched", span=2))
    layout = {
        "scope": "dashboard",
        "order": [wide.key, normal.key, untouched.key],
        "hidden": [],
        "spans": {normal.key: 2, wide.key: 1},
    }
    html = page(
        widgets=[evaluated(wide), Placeholder(normal), evaluated(untouched)],
        layout=layout,
        layout_url=LAYOUT_URL,
        hidden_widgets=[],
    )
    assert "wide" not in card_tag(html, wide.key)
    assert 'class="card placeholder wide"' in card_tag(html, normal.key)
    assert 'class="card wide state-ok"' in card_tag(html, untouched.key)
    assert html.index(wide.key) < html.index(normal.key) < html.index(untouched.key)
    # The widgets' own widths, for the editor to fall back on when the layout drops a span.
    start = html.index('<script id="dashboard-default-spans" type="application/json">')
    own = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert json.loads(own) == {wide.key: 2, normal.key: 1, untouched.key: 2}

    # A live push renders the card alone: the widget's own width (the page re-applies the
    # layout's), and effective_span takes only 1 or 2 from a layout.
    assert 'class="card wide state-ok"' in render_card(evaluated(wide))
    for bad in (3, 0, True, "2", None):
        assert effective_span(evaluated(normal), {"spans": {normal.key: bad}}) == 1
    assert effective_span(evaluated(normal), None) == 1
    assert effective_span(evaluated(normal), {"spans": {normal.key: 2}}) == 2


def test_edit_layout_markup_is_escaped_and_complete(register):
    shown = register(Returns({"headline": "<b>value</b>"}, title="<i>Shown</i>"))
    layout = {
        "scope": "group:<Ops>",
        "order": [shown.key, "secret"],
        "hidden": ["secret"],
        "spans": {},
    }
    html = page(
        widgets=[evaluated(shown, "<b>value</b>")],
        layout=layout,
        layout_url=LAYOUT_URL,
        hidden_widgets=[{"key": "secret", "title": "<script>alert(1)</script>"}],
    )
    assert f'data-layout-url="{LAYOUT_URL}"' in html
    assert 'id="layout-edit" aria-pressed="false" aria-controls="layout-panel" hidden' in html
    assert 'aria-live="polite"' in html and 'id="layout-announce"' in html
    assert "smallstack/layout.js" in html and "vendor/sortablejs/Sortable.min.js" in html
    # The hidden cards' list: every title escaped, the script tag never raw.
    assert "<script>alert(1)</script>" not in html
    assert '<li data-key="secret"><span class="layout-hidden-name">&lt;script&gt;' in html
    assert 'aria-label="Show &lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'id="layout-hidden-none" hidden' in html
    assert "<b>value</b>" not in html and "<i>Shown</i>" not in html
    # The layout as JSON for the script, escaped for a <script> element.
    start = html.index('<script id="dashboard-layout" type="application/json">')
    data = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    assert "<Ops>" not in data and json.loads(data) == layout


def test_page_without_layout_context_has_no_editor(register):
    shown = register(Returns({"headline": "plain"}, title="Plain", span=2))
    html = page(widgets=[evaluated(shown)])
    assert 'class="card wide state-ok"' in html
    for absent in ("layout-edit", "layout-panel", "dashboard-layout", "layout.js", "Sortable"):
        assert absent not in html
    assert "No widgets are registered here yet." in page()
    everything_hidden = page(
        layout={"scope": "dashboard", "order": ["x"], "hidden": ["x"], "spans": {}},
        layout_url=LAYOUT_URL,
        hidden_widgets=[{"key": "x", "title": "X"}],
    )
    assert "Every card of this page is hidden" in everything_hidden


# -- the editor in a real browser -----------------------------------------------------------------


def grid_keys(page) -> list[str]:
    return page.eval_on_selector_all(
        ".grid > .card[data-key]", "cards => cards.map(c => c.dataset.key)"
    )


def saved_layout(page) -> dict:
    """The user's layout of the main page, read over the API with the browser's session."""
    response = page.request.get(f"{LAYOUT_URL}?scope=dashboard")
    assert response.status == 200, response.text()
    return response.json()


def sign_in(page, server: LiveServer) -> None:
    page.goto(f"{server.url}/accounts/login/?next=/smallstack/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/smallstack/")


def wait_saved(page) -> None:
    page.wait_for_function(
        "document.getElementById('layout-status').textContent === 'Saved'", timeout=10000
    )


def moved(keys: list[str], key: str, index: int) -> list[str]:
    rest = [k for k in keys if k != key]
    return [*rest[:index], key, *rest[index:]]


@pytest.mark.browser
def test_edit_layout_drag_keyboard_hide_wide_reload_reset(dashboard_server, browser, tmp_path):
    server, value_file = dashboard_server
    page = browser.new_page(base_url=server.url, viewport={"width": 1200, "height": 900})
    failed = page_failures(page)
    sign_in(page, server)
    page.wait_for_selector('#live-indicator[data-state="live"]', timeout=10000)

    default = saved_layout(page)["order"]
    assert grid_keys(page) == default and len(default) >= 6, default
    first, second, third, *_, last = default

    # Edit mode: every card gets its controls and becomes focusable; the panel shows.
    page.get_by_role("button", name="Edit layout").click()
    assert page.locator("#layout-panel").is_visible()
    assert page.locator(".grid > .card .card-edit").count() == len(default)
    assert page.locator(".grid > .card[tabindex='0']").count() == len(default)
    assert page.get_by_role("button", name="Edit layout").get_attribute("aria-pressed") == "true"

    # Drag by mouse: the third card, by its handle, onto the first.
    handle = page.locator(f'.card[data-key="{third}"] .card-drag').bounding_box()
    target = page.locator(f'.card[data-key="{first}"]').bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + 30, target["y"] + 30, steps=15)
    page.mouse.move(target["x"] + 20, target["y"] + 20, steps=5)
    page.mouse.up()
    expected = moved(default, third, 0)
    page.wait_for_function(
        f"document.querySelector('.grid > .card').dataset.key === {json.dumps(third)}",
        timeout=10000,
    )
    assert grid_keys(page) == expected
    wait_saved(page)
    assert saved_layout(page)["order"] == expected

    # Keyboard: focus a card, ArrowRight moves it one later, and the live region says so.
    card = page.locator(f'.card[data-key="{second}"]')
    card.focus()
    page.keyboard.press("ArrowRight")
    expected = moved(expected, second, expected.index(second) + 1)
    assert grid_keys(page) == expected
    title = card.locator(".card-title").inner_text()
    announcement = f"{title} moved to position {expected.index(second) + 1} of {len(expected)}"
    page.wait_for_function(
        f"document.getElementById('layout-announce').textContent === {json.dumps(announcement)}",
        timeout=10000,
    )
    assert page.evaluate("document.activeElement.dataset.key") == second  # focus stays
    page.keyboard.press("ArrowUp")  # and back
    expected = moved(expected, second, expected.index(second) - 1)
    assert grid_keys(page) == expected

    # Hide one: it leaves the grid for the hidden list.
    last_title = page.locator(f'.card[data-key="{last}"] .card-title').inner_text()
    page.get_by_role("button", name=f"Hide {last_title}").click()
    assert last not in grid_keys(page)
    assert page.locator(f'#layout-hidden-list li[data-key="{last}"] button').is_visible()

    # Wide: the live card spans two columns.
    live = page.locator('.card[data-key="live-value"]')
    assert "wide" not in live.get_attribute("class")
    live.locator("[data-layout-action=span]").click()
    assert "wide" in live.get_attribute("class")
    assert live.locator("[data-layout-action=span]").inner_text() == "Normal"
    wait_saved(page)
    saved = saved_layout(page)
    assert saved["order"] == expected
    assert saved["hidden"] == [last]
    assert saved["spans"] == {"live-value": 2}

    # A live push updates the card in place: it stays wide, keeps its controls and its focus.
    live.focus()
    value_file.write_text("pushed <b>value</b>")
    refresh_from_the_server(server, "live-value")
    page.wait_for_function(
        "document.querySelector('[data-key=\"live-value\"] .headline')"
        ".textContent === 'pushed <b>value</b>'",
        timeout=10000,
    )
    assert "wide" in live.get_attribute("class")
    assert live.locator(".card-edit [data-layout-action=hide]").count() == 1
    assert live.get_attribute("tabindex") == "0"
    assert page.evaluate("document.activeElement.dataset.key") == "live-value"
    assert live.locator(".headline b").count() == 0

    # While editing, a card's link does not navigate.
    page.evaluate("window.__samePage = true")
    page.locator('.card[data-key="smallstack.status"] .headline').click()
    time.sleep(1)
    assert page.url.endswith("/smallstack/") and page.evaluate("window.__samePage") is True

    # Done, reload: the same order, hidden card and width, from the server.
    page.get_by_role("button", name="Done").click()
    assert page.locator(".card-edit").count() == 0
    page.reload()
    page.wait_for_selector('#live-indicator[data-state="live"]', timeout=10000)
    assert grid_keys(page) == [k for k in expected if k != last]
    assert "wide" in page.locator('.card[data-key="live-value"]').get_attribute("class")
    # ...and in another browser: the layout follows the user.
    elsewhere = browser.new_context(base_url=server.url)
    other = elsewhere.new_page()
    sign_in(other, server)
    assert grid_keys(other) == [k for k in expected if k != last]
    assert "wide" in other.locator('.card[data-key="live-value"]').get_attribute("class")
    elsewhere.close()

    page.get_by_role("button", name="Edit layout").click()
    assert page.locator(f'#layout-hidden-list li[data-key="{last}"]').is_visible()

    # Show it again: back at its place, filled in over the socket.
    page.locator(f'#layout-hidden-list li[data-key="{last}"] button').click()
    assert grid_keys(page) == expected
    page.wait_for_selector(f'.grid > .card[data-key="{last}"][data-state="ok"]', timeout=10000)
    wait_saved(page)
    assert saved_layout(page)["hidden"] == []

    screenshot = tmp_path / "layout-editing.png"
    page.screenshot(path=str(screenshot), full_page=True)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(screenshot, artifacts / "layout-editing.png")

    # Reset to default: the server forgets the layout, the page reloads in the default order.
    with page.expect_navigation():
        page.get_by_role("button", name="Reset to default").click()
    page.wait_for_selector(".grid > .card", timeout=10000)
    assert grid_keys(page) == default
    assert "wide" not in page.locator('.card[data-key="live-value"]').get_attribute("class")
    assert saved_layout(page) == {
        "scope": "dashboard",
        "order": default,
        "hidden": [],
        "spans": {},
    }
    assert not failed, failed


@pytest.mark.browser
def test_failed_save_is_shown_and_loses_nothing(dashboard_server, browser):
    server, _ = dashboard_server
    page = browser.new_page(base_url=server.url, viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, server)
    default = grid_keys(page)

    # The server refuses the save (a 503 from "a proxy"): the error shows, the order stays.
    page.route(
        f"**{LAYOUT_URL}*",
        lambda route: route.fulfill(
            status=503, content_type="application/json", body='{"detail": "down for maintenance"}'
        ),
    )
    page.get_by_role("button", name="Edit layout").click()
    page.locator(f'.card[data-key="{default[0]}"]').focus()
    page.keyboard.press("ArrowDown")
    expected = moved(default, default[0], 1)
    page.wait_for_selector("#layout-error:not([hidden])", timeout=10000)
    assert "not saved: down for maintenance" in page.locator("#layout-error").inner_text()
    assert grid_keys(page) == expected
    assert saved_layout(page)["order"] == default
    # Leaving edit mode does not hide the failure.
    page.get_by_role("button", name="Done").click()
    assert page.locator("#layout-error").is_visible()
    assert grid_keys(page) == expected

    # Back up: Retry saves what the user did.
    page.unroute(f"**{LAYOUT_URL}*")
    page.get_by_role("button", name="Retry").click()
    wait_saved(page)
    assert page.locator("#layout-error").is_hidden()
    assert saved_layout(page)["order"] == expected

    # A value the server refuses: its 422 names the field, and the page says so.
    def bad_span(route):
        body = json.loads(route.request.post_data)
        route.continue_(post_data=json.dumps({**body, "spans": {default[0]: 3}}))

    page.route(f"**{LAYOUT_URL}*", bad_span)
    page.get_by_role("button", name="Edit layout").click()
    page.locator(f'.card[data-key="{default[0]}"]').focus()
    page.keyboard.press("ArrowUp")
    page.wait_for_selector("#layout-error:not([hidden])", timeout=10000)
    assert "spans" in page.locator("#layout-error-text").inner_text()
    assert grid_keys(page) == default
    page.unroute(f"**{LAYOUT_URL}*")

    # An app page has its own layout, and the editor too.
    page.goto("/smallstack/app/liveapp/")
    assert json.loads(page.locator("#dashboard-layout").text_content())["scope"] == "app:liveapp"
    page.get_by_role("button", name="Edit layout").click()
    assert page.locator(".grid > .card .card-edit").count() == len(grid_keys(page)) > 0
    assert not errors, errors


@pytest.mark.browser
def test_touch_drag_on_a_group_page(dashboard_server, browser):
    server, _ = dashboard_server
    context = browser.new_context(
        base_url=server.url, viewport={"width": 800, "height": 900}, has_touch=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, server)
    dashboard = saved_layout(page)
    page.goto("/smallstack/group/Live/")
    default = grid_keys(page)
    assert default == ["live-value", "late-card"]
    # The same user has the page open in another window too.
    elsewhere = browser.new_context(base_url=server.url)
    other = elsewhere.new_page()
    other.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(other, server)
    other.goto("/smallstack/group/Live/")
    other.wait_for_selector('#live-indicator[data-state="live"]', timeout=10000)

    # A finger on the second card's handle, moved onto the first card.
    page.get_by_role("button", name="Edit layout").click()
    handle = page.locator('.card[data-key="late-card"] .card-drag').bounding_box()
    target = page.locator('.card[data-key="live-value"]').bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    end = (target["x"] + 20, target["y"] + 20)
    touch = context.new_cdp_session(page)

    def finger(kind: str, x: float, y: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
        touch.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    finger("touchStart", *start)
    for step in range(1, 16):
        finger(
            "touchMove",
            start[0] + (end[0] - start[0]) * step / 15,
            start[1] + (end[1] - start[1]) * step / 15,
        )
        time.sleep(0.02)
    finger("touchEnd", *end)
    page.wait_for_function(
        "document.querySelector('.grid > .card').dataset.key === 'late-card'", timeout=10000
    )
    wait_saved(page)
    response = page.request.get(f"{LAYOUT_URL}?scope=group:Live")
    assert response.json()["order"] == ["late-card", "live-value"]
    assert saved_layout(page) == dashboard  # the main page's layout is another one
    page.reload()
    assert grid_keys(page) == ["late-card", "live-value"]

    # The other window follows without a reload: the new order, then a card hidden and shown
    # again here (it comes back filled in over its socket).
    other.wait_for_function(
        "document.querySelector('.grid > .card').dataset.key === 'late-card'", timeout=10000
    )
    page.wait_for_selector('#live-indicator[data-state="live"]', timeout=10000)
    page.get_by_role("button", name="Edit layout").click()
    page.get_by_role("button", name="Hide Live value").click()
    other.wait_for_selector('.grid > .card[data-key="live-value"]', state="detached", timeout=10000)
    assert grid_keys(other) == ["late-card"]
    page.get_by_role("button", name="Show Live value").click()
    other.wait_for_selector('.grid > .card[data-key="live-value"][data-state="ok"]', timeout=10000)
    assert grid_keys(other) == ["late-card", "live-value"]

    # A width follows too; and a reset brings the other window back to the default order and
    # the widgets' own widths.
    page.locator('.card[data-key="late-card"] [data-layout-action=span]').click()
    other.wait_for_selector('.grid > .card.wide[data-key="late-card"]', timeout=10000)
    with page.expect_navigation():
        page.get_by_role("button", name="Reset to default").click()
    other.wait_for_function(
        "document.querySelector('.grid > .card').dataset.key === 'live-value'", timeout=10000
    )
    assert grid_keys(other) == default
    assert other.locator(".grid > .card.wide").count() == 0
    elsewhere.close()
    context.close()
    assert not errors, errors
