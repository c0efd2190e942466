"""The dashboard pages: access control, rendering, escaping, scoping, concurrency."""

from __future__ import annotations

import time

import pytest
from django.test import RequestFactory
from django.views.generic import TemplateView

from smallstack.dashboard import DashboardWidgetsMixin
from tests.widgets import Hangs, Returns, SleepyAsync, SleepySync

pytestmark = pytest.mark.django_db(transaction=True)

SVG = '<svg viewBox="0 0 24 24" data-test="icon"><path d="M0 0h24v24H0z"/></svg>'


@pytest.mark.parametrize(
    "path", ["/smallstack/", "/smallstack/group/Monitoring/", "/smallstack/app/smallstack/"]
)
def test_anonymous_is_redirected_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize(
    "path", ["/smallstack/", "/smallstack/group/Monitoring/", "/smallstack/app/smallstack/"]
)
def test_non_staff_is_forbidden(client, plain_user, path):
    client.force_login(plain_user)
    assert client.get(path).status_code == 403


def test_inactive_staff_is_forbidden(client, staff_user):
    client.force_login(staff_user)
    staff_user.is_active = False
    staff_user.save()
    assert client.get("/smallstack/").status_code in (302, 403)


def test_login_page_signs_staff_in(client, staff_user):
    response = client.post(
        "/accounts/login/?next=/smallstack/",
        {"username": "staff", "password": "pw-staff-123", "next": "/smallstack/"},
    )
    assert response.status_code == 302 and response["Location"] == "/smallstack/"
    assert client.get("/smallstack/").status_code == 200


def test_dashboard_renders_cards(staff_client, register):
    register(
        Returns(
            {
                "headline": "1,234 orders",
                "detail": "12 open",
                "status": "warning",
                "extra": {"x": 1},
            },
            title="Orders",
            icon=SVG,
            span=2,
            url_name="smallstack:dashboard",
        )
    )
    register(Returns({"headline": "odd", "status": "purple"}, title="Odd status"))
    register(Returns({"headline": "hidden card"}, on_dashboard=False))

    html = staff_client.get("/smallstack/").content.decode()

    assert "1,234 orders" in html and "12 open" in html
    assert 'class="badge badge-warning">warning<' in html
    assert 'class="badge badge-other">purple<' in html
    assert SVG in html, "the developer's icon is trusted markup"
    assert 'class="card wide state-ok"' in html
    assert 'href="/smallstack/"' in html
    assert "hidden card" not in html
    assert "&#x27;x&#x27;" not in html and '"x"' not in html, "extras stay out of the card"


def test_widget_values_are_escaped(staff_client, register):
    register(
        Returns(
            {"headline": "<script>alert(1)</script>", "detail": "<b>bold</b>", "status": "<i>"},
            title="<em>title</em>",
        )
    )
    html = staff_client.get("/smallstack/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;em&gt;title&lt;/em&gt;" in html
    assert "<em>title</em>" not in html and "<i>" not in html


def test_degraded_cards_say_what_happened(staff_client, register):
    register(Returns(raises=RuntimeError("<db> unreachable"), title="Broken"))
    hung = register(Hangs(timeout=0.2, title="Stuck")).widget
    try:
        html = staff_client.get("/smallstack/").content.decode()
    finally:
        hung.release.set()
    assert "error: RuntimeError: &lt;db&gt; unreachable" in html
    assert "timed out after 0.2 s" in html
    assert "no earlier value to show" in html


def test_stale_card_shows_old_value_and_age(staff_client, register):
    widget = register(Returns({"headline": "99 users"}, title="Users now")).widget
    staff_client.get("/smallstack/")
    widget.raises = OSError("gone")
    html = staff_client.get("/smallstack/").content.decode()
    assert "99 users" in html
    assert "is-stale" in html
    assert "showing the value from 0" in html and "minutes ago" in html


def test_group_and_app_pages_include_hidden_widgets(staff_client, register, group):
    register(Returns({"headline": "visible"}))
    register(Returns({"headline": "scoped only"}, on_dashboard=False))
    html = staff_client.get(f"/smallstack/group/{group}/").content.decode()
    assert "visible" in html and "scoped only" in html
    html = staff_client.get("/smallstack/app/tests/").content.decode()
    assert "visible" in html and "scoped only" in html
    assert "scoped only" not in staff_client.get("/smallstack/").content.decode()


def test_unknown_group_or_app_is_404(staff_client):
    assert staff_client.get("/smallstack/group/no-such-group/").status_code == 404
    assert staff_client.get("/smallstack/app/no-such-app/").status_code == 404


async def test_page_evaluates_widgets_concurrently(staff_async_client, register, group):
    for _ in range(10):
        register(SleepySync(0.3))
        register(SleepyAsync(0.3))
    started = time.perf_counter()
    response = await staff_async_client.get(f"/smallstack/group/{group}/?wait=1")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.content.decode().count('data-state="ok"') == 20
    assert elapsed < 1.5, f"a page of twenty 0.3 s widgets took {elapsed:.2f} s"


class OpsDashboard(DashboardWidgetsMixin, TemplateView):
    """The reference page's custom view, as written there."""

    template_name = "myapp/ops.html"
    widget_group = "Monitoring"


def test_reference_mixin_example(register, staff_user):
    slow = [register(SleepySync(0.3), group="Monitoring") for _ in range(5)]
    hidden = register(Returns({"headline": "slow queries"}, on_dashboard=False), group="Monitoring")

    request = RequestFactory().get("/ops/")
    request.user = staff_user
    started = time.perf_counter()
    response = OpsDashboard.as_view()(request)
    response.render()
    elapsed = time.perf_counter() - started

    html = response.content.decode()
    for registration in [*slow, hidden]:
        assert f'data-key="{registration.key}"' in html
    assert html.count("(ok)") >= 6
    assert "slow queries" in html, "scoped views include on_dashboard=False widgets"
    assert elapsed < 1.2, f"five 0.3 s widgets took {elapsed:.2f} s"


async def test_mixin_in_an_async_view(register, group):
    register(SleepyAsync(0.1))

    class AsyncOps(DashboardWidgetsMixin):
        widget_group = group

    widgets = await AsyncOps().aget_widgets()
    assert len(widgets) == 1 and widgets[0].state == "ok"
