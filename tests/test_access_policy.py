"""One access policy and one scope rule, used by every surface."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

from smallstack.access import can_use_dashboard
from smallstack.registry import UnknownScope, registry
from tests.widgets import Returns

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("attrs", "allowed"),
    [
        ({"is_staff": True, "is_active": True}, True),
        ({"is_staff": False, "is_active": True}, False),
        ({"is_staff": True, "is_active": False}, False),
        ({"is_superuser": True, "is_staff": False, "is_active": True}, False),
    ],
)
def test_the_policy_is_active_staff(django_user_model, attrs, allowed):
    user = django_user_model(username="someone", **attrs)
    assert can_use_dashboard(user) is allowed


def test_anonymous_users_are_never_allowed():
    assert can_use_dashboard(AnonymousUser()) is False
    assert can_use_dashboard(None) is False


def test_the_staff_rule_is_written_once():
    """Pages, API, websocket and signals ask access.can_use_dashboard; none tests the flags."""
    pattern = re.compile(r"\.is_staff\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "smallstack").rglob("*.py")
        if path.name != "access.py" and "migrations" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "_ACCESS_FIELDS" not in line
    ]
    assert not offenders, offenders


def test_scope_rules(register, group):
    on_page = register(Returns({"headline": "a"}), group=group)
    hidden = register(Returns({"headline": "b"}, on_dashboard=False), group=group)
    assert registry.scope(group=group) == [on_page, hidden]
    assert on_page in registry.scope() and hidden not in registry.scope()
    assert hidden in registry.scope(dashboard_only=False)
    assert hidden not in registry.scope(group=group, dashboard_only=True)
    app = on_page.app_label
    assert set(registry.scope(app=app)) >= {on_page, hidden}
    with pytest.raises(UnknownScope, match="No dashboard group named 'nowhere'"):
        registry.scope(group="nowhere")
    with pytest.raises(UnknownScope, match="No dashboard widgets for app 'nowhere'"):
        registry.scope(app="nowhere")


@pytest.mark.django_db
def test_pages_answer_an_unknown_scope_with_404(staff_client):
    assert staff_client.get("/smallstack/group/nowhere/").status_code == 404
    assert staff_client.get("/smallstack/app/nowhere/").status_code == 404
