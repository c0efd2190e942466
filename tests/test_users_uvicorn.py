"""Users behind a real uvicorn process, over a database seeded by ``seed_demo`` (demo accounts
included): the card's figures match the table, and no response carries a password hash."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

USERS = "/smallstack/explorer/auth/user/"


def _accounts(server) -> list[dict]:
    """The ``auth_user`` rows, read from the server's database file."""
    path = Path(server.environ["SMALLSTACK_DATA_DIR"]) / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute("SELECT * FROM auth_user")]
    for row in rows:
        for name in ("date_joined", "last_login"):
            if row[name]:
                row[name] = datetime.fromisoformat(row[name]).replace(tzinfo=UTC)
    return rows


def test_card_and_user_list_under_uvicorn(server):
    client = server.login()  # the demo staff login signs in now
    rows = _accounts(server)
    now = datetime.now(UTC)
    active = sum(1 for r in rows if r["is_active"])
    new = sum(1 for r in rows if r["date_joined"] >= now - timedelta(days=30))
    signed_in = sum(
        1 for r in rows if r["last_login"] and r["last_login"] >= now - timedelta(hours=24)
    )
    assert len(rows) >= 9 and 0 < active < len(rows) and new and signed_in  # the demo seed

    page = client.get("/smallstack/", params={"wait": 1}).text
    card = page.split('data-key="smallstack.users"', 1)[1].split("</article>", 1)[0]
    assert f'href="{USERS}"' in card
    assert f'<p class="headline">{active} active</p>' in card
    assert f"{new} new (30 d) · {signed_in} signed in (24 h)" in card

    responses = [client.get(USERS), client.get(USERS, params={"q": "hopper"})]
    responses += [client.get(f"{USERS}{row['id']}/") for row in rows]
    assert {r.status_code for r in responses} == {200}
    assert "Grace Hopper" in responses[1].text and "1 row matching" in responses[1].text
    secrets = [r["password"] for r in rows] + [r["password"].rsplit("$", 1)[-1] for r in rows]
    for response in responses:
        assert not [secret for secret in secrets if secret in response.text], response.url

    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', responses[0].text)[1]
    demo = next(row for row in rows if row["username"] == "demo")
    data = {"csrfmiddlewaretoken": token, "username": "renamed"}
    assert client.post(USERS, data=data).status_code == 405
    assert client.post(f"{USERS}{demo['id']}/edit/", data=data).status_code == 403
    assert client.post(f"{USERS}{demo['id']}/delete/", data=data).status_code == 403
    assert [r["username"] for r in _accounts(server)].count("demo") == 1
