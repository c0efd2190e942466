"""The sparkline widget type: its data rules, its SVG, and the same chart on every surface."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from smallstack import sparklines
from smallstack.contract import validate_data
from smallstack.displays import (
    MAX_SERIES_POINTS,
    DashboardWidget,
    InvalidWidgetData,
    SparklineWidget,
)
from smallstack.engine import engine
from smallstack.routing import websocket_urlpatterns

SVG = "{http://www.w3.org/2000/svg}"


class Series(SparklineWidget):
    def __init__(self, title: str, data: dict[str, Any]) -> None:
        self.title, self.data = title, data

    async def get_data(self) -> dict[str, Any]:
        return self.data


def chart(series, labels=None, name="Requests") -> ET.Element:
    """The rendered chart, parsed (so the markup is well-formed XML too)."""
    markup = str(sparklines.render(series, labels, name))
    return ET.fromstring(markup.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def ys(element: ET.Element) -> list[float]:
    line = element.find(f"{SVG}polyline")
    assert line is not None
    return [float(pair.split(",")[1]) for pair in line.get("points", "").split()]


# -- data rules ------------------------------------------------------------------------------


def test_a_good_series_is_kept_as_a_list_with_its_labels():
    data = {"headline": "5 requests", "series": (1, 2.5, 0), "series_labels": ["a", "b", "c"]}
    cleaned = validate_data(Series("ok", {}), data)
    assert cleaned == {
        "headline": "5 requests",
        "series": [1, 2.5, 0],
        "series_labels": ["a", "b", "c"],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"headline": "x"}, "a sparkline needs 'series', a list of numbers, got nothing"),
        ({"headline": "x", "series": "1,2,3"}, "needs 'series', a list of numbers, got str"),
        ({"headline": "x", "series": {"a": 1}}, "needs 'series', a list of numbers, got dict"),
        ({"headline": "x", "series": [1, "2"]}, "'series' item 1 is str, not a number"),
        ({"headline": "x", "series": [True, 2]}, "'series' item 0 is bool, not a number"),
        ({"headline": "x", "series": [1, None]}, "'series' item 1 is NoneType, not a number"),
        ({"headline": "x", "series": [float("nan")]}, "'series' item 0 is nan, not a finite"),
        ({"headline": "x", "series": [1, float("-inf")]}, "item 1 is -inf, not a finite number"),
        ({"headline": "x", "series": [10**400]}, "'series' item 0 is 1000"),
        (
            {"headline": "x", "series": list(range(MAX_SERIES_POINTS + 1))},
            f"'series' has {MAX_SERIES_POINTS + 1} points, over the {MAX_SERIES_POINTS} limit",
        ),
        (
            {"headline": "x", "series": [1, 2], "series_labels": ["a"]},
            "'series_labels' has 1 items for 2 points",
        ),
        (
            {"headline": "x", "series": [1, 2], "series_labels": ["a", 2]},
            "'series_labels' must be a list of strings",
        ),
        ({"series": [1, 2]}, "must return a string 'headline', got nothing"),
    ],
)
def test_bad_data_is_rejected_with_a_message_for_the_card(data, message):
    with pytest.raises(InvalidWidgetData, match=re.escape(message)):
        validate_data(Series("bad", {}), data)


def test_the_type_is_chosen_by_widget_type_alone():
    class PlainWithType(DashboardWidget):
        title = "typed"
        widget_type = "sparkline"

    with pytest.raises(InvalidWidgetData, match="needs 'series'"):
        validate_data(PlainWithType(), {"headline": "x"})
    # The default card keeps its own rules: a series is just more data.
    plain = DashboardWidget()
    assert validate_data(plain, {"headline": "x", "series": "anything"})["series"] == "anything"


# -- the chart -------------------------------------------------------------------------------


def test_an_empty_series_draws_a_baseline_and_says_no_data():
    svg = chart([])
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == "Requests: no data"
    assert svg.findtext(f"{SVG}title") == "Requests: no data"
    assert svg.find(f"{SVG}polyline") is None and svg.find(f"{SVG}circle") is None
    assert svg.find(f"{SVG}line").get("class") == "spark-empty"


def test_one_point_is_a_dot_at_the_right_edge_on_the_middle_line():
    svg = chart([42], ["14:00"])
    assert svg.find(f"{SVG}polyline") is None
    dot = svg.find(f"{SVG}circle")
    assert (float(dot.get("cx")), float(dot.get("cy"))) == (
        sparklines.WIDTH - sparklines.PAD,
        sparklines.HEIGHT / 2,
    )
    assert svg.get("aria-label") == "Requests: 1 point: 42 (14:00)"


def test_a_constant_series_is_a_flat_line_in_the_middle():
    svg = chart([7, 7, 7, 7])
    assert ys(svg) == [sparklines.HEIGHT / 2] * 4
    assert svg.get("aria-label") == "Requests: 4 points, all 7"


def test_negative_values_scale_below_a_zero_line():
    series = [-2, 4, -1, 0, 7]
    svg = chart(series)
    heights = ys(svg)
    top, bottom = sparklines.PAD, sparklines.HEIGHT - sparklines.PAD
    assert heights[4] == top and heights[0] == bottom  # the maximum on top, the minimum below
    for i, a in enumerate(series):  # a higher value is drawn higher up, always
        assert all(heights[i] < heights[j] for j, b in enumerate(series) if a > b)
    zero = float(svg.find(f"{SVG}line").get("y1"))
    assert heights[3] == pytest.approx(zero, abs=0.01)  # the 0 point sits on the zero line
    assert top < zero < bottom
    assert svg.get("aria-label") == "Requests: 5 points from -2 to 7, latest 7"


def test_x_runs_oldest_to_newest_across_the_width():
    svg = chart(list(range(10)))
    points = svg.find(f"{SVG}polyline").get("points").split()
    xs = [float(p.split(",")[0]) for p in points]
    assert xs[0] == sparklines.PAD and xs[-1] == sparklines.WIDTH - sparklines.PAD
    assert xs == sorted(xs) and len(set(xs)) == 10


def test_the_text_alternative_names_extremes_with_their_labels_escaped():
    markup = str(sparklines.render([3, 9, 1, 5], ["mon", "<b>tue</b>", "wed", "thu"], "A&B"))
    assert "<b>" not in markup
    label = "A&amp;B: 4 points from 1 (wed) to 9 (&lt;b&gt;tue&lt;/b&gt;), latest 5 (thu)"
    assert f'aria-label="{label}"' in markup and f"<title>{label}</title>" in markup


# -- every surface ---------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


def _svg(html: str) -> str:
    found = re.search(r"<svg class=\"sparkline\".*?</svg>", html, re.S)
    assert found, html
    return found.group(0)


@pytestmark_db
async def test_page_push_and_api_carry_the_same_chart_and_a_bad_series_costs_one_card(
    register, group, staff_async_client, staff_user
):
    data = {"headline": "1,234 requests", "detail": "24 h", "series": [3, 1, 4, 1, 5]}
    good = register(Series("Traffic", data))
    bad = register(Series("Broken", {"headline": "x", "series": [1, "two"]}))
    plain = register(Series("Plain", {"headline": "still here", "series": []}))

    page = (await staff_async_client.get(f"/smallstack/group/{group}/", {"wait": "1"})).content
    html = page.decode()
    good_card = re.search(rf'<article[^>]*data-key="{good.key}".*?</article>', html, re.S)
    bad_card = re.search(rf'<article[^>]*data-key="{bad.key}".*?</article>', html, re.S)
    assert good_card and bad_card
    assert "1,234 requests" in good_card.group(0)
    page_svg = _svg(good_card.group(0))
    assert 'aria-label="Traffic: 5 points from 1 to 5, latest 5"' in page_svg
    assert 'data-state="error"' in bad_card.group(0)
    assert "error: &#x27;series&#x27; item 1 is str, not a number" in bad_card.group(0)
    assert '<svg class="sparkline"' not in bad_card.group(0)
    assert f'data-key="{plain.key}" data-state="ok"' in html  # the other cards are fine

    api = await staff_async_client.get(f"/api/dashboard/widgets/{good.key}/")
    assert api.status_code == 200
    item = api.json()
    assert item["widget_type"] == "sparkline"
    assert item["data"]["series"] == [3, 1, 4, 1, 5]

    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns),
        "/ws/smallstack/dashboard/",
        headers=[(b"origin", b"http://localhost")],
    )
    communicator.scope["user"] = staff_user
    connected, _ = await communicator.connect()
    assert connected
    try:
        assert json.loads(await communicator.receive_from(3))["type"] == "status"
        await communicator.send_json_to({"type": "subscribe", "group": group})
        assert json.loads(await communicator.receive_from(3))["type"] == "subscribed"
        await communicator.send_json_to({"type": "snapshot", "keys": [good.key]})
        while True:
            message = json.loads(await communicator.receive_from(3))
            if message["type"] == "widget.update":
                break
        assert message["widget"]["data"]["series"] == [3, 1, 4, 1, 5]
        assert _svg(message["html"]) == page_svg
    finally:
        await communicator.disconnect()


@pytestmark_db
async def test_the_engine_keeps_the_cleaned_series(register):
    registration = register(Series("Floats", {"headline": "x", "series": (1, 2.0)}))
    [context] = await engine.evaluate([registration])
    assert context.state == "ok"
    assert context.data["series"] == [1, 2.0]
