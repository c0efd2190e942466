"""A widget type owns its data rules: a type without a headline is as good as the default card."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import pytest

from smallstack.contract import InvalidWidgetData, State, validate_data, validate_extras
from smallstack.displays import DashboardWidget
from smallstack.engine import engine

pytestmark = pytest.mark.django_db(transaction=True)


class Sparkline(DashboardWidget):
    """A widget type of its own: a list of numbers, no headline, its own template."""

    template_name = "widgettypes/sparkline.html"

    def __init__(self, title: str, points: Any) -> None:
        self.title, self.points = title, points

    def get_data(self) -> dict[str, Any]:
        return {"points": self.points}

    def clean_data(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        points = data.get("points")
        if not isinstance(points, list) or not all(
            isinstance(p, numbers.Real) and not isinstance(p, bool) for p in points
        ):
            raise InvalidWidgetData("a sparkline needs 'points', a list of numbers")
        return {"points": points[-50:]}  # what the type keeps: the latest 50


async def test_a_type_without_a_headline_is_served_by_the_engine_api_and_page(
    register, group, staff_async_client
):
    registration = register(Sparkline("requests per minute", list(range(60))))
    [context] = await engine.evaluate([registration])
    assert context.state == State.OK == "ok"
    assert context.data == {"points": list(range(10, 60))}  # cleaned by the type

    response = await staff_async_client.get(f"/api/dashboard/widgets/{registration.key}/")
    assert response.status_code == 200
    assert response.json()["data"] == {"points": list(range(10, 60))}

    page = await staff_async_client.get(f"/smallstack/group/{group}/", {"wait": "1"})
    html = page.content.decode()
    assert f'class="card sparkline" data-key="{registration.key}" data-state="ok"' in html
    assert '<p class="points">10 11 12' in html


async def test_the_type_rules_reject_with_the_types_own_message(register, group):
    registration = register(Sparkline("broken sparkline", ["a", "b"]))
    [context] = await engine.evaluate([registration])
    assert context.state == "error"
    assert context.error == "a sparkline needs 'points', a list of numbers"


def test_the_default_card_still_needs_a_string_headline():
    class Card(DashboardWidget):
        title = "card"

    with pytest.raises(InvalidWidgetData, match="must return a string 'headline', got nothing"):
        validate_data(Card(), {"points": [1, 2]})
    assert validate_data(Card(), {"headline": "x", "detail": None}) == {
        "headline": "x",
        "detail": None,
    }


def test_rules_every_type_shares_apply_after_the_types_own(settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "MAX_DATA_BYTES": 100}
    with pytest.raises(InvalidWidgetData, match="over the 100 bytes limit"):
        validate_data(Sparkline("big", []), {"points": list(range(40))})
    with pytest.raises(InvalidWidgetData, match="not JSON-serialisable"):
        validate_data(Sparkline("nan", []), {"points": [float("nan")]})
    # Extras have no type rules, only the shared ones.
    assert validate_extras(None) == {}
    assert validate_extras({"anything": [1]}) == {"anything": [1]}
    with pytest.raises(InvalidWidgetData, match=r"get_api_extras\(\) returned list"):
        validate_extras([1])
