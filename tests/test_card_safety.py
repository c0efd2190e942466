"""What a widget declares cannot break the pages: bad groups, app labels and templates are
refused at ``register()``; a template that fails while rendering costs only its own card."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import pytest
from django.core.exceptions import ImproperlyConfigured

from smallstack import dashboard, live
from smallstack.engine import engine
from tests.widgets import Returns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"group": "a/b"}, "group 'a/b' cannot be part of its page's URL"),
        ({"group": "/"}, "group '/' cannot be part of its page's URL"),
        ({"group": 7}, "group 7 cannot be part of its page's URL"),
        ({"app_label": "ops/x"}, "app label 'ops/x' cannot be part of its page's URL"),
    ],
)
def test_a_group_or_app_that_cannot_be_in_a_url_is_refused(register, options, message):
    before = len(dashboard.registry)
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        dashboard.register(Returns({"headline": "x"}), **options)
    assert len(dashboard.registry) == before


def test_a_group_set_on_the_widget_is_checked_too():
    widget = Returns({"headline": "x"}, group="reports/2026")
    with pytest.raises(ImproperlyConfigured, match="group 'reports/2026'"):
        dashboard.register(widget)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        (
            {"widget_type": "gauge"},
            "no template 'smallstack/widgets/gauge.html' (chosen by its widget_type 'gauge')",
        ),
        (
            {"template_name": "brokencards/nowhere.html"},
            "no template 'brokencards/nowhere.html' (chosen by its template_name",
        ),
        (
            {"template_name": "brokencards/syntax-error.html"},
            "template 'brokencards/syntax-error.html' does not compile:",
        ),
    ],
)
def test_a_card_template_that_cannot_load_is_refused(attrs, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        dashboard.register(Returns({"headline": "x"}, **attrs))


def test_unusual_but_valid_groups_are_accepted_and_served(register, staff_client):
    for group in ["Sales & Ops", "ünïcode", "100% uptime?", "a.b"]:
        register(Returns({"headline": f"in {group}"}), group=group)
        page = staff_client.get(f"/smallstack/group/{quote(group, safe='')}/")
        assert page.status_code == 200, group
        assert f"in {group}".replace("&", "&amp;") in page.content.decode()
    assert staff_client.get("/smallstack/").status_code == 200


def test_a_template_failing_at_render_time_degrades_only_its_card(
    register, group, staff_client, caplog
):
    broken = register(
        Returns({"headline": "hidden"}, template_name="brokencards/includes-missing.html")
    )
    custom = register(Returns({"headline": "custom one"}, template_name="brokencards/custom.html"))
    fine = register(Returns({"headline": "still here"}))
    caplog.set_level(logging.ERROR, "smallstack.dashboard")

    page = staff_client.get(f"/smallstack/group/{group}/", {"wait": "1"})

    assert page.status_code == 200
    html = page.content.decode()
    card = re.search(
        rf'data-key="{re.escape(broken.key)}" data-state="error">(.*?)</article>', html, re.S
    )
    assert card, "the broken card is rendered as the default card in error"
    assert (
        "error: template brokencards/includes-missing.html failed: TemplateDoesNotExist: "
        "brokencards/not-there.html" in card.group(1)
    )
    assert "hidden" in card.group(1)  # its data still shown, escaped, by the default card
    assert f'data-key="{fine.key}" data-state="ok"' in html and "still here" in html
    # A custom card renders in the page's context, as {% include %} did.
    assert f'class="card custom" data-key="{custom.key}"' in html
    assert '<p class="who">staff</p>' in html
    [record] = [r for r in caplog.records if broken.key in r.getMessage()]
    assert "its template brokencards/includes-missing.html failed" in record.getMessage()
    assert record.exc_info is not None


async def test_the_live_push_renders_a_failing_card_in_error_too(register, group):
    registration = register(
        Returns({"headline": "pushed"}, template_name="brokencards/includes-missing.html")
    )
    [context] = await engine.evaluate([registration])
    message = await live.update_message(context)
    assert message["widget"]["state"] == "ok"  # the data is fine; only the card's HTML failed
    assert 'data-state="error"' in message["html"]
    assert "template brokencards/includes-missing.html failed" in message["html"]
