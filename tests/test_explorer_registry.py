"""The Explorer registry: registration, autodiscovery, and the widgets it attaches to models."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db.models.expressions import RawSQL
from django.urls import reverse

from explorer.registry import explorer
from project.sales.admin import OrderAdmin
from project.sales.models import Order
from smallstack import dashboard
from smallstack.displays import DashboardWidget
from tests.sql_sleep import sql_sleep
from tests.widgets import unique

ROOT = Path(__file__).resolve().parent.parent


class ModelCount(DashboardWidget):
    """A sync ORM widget that records the ``model_class`` it was given."""

    def __init__(self, **attrs) -> None:
        self.title = attrs.pop("title", None) or unique("model count")
        self.seen: list[type] = []
        self.__dict__.update(attrs)

    def get_data(self, model_class=None):
        self.seen.append(model_class)
        return {"headline": f"{model_class.objects.count()} {model_class.__name__}"}


@pytest.fixture
def explore(group):
    """``explore(model, admin_class, **options)`` for one test; unregistered afterwards."""
    models = []

    def _explore(model, admin_class=None, **options):
        options.setdefault("group", group)
        info = explorer.register(model, admin_class, **options)
        models.append(model)
        return info

    yield _explore
    for model in models:
        if explorer.is_registered(model):
            explorer.unregister(model)


def test_register_returns_model_info_with_admin_options(explore, group):
    class GroupAdmin:
        list_display = ["id", "name"]
        search_fields = ["name"]

    info = explore(Group, GroupAdmin, readonly=True)
    assert explorer.is_registered(Group)
    assert explorer.lookup("auth", "group") is info
    assert (info.label, info.group, info.readonly) == ("auth.group", group, True)
    assert info.list_fields == ["id", "name"]
    assert info.search_fields == ["name"]
    assert info in explorer.get_models() and group in explorer.get_groups()
    assert explorer.get_models(group=group) == [info]


def test_registering_a_model_twice_is_a_clear_error(explore, group):
    explore(Group)
    with pytest.raises(ImproperlyConfigured, match=r"auth\.Group is already registered"):
        explorer.register(Group, group="Elsewhere")
    assert explorer.get_model_info(Group).group == group  # the first registration stands


def test_register_rejects_what_is_not_a_model():
    with pytest.raises(ImproperlyConfigured, match="needs a model class"):
        explorer.register(object)  # type: ignore[arg-type]


def test_unregister_removes_the_model_and_its_widgets(explore):
    widget = ModelCount()

    class GroupAdmin:
        explorer_dashboard_widgets = [widget]

    info = explore(Group, GroupAdmin)
    key = info.registrations[0].key
    assert key in dashboard.registry
    explorer.unregister(Group)
    assert not explorer.is_registered(Group)
    assert key not in dashboard.registry
    with pytest.raises(KeyError):
        explorer.unregister(Group)


def test_a_failing_widget_registration_leaves_nothing_behind(explore):
    class GroupAdmin:
        explorer_dashboard_widgets = [ModelCount(title="Same"), ModelCount(title="Same")]

    with pytest.raises(ImproperlyConfigured, match="already registered"):
        explore(Group, GroupAdmin)
    assert not explorer.is_registered(Group)
    assert "auth.group.same" not in dashboard.registry


def test_the_demo_app_explorer_module_was_autodiscovered():
    info = explorer.get_model_info(Order)
    assert info is not None and info.group == "Sales" and info.admin_class is OrderAdmin
    registration = dashboard.registry.get("sales.order.orders")
    assert registration is not None and registration.model is Order
    assert registration.group == "Sales" and registration.app_label == "sales"
    widget, model_info = next(
        (w, i) for w, i in explorer.get_dashboard_widgets() if i.model is Order
    )
    assert widget is registration.widget and model_info is info


def _run_django(installed: list[str], tmp_path: Path, code: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with extra installed apps, then run ``code``."""
    script = (
        "import django\n"
        "from django.conf import settings\n"
        f"settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, *{installed!r}]\n"
        "django.setup()\n" + code
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "SMALLSTACK_DATA_DIR": str(tmp_path),
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_autodiscovery_imports_explorer_py_of_every_installed_app(tmp_path):
    result = _run_django(
        ["tests.explorerapp"],
        tmp_path,
        "import json\n"
        "from explorer.registry import explorer\n"
        "from smallstack import dashboard\n"
        "print(json.dumps({'models': [i.label for i in explorer.get_models()],\n"
        "  'groups': explorer.get_groups(),\n"
        "  'widget': dashboard.registry.get('auth.group.discovered-groups').group}))\n",
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"auth.group", "sales.order"} <= set(found["models"])
    assert {"Discovered", "Sales"} <= set(found["groups"])
    assert found["widget"] == "Discovered"


def test_an_import_error_in_an_explorer_module_stops_startup_loudly(tmp_path):
    result = _run_django(["tests.explorerbroken"], tmp_path, "print('started')\n")
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "ModuleNotFoundError" in result.stderr
    assert "tests.explorerbroken.no_such_module" in result.stderr
    assert "explorerbroken/explorer.py" in result.stderr  # the traceback names the culprit


@pytest.mark.django_db(transaction=True)
async def test_attached_widgets_get_their_model_and_link_to_its_list_page(explore, group):
    shared = ModelCount(title="Rows")  # one instance attached to two models

    class Linked(DashboardWidget):
        title = "Linked elsewhere"
        url_name = "smallstack:dashboard"

        def get_data(self, model_class=None):
            return {"headline": model_class._meta.label}

    class GroupAdmin:
        explorer_dashboard_widgets = [shared, Linked()]

    class PermissionAdmin:
        explorer_dashboard_widgets = [shared]

    await Group.objects.acreate(name="editors")
    explore(Group, GroupAdmin)
    explore(Permission, PermissionAdmin, group=f"{group}-perms")

    contexts = {c.key: c for c in await dashboard.aget_widget_contexts(app="auth")}
    rows_group, rows_perm = contexts["auth.group.rows"], contexts["auth.permission.rows"]
    linked = contexts["auth.group.linked-elsewhere"]
    assert all(c.state == "ok" for c in (rows_group, rows_perm, linked))
    assert rows_group.data["headline"] == "1 Group"
    assert rows_perm.data["headline"].endswith(" Permission")
    assert set(shared.seen) == {Group, Permission}
    assert linked.data["headline"] == "auth.Group"

    assert rows_group.url == "/smallstack/explorer/auth/group/"
    assert rows_perm.url == "/smallstack/explorer/auth/permission/"
    assert linked.url == "/smallstack/"  # the widget's own url_name wins

    by_group = {c.key for c in await dashboard.aget_widget_contexts(group=group)}
    assert by_group == {"auth.group.rows", "auth.group.linked-elsewhere"}
    by_model = {c.key for c in await dashboard.aget_widget_contexts(model=Permission)}
    assert by_model == {"auth.permission.rows"}
    assert rows_group.as_item()["model_name"] == "group"


@pytest.mark.django_db(transaction=True)
def test_group_and_app_pages_show_attached_widgets(client, staff_user, explore, group):
    class GroupAdmin:
        explorer_dashboard_widgets = [ModelCount(title="Group rows", on_dashboard=False)]

    explore(Group, GroupAdmin)
    client.force_login(staff_user)
    on_group_page = client.get(f"/smallstack/group/{group}/").content.decode()
    on_app_page = client.get("/smallstack/app/auth/").content.decode()
    on_dashboard = client.get("/smallstack/").content.decode()
    for page in (on_group_page, on_app_page):
        assert 'data-key="auth.group.group-rows"' in page
        assert 'href="/smallstack/explorer/auth/group/"' in page
    assert 'data-key="auth.group.group-rows"' not in on_dashboard  # on_dashboard=False


@pytest.mark.django_db(transaction=True)
async def test_explorer_widget_counts_registered_models(explore, group):
    explore(Group)
    (context,) = [c for c in await dashboard.aget_widget_contexts(app="explorer")]
    widget = context.widget
    assert (context.key, widget.order, context.state) == ("explorer.models", 60, "ok")
    assert context.data["headline"] == f"{len(explorer)} models"
    assert context.data["detail"] == "Registered for exploration"
    assert "auth.group" in context.data["extra"]["models"]
    assert context.url == "/smallstack/explorer/"


# -- a sync and an async ORM widget overlap against the real database -----------------------

SQL_NAP = 0.3


@pytest.fixture
def sleep_sql():
    with sql_sleep():  # tests/sql_sleep.py
        yield


class Timed(DashboardWidget):
    def __init__(self, title: str) -> None:
        self.title = unique(title)
        self.span_seen: tuple[float, float] | None = None
        self.thread: str | None = None


class SyncOrmNap(Timed):
    def get_data(self, model_class=None):
        started = time.perf_counter()
        row = model_class.objects.annotate(nap=RawSQL(f"sleep({SQL_NAP})", ())).values("nap")
        count = len(list(row))
        self.span_seen = (started, time.perf_counter())
        self.thread = threading.current_thread().name
        return {"headline": f"{count} rows after a nap"}


class AsyncOrmNap(Timed):
    async def get_data(self, model_class=None):
        started = time.perf_counter()
        row = await model_class.objects.annotate(nap=RawSQL(f"sleep({SQL_NAP})", ())).afirst()
        self.span_seen = (started, time.perf_counter())
        await asyncio.sleep(0)
        return {"headline": f"napped on {row._meta.model_name}"}


@pytest.mark.django_db(transaction=True)
async def test_sync_and_async_orm_widgets_on_models_run_concurrently(sleep_sql, explore, group):
    sync_widget, async_widget = SyncOrmNap("sync nap"), AsyncOrmNap("async nap")

    class GroupAdmin:
        explorer_dashboard_widgets = [sync_widget, async_widget]

    await Group.objects.acreate(name="one row to nap on")
    explore(Group, GroupAdmin)
    reverse("explorer:index")  # the first reverse() imports the URLconf: keep it out of the timing

    started = time.perf_counter()
    contexts = await dashboard.aget_widget_contexts(group=group)
    elapsed = time.perf_counter() - started

    assert [c.state for c in contexts] == ["ok", "ok"], [c.error for c in contexts]
    for widget in (sync_widget, async_widget):
        begin, end = widget.span_seen
        assert end - begin >= SQL_NAP * 0.9, "the query must really have slept in the database"
    # Both naps were in progress at the same moment...
    latest_start = max(sync_widget.span_seen[0], async_widget.span_seen[0])
    earliest_end = min(sync_widget.span_seen[1], async_widget.span_seen[1])
    assert latest_start < earliest_end, "the two ORM widgets did not overlap"
    # ...so the pair took about one nap, not two (sequential: 0.6 s or more).
    assert elapsed < 2 * SQL_NAP * 0.9, f"two {SQL_NAP} s ORM widgets took {elapsed:.2f} s"


@pytest.mark.django_db(transaction=True)
def test_demo_seeding_tops_up_once():
    from project.sales.demo import seed_orders

    assert seed_orders(40) == 40
    assert seed_orders(40) == 0
    assert Order.objects.count() == 40
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses == {"open", "shipped", "cancelled"}
