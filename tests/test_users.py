"""Users (smallstack/users/): the card's counts against real rows and its single query, the card
on the API and the page, the user list in the Explorer (read-only, searchable, the password hash
in no response), the setting that leaves the registration to the project, custom user models,
the demo seed and the settings' system checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import path
from django.utils import timezone

from explorer.registry import explorer
from smallstack import dashboard
from smallstack.contract import resolve_url
from smallstack.users import checks as system_checks
from smallstack.users.figures import acount_users
from smallstack.users.registration import register_user_model
from smallstack.users.seed import DEMO_USERS, seed_users
from smallstack.users.widgets import user_list_link

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()
ROOT = Path(__file__).resolve().parent.parent
USERS = "/smallstack/explorer/auth/user/"
ITEM = "/api/dashboard/widgets/smallstack.users/"

#: A URLconf without the Explorer or the admin (``override_settings(ROOT_URLCONF=__name__)``).
urlpatterns = [path("nothing/", lambda request: None, name="nothing")]


def account(
    username: str,
    *,
    joined_days: float = 400,
    login_hours: float | None = None,
    staff: bool = False,
    active: bool = True,
    first_name: str = "",
    last_name: str = "",
):
    """A user with a real password hash, joined and last signed in that long ago."""
    now = timezone.now()
    user = User.objects.create_user(
        username,
        email=f"{username}@example.org",
        password=f"pw-{username}-4711",
        first_name=first_name,
        last_name=last_name,
    )
    User.objects.filter(pk=user.pk).update(
        date_joined=now - timedelta(days=joined_days),
        last_login=None if login_hours is None else now - timedelta(hours=login_hours),
        is_staff=staff,
        is_active=active,
    )
    user.refresh_from_db()
    return user


@pytest.fixture
def population():
    """Eight accounts: 6 active, 3 new (30 d), 3 signed in (24 h), 1 active staff member."""
    return [
        account("old", joined_days=400, login_hours=48),
        account("recent", joined_days=100, login_hours=2),
        account("newbie", joined_days=5),
        account("day31", joined_days=31),  # just outside the 30 days
        account("day29", joined_days=29),
        account("gone", joined_days=3, login_hours=1, active=False),  # new and signed in
        account("boss", joined_days=200, login_hours=23, staff=True),
        account("exboss", joined_days=200, login_hours=25, staff=True, active=False),
    ]


def figures(**windows):
    return async_to_sync(acount_users)(
        User, new_days=windows.get("new_days", 30), signed_in_hours=windows.get("hours", 24)
    )


def card(client) -> dict:
    response = client.get(ITEM)
    assert response.status_code == 200, response.content
    item = response.json()
    assert item["state"] == "ok", item
    return item


# -- the figures ----------------------------------------------------------------------------------


def test_counts_against_real_rows(population):
    counted = figures()
    assert (counted.total, counted.active, counted.inactive) == (8, 6, 2)
    assert counted.new == 3  # newbie, day29, gone: joining counts whatever the account is now
    assert counted.signed_in == 3  # recent, gone, boss
    assert counted.staff == 1  # active staff only: exboss cannot sign in
    narrower = figures(new_days=4, hours=3)
    assert (narrower.new, narrower.signed_in) == (1, 2)


def test_all_figures_come_from_one_query(population):
    with CaptureQueriesContext(connection) as queries:
        figures()
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "COUNT" in queries[0]["sql"].upper()


def test_no_accounts_counts_zero():
    counted = figures()
    assert (counted.total, counted.active, counted.new, counted.signed_in, counted.staff) == (
        0,
        0,
        0,
        0,
        0,
    )


# -- the card -------------------------------------------------------------------------------------


def test_card_through_the_api(staff_client, population):
    # The signed-in staff member is a ninth account: active, new, signed in just now, staff.
    item = card(staff_client)
    assert item["data"]["headline"] == "7 active"
    assert item["data"]["detail"] == "4 new (30 d) · 4 signed in (24 h)"
    assert item["data"]["extra"] == {
        "active": 7,
        "inactive": 2,
        "total": 9,
        "new": 4,
        "new_days": 30,
        "signed_in": 4,
        "signed_in_hours": 24,
        "staff": 2,
    }
    assert (item["title"], item["order"], item["group"]) == ("Users", 30, "Accounts")
    assert (item["app_label"], item["model_name"]) == ("smallstack_users", "user")
    assert item["url"] == USERS  # the Explorer's list of users, as attached widgets link
    assert item["icon"].startswith("<svg")


def test_card_follows_the_window_settings(staff_client, population):
    with override_settings(SMALLSTACK_USERS={"NEW_DAYS": 4, "SIGNED_IN_HOURS": 3}):
        data = card(staff_client)["data"]
    assert data["detail"] == "2 new (4 d) · 3 signed in (3 h)"  # + the staff member


def test_card_on_the_dashboard_page_and_above_the_explorer_list(staff_client, population):
    html = staff_client.get("/smallstack/?wait=1").content.decode()
    article = html.split('data-key="smallstack.users"', 1)[1].split("</article>", 1)[0]
    assert 'data-state="ok"' in article
    assert f'href="{USERS}"' in article
    assert '<p class="headline">7 active</p>' in article
    assert "4 new (30 d) · 4 signed in (24 h)" in article
    listing = staff_client.get(USERS).content.decode()
    assert 'data-key="smallstack.users"' in listing
    assert "7 active" in listing


def test_card_is_in_its_app_and_the_accounts_group(staff_client):
    def keys(query):
        return [
            w["key"] for w in staff_client.get(f"/api/dashboard/widgets/?{query}").json()["widgets"]
        ]

    assert keys("app=smallstack_users") == ["smallstack.users"]
    assert "smallstack.users" in keys("group=Accounts")
    assert "smallstack.users" in keys("dashboard_only=1")
    assert staff_client.get("/smallstack/app/smallstack_users/").status_code == 200


def test_non_staff_get_no_card(client, plain_user):
    client.force_login(plain_user)
    assert client.get(ITEM).status_code == 403
    assert client.get("/smallstack/").status_code == 403


def test_builtin_widgets_switch_is_honoured():
    config = apps.get_app_config("smallstack_users")
    dashboard.unregister("smallstack.users")
    try:
        with override_settings(SMALLSTACK_DASHBOARD={"BUILTIN_WIDGETS": False}):
            config.ready()
        assert "smallstack.users" not in dashboard.registry
        assert explorer.is_registered(User)  # the list does not depend on the card
    finally:
        if "smallstack.users" not in dashboard.registry:
            config.ready()
    assert "smallstack.users" in dashboard.registry


# -- the Explorer's list of users -----------------------------------------------------------------


@pytest.fixture
def people():
    """Four named accounts, joined on different days (newest: Grace)."""
    return [
        account("ada", joined_days=40, login_hours=2, first_name="Ada", last_name="Lovelace"),
        account("alan", joined_days=30, first_name="Alan", last_name="Turing", staff=True),
        account("edsger", joined_days=20, first_name="Edsger", last_name="Dijkstra", active=False),
        account("grace", joined_days=10, login_hours=5, first_name="Grace", last_name="Hopper"),
    ]


def _cells(html: str, column: int) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[column] for row in rows]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_user_model_is_registered_read_only_in_accounts():
    info = explorer.get_model_info(User)
    assert info is not None and info.admin_class.__name__ == "UserExplorerAdmin"
    assert (info.group, info.readonly) == ("Accounts", True)
    assert info.hidden_fields == frozenset({"password"})
    assert info.list_fields == [
        "username",
        "email",
        "name",
        "is_staff",
        "is_active",
        "date_joined",
        "last_login",
    ]
    assert info.search_fields == ["username", "first_name", "last_name", "email"]


def test_list_shows_staff_columns_newest_first(staff_client, people):
    response = staff_client.get(USERS)
    html = response.content.decode()
    assert response.status_code == 200
    headers = re.findall(r'<th scope="col"[^>]*>(.*?)</th>', html, re.S)
    labels = [re.sub(r"<[^>]+>|[▲▼]", "", h).strip() for h in headers]
    assert labels == [
        "Username",
        "Email address",
        "Name",
        "Staff status",
        "Active",
        "Date joined",
        "Last login",
    ]
    # The signed-in staff member joined just now; then the people, newest first.
    assert _cells(html, 0) == ["staff", "grace", "edsger", "alan", "ada"]
    assert _cells(html, 2)[1:] == ["Grace Hopper", "Edsger Dijkstra", "Alan Turing", "Ada Lovelace"]
    assert _cells(html, 1)[1] == "grace@example.org"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("lovelace", ["ada"]),  # last name
        ("GRACE", ["grace"]),  # first name and username, any case
        ("edsger@example", ["edsger"]),  # email
        ("a", ["staff", "grace", "edsger", "alan", "ada"]),
        ("Alan Turing", ["alan"]),  # every word must match some field
        ("Alan Hopper", []),
    ],
)
def test_search_over_username_names_and_email(staff_client, people, query, expected):
    html = staff_client.get(USERS, {"q": query}).content.decode()
    found = _cells(html, 0) if expected else []
    assert found == expected
    assert f"{len(expected)} row{'' if len(expected) == 1 else 's'} matching" in html


@pytest.mark.parametrize(
    ("order", "first"),
    [
        ("username", "ada"),
        ("-username", "staff"),
        ("-email", "grace"),  # the staff member has no email: first ascending
        ("name", "staff"),  # by last name: the staff member has none
        ("-name", "alan"),  # Turing
        ("-is_staff", "alan"),  # staff both; then newest first (the staff login came first)
        ("is_active", "edsger"),
        ("date_joined", "ada"),
        ("-last_login", "staff"),  # signed in just now
    ],
)
def test_every_column_sorts(staff_client, people, order, first):
    response = staff_client.get(USERS, {"o": order})
    assert response.status_code == 200
    assert _cells(response.content.decode(), 0)[0] == first


def test_detail_shows_the_account_without_its_password(staff_client, people):
    ada = people[0]
    html = staff_client.get(f"{USERS}{ada.pk}/").content.decode()
    assert "<h1>ada</h1>" in html
    for label in ("Username", "Email address", "First name", "Last name", "Staff status"):
        assert f"<dt>{label}</dt>" in html
    assert "<dd>Lovelace</dd>" in html
    assert "<dt>Password</dt>" not in html and ada.password not in html


def test_no_response_carries_a_password_hash(staff_client, people):
    """Every page the Explorer serves for users, every sort and search, the write pages it
    refuses, and the dashboard's page, group, app and API: no hash, nor its digest alone."""
    users = list(User.objects.all())
    secrets = [u.password for u in users] + [u.password.rsplit("$", 1)[-1] for u in users]
    assert all(len(secret) >= 20 for secret in secrets)
    info = explorer.get_model_info(User)
    sortable = [c for c in info.list_fields if info.order_field(c)]
    requests = [
        ("get", "/smallstack/explorer/", {}),
        ("get", USERS, {}),
        ("head", USERS, {}),
        ("get", USERS, {"page": 1}),
        ("get", USERS, {"q": "a"}),
        ("get", USERS, {"q": "md5"}),
        ("get", USERS, {"q": "pbkdf2"}),
        *[("get", USERS, {"o": f"{sign}{c}"}) for c in sortable for sign in ("", "-")],
        ("get", USERS, {"o": "password"}),
        ("get", f"{USERS}add/", {}),
        ("post", f"{USERS}add/", {"username": "x", "password": "y"}),
        ("post", USERS, {}),
        ("get", "/smallstack/?wait=1", {}),
        ("get", "/smallstack/group/Accounts/?wait=1", {}),
        ("get", "/smallstack/app/smallstack_users/?wait=1", {}),
        ("get", "/api/dashboard/widgets/", {}),
        ("get", ITEM, {}),
    ]
    for user in users:
        base = f"{USERS}{user.pk}/"
        requests += [("get", base, {}), ("post", base, {})]
        for page in ("edit/", "delete/"):
            requests += [("get", base + page, {}), ("post", base + page, {"username": "x"})]
    for secret in secrets:
        requests.append(("get", USERS, {"q": secret}))
    statuses = set()
    for method, url, data in requests:
        response = getattr(staff_client, method)(url, data)
        statuses.add(response.status_code)
        body = response.content.decode()
        if data.get("q") in secrets:  # a search for a hash finds nothing, and only echoes it
            assert "0 rows matching" in body, "the hash was searchable"
            # Echoed by the search box, "0 rows matching “…”", "Nothing matches “…”" and the
            # sort links' query strings; with those taken out, nothing may hold it.
            for echo in (f'value="{data["q"]}"', f"“{data['q']}”", f"q={quote_plus(data['q'])}"):
                body = body.replace(echo, "")
        for secret in secrets:
            assert secret not in body, (method, url, data)
    assert statuses == {200, 400, 403, 405}
    assert User.objects.count() == len(users)


def test_non_staff_are_refused(client, plain_user, people):
    pages = [USERS, f"{USERS}{people[0].pk}/", f"{USERS}?q=ada"]
    for page in pages:
        assert Client().get(page).status_code == 302  # anonymous: to the login page
        client.force_login(plain_user)
        response = client.get(page)
        assert response.status_code == 403
        assert people[0].password not in response.content.decode()


def test_the_list_is_read_only(staff_user, people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    ada = people[0]
    listing = client.get(USERS).content.decode()
    detail = client.get(f"{USERS}{ada.pk}/").content.decode()
    assert f"{USERS}add/" not in listing and "/edit/" not in listing
    assert "/edit/" not in detail and "/delete/" not in detail
    forms = re.findall(r"<form[^>]*>", listing + detail)
    assert all('action="/accounts/logout/"' in form or 'method="get"' in form for form in forms)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', listing)[1]
    data = {"csrfmiddlewaretoken": token, "username": "hacked", "is_staff": "on"}
    assert client.post(USERS, data).status_code == 405
    assert client.post(f"{USERS}{ada.pk}/", data).status_code == 405
    for page in (f"{USERS}add/", f"{USERS}{ada.pk}/edit/", f"{USERS}{ada.pk}/delete/"):
        refused = client.post(page, data)
        assert refused.status_code == 403
        assert "read-only in the Explorer" in refused.content.decode()
        assert client.get(page).status_code == 403
    ada.refresh_from_db()
    assert (ada.username, ada.is_staff) == ("ada", False)
    assert User.objects.count() == 5


# -- switching the registration off ---------------------------------------------------------------


@pytest.fixture
def unregistered_users():
    """The user model taken out of the Explorer for one test, put back afterwards."""
    explorer.unregister(User)
    yield
    if explorer.is_registered(User):
        explorer.unregister(User)
    register_user_model()


def test_switched_off_the_card_links_to_the_admin(staff_client, unregistered_users):
    with override_settings(SMALLSTACK_USERS={"EXPLORER": False}):
        assert register_user_model() is None
    assert not explorer.is_registered(User)
    assert staff_client.get(USERS).status_code == 404
    item = card(staff_client)
    assert item["url"] == "/admin/auth/user/"
    assert item["data"]["headline"] == "1 active"


def test_a_project_registration_of_its_own_gets_the_link(staff_client, unregistered_users):
    class ProjectUserAdmin:
        list_display = ["username", "email"]
        explorer_hidden_fields = ["password"]

    explorer.register(User, ProjectUserAdmin, group="People", readonly=True)
    assert card(staff_client)["url"] == USERS
    html = staff_client.get(USERS).content.decode()
    assert 'data-key="smallstack.users"' in html  # still heads the list


def test_registering_twice_is_refused_loudly(unregistered_users):
    register_user_model()
    with pytest.raises(Exception, match="already registered with the Explorer"):
        register_user_model()


def test_without_a_list_anywhere_the_card_has_no_link():
    registration = dashboard.registry.get("smallstack.users")
    with override_settings(ROOT_URLCONF=__name__):
        assert user_list_link(User) is None
        assert registration.widget.url_name is None
        assert resolve_url(registration) is None
    assert resolve_url(registration) == USERS


# -- the demo seed --------------------------------------------------------------------------------


def test_seed_users_is_idempotent_and_meaningful():
    now = timezone.now()
    assert seed_users(now=now) == len(DEMO_USERS) == 8
    assert seed_users(now=now) == 0
    assert User.objects.count() == 8
    counted = async_to_sync(acount_users)(User, new_days=30, signed_in_hours=24, now=now)
    assert (counted.active, counted.inactive, counted.staff) == (6, 2, 2)
    assert (counted.new, counted.signed_in) == (4, 3)
    assert not any(u.has_usable_password() for u in User.objects.all())
    # A week later, a new run moves the dates: the card still shows recent sign-ins.
    later = now + timedelta(days=7)
    assert seed_users(now=later) == 0
    moved = async_to_sync(acount_users)(User, new_days=30, signed_in_hours=24, now=later)
    assert (moved.new, moved.signed_in) == (4, 3)


def test_seed_leaves_other_accounts_of_the_same_name_alone():
    mine = account("alan", joined_days=700, first_name="Al")
    assert seed_users() == 7
    mine.refresh_from_db()
    assert (mine.first_name, mine.email) == ("Al", "alan@example.org")
    assert mine.date_joined < timezone.now() - timedelta(days=600)


def test_seed_demo_seeds_the_accounts(capsys):
    call_command("seed_demo", password="demo-pw-4711")
    assert "Demo accounts: 8 added." in capsys.readouterr().out
    call_command("seed_demo", password="demo-pw-4711")
    assert "Demo accounts present" in capsys.readouterr().out
    assert User.objects.count() == 9  # and the demo staff login


# -- settings -------------------------------------------------------------------------------------


def test_settings_are_checked():
    with override_settings(SMALLSTACK_USERS={"EXPLORE": False, "NEW_DAYS": 0}):
        messages = system_checks.check_settings()
    assert {m.id for m in messages} == {"users.E002", "users.E003"}
    assert "Did you mean 'EXPLORER'?" in next(m.hint for m in messages if m.id == "users.E002")
    with override_settings(SMALLSTACK_USERS=[]):
        assert [m.id for m in system_checks.check_settings()] == ["users.E001"]
    with override_settings(SMALLSTACK_USERS={"SIGNED_IN_HOURS": 1.5, "EXPLORER": "no"}):
        assert [m.id for m in system_checks.check_settings()] == ["users.E003", "users.E003"]
    with override_settings(SMALLSTACK_USERS={"EXPLORER": False, "NEW_DAYS": 7}):
        assert system_checks.check_settings() == []


# -- in a fresh interpreter: other user models, no Explorer ---------------------------------------


def _django(tmp_path: Path, code: str, settings: str = "tests.settings", **env: str) -> dict:
    """Start Django in a fresh interpreter over a new database; ``code`` prints a JSON line."""
    script = (
        "import asyncio, json, django\n"
        "from django.conf import settings\n" + env.pop("BEFORE_SETUP", "") + "django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n" + code
    )
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "SMALLSTACK_DATA_DIR": str(tmp_path),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


CARD = """
from smallstack import dashboard
[card] = asyncio.run(dashboard.aget_widget_contexts(app="smallstack_users"))
"""

EMAIL_USER = (
    """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from explorer.registry import explorer
User = get_user_model()
def add(email, **fields):
    user = User(email=email, **fields)
    user.set_password("pw-" + email)
    user.save()
    return user
boss = add("boss@example.org", is_staff=True, last_login=timezone.now())
add("old@example.org", last_login=timezone.now() - timedelta(days=3))
add("never@example.org")
add("left@example.org", is_active=False)
"""
    + CARD
    + """
info = explorer.get_model_info(User)
client = Client()
client.force_login(boss)
base = "/smallstack/explorer/customuser/emailuser/"
pages = [base, base + "?q=example", base + "?o=-last_login"]
pages += [f"{base}{u.pk}/" for u in User.objects.all()]
responses = [client.get(page) for page in pages]
secrets = [u.password for u in User.objects.all()]
print(json.dumps({
    "data": card.data, "url": card.url, "state": card.state,
    "columns": info.list_fields, "search": info.search_fields, "hidden": sorted(info.hidden_fields),
    "statuses": [r.status_code for r in responses],
    "leaks": [s for s in secrets for r in responses if s in r.content.decode()],
    "found": "4 rows matching" in responses[1].content.decode(),
}))
"""
)


def test_a_user_model_signing_in_by_email_without_join_dates_or_names(tmp_path):
    result = _django(tmp_path, EMAIL_USER, "tests.customuser_settings")
    assert result["state"] == "ok", result
    assert result["data"] == {
        "headline": "3 active",
        "detail": "1 signed in (24 h)",
        "extra": {
            "active": 3,
            "inactive": 1,
            "total": 4,
            "signed_in": 1,
            "signed_in_hours": 24,
            "staff": 1,
        },
    }
    assert result["url"] == "/smallstack/explorer/customuser/emailuser/"
    assert result["columns"] == ["email", "is_staff", "is_active", "last_login"]
    assert (result["search"], result["hidden"]) == (["email"], ["password"])
    assert set(result["statuses"]) == {200} and result["found"]
    assert result["leaks"] == []


BARE_USER = (
    """
from django.contrib.auth import get_user_model
from explorer.registry import explorer
from smallstack.users.seed import seed_users
User = get_user_model()
for name in ("one", "two"):
    User.objects.create(username=name, password="x")
"""
    + CARD
    + """
info = explorer.get_model_info(User)
print(json.dumps({
    "data": card.data, "state": card.state, "columns": info.list_fields,
    "search": info.search_fields, "ordering": info.ordering, "hidden": sorted(info.hidden_fields),
    "seeded": [seed_users(), seed_users()],
}))
"""
)


def test_a_bare_user_model_leaves_the_missing_counts_out(tmp_path):
    result = _django(
        tmp_path, BARE_USER, "tests.customuser_settings", CUSTOM_USER_MODEL="customuser.BareUser"
    )
    assert result["state"] == "ok", result
    assert result["data"] == {
        "headline": "2 active",  # no is_active field: every account is active
        "detail": "2 accounts in all",
        "extra": {"active": 2, "inactive": 0, "total": 2},
    }
    assert (result["columns"], result["search"]) == (["username"], ["username"])
    assert (result["ordering"], result["hidden"]) == (["username", "-pk"], ["password"])
    assert result["seeded"] == [8, 0]


WITHOUT_EXPLORER = (
    CARD
    + """
from django.core.checks import run_checks
from smallstack.contract import resolve_url
registration = dashboard.registry.get("smallstack.users")
print(json.dumps({
    "state": card.state, "headline": card.data["headline"], "url": card.url,
    "checks": sorted({m.id for m in run_checks()}),
}))
"""
)


def test_without_the_explorer_the_card_links_to_the_admin_and_a_check_warns(tmp_path):
    result = _django(
        tmp_path,
        WITHOUT_EXPLORER,
        BEFORE_SETUP=(
            "settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != 'explorer']\n"
        ),
    )
    assert (result["state"], result["headline"]) == ("ok", "0 active")
    assert result["url"] == "/admin/auth/user/"
    assert "users.W001" in result["checks"]
