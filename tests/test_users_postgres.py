"""The Users card on a real PostgreSQL server (the ``postgres_url`` fixture, tests/postgres.py):
the same figures from the same single query, there written with ``COUNT(*) FILTER (WHERE …)``,
and the user list with its search, which PostgreSQL runs as ``UPPER(…) LIKE UPPER(…)``."""

from __future__ import annotations

from tests.test_users import _django

POPULATION = """
from datetime import timedelta
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from smallstack.users.figures import acount_users
User = get_user_model()
now = timezone.now()
def add(name, joined_days, login_hours=None, staff=False, active=True):
    user = User.objects.create_user(name, email=name + "@example.org", password="pw-" + name)
    User.objects.filter(pk=user.pk).update(
        date_joined=now - timedelta(days=joined_days),
        last_login=None if login_hours is None else now - timedelta(hours=login_hours),
        is_staff=staff, is_active=active,
    )
add("old", 400, 48)
add("recent", 100, 2)
add("newbie", 5)
add("day31", 31)
add("day29", 29)
add("gone", 3, 1, active=False)
add("boss", 200, 23, staff=True)
add("exboss", 200, 25, staff=True, active=False)
with CaptureQueriesContext(connection) as queries:
    # Through async_to_sync, the ORM runs on this thread: its connection is the one watched.
    figures = async_to_sync(acount_users)(User, new_days=30, signed_in_hours=24, now=now)
sqls = [q["sql"] for q in queries]  # copied: the next request resets the query log
client = Client()
client.force_login(User.objects.get(username="boss"))
base = "/smallstack/explorer/auth/user/"
pages = [client.get(base), client.get(base, {"q": "NEWB"}), client.get(base, {"o": "-last_login"})]
secrets = [u.password for u in User.objects.all()]
from smallstack import dashboard
[card] = asyncio.run(dashboard.aget_widget_contexts(app="smallstack_users"))
print(json.dumps({
    "vendor": connection.vendor,
    "figures": figures.as_json(),
    "queries": sqls,
    "card": card.data,
    "statuses": [p.status_code for p in pages],
    "found": "1 row matching" in pages[1].content.decode(),
    "leaks": [s for s in secrets for p in pages if s in p.content.decode()],
}))
"""


def test_card_figures_and_user_list_on_postgresql(postgres_url, tmp_path):
    result = _django(tmp_path, POPULATION, DATABASE_URL=postgres_url)
    assert result["vendor"] == "postgresql"
    assert result["figures"] == {
        "active": 6,
        "inactive": 2,
        "total": 8,
        "new": 3,
        "new_days": 30,
        "signed_in": 3,
        "signed_in_hours": 24,
        "staff": 1,
    }
    [sql] = result["queries"]
    assert sql.count("FILTER (WHERE") == 4, sql
    # The card, evaluated after boss signed in again (already counted: 23 h ago).
    assert result["card"]["headline"] == "6 active"
    assert result["card"]["detail"] == "3 new (30 d) · 3 signed in (24 h)"
    assert result["statuses"] == [200, 200, 200] and result["found"]
    assert result["leaks"] == []
