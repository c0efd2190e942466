"""The Explorer behind a real uvicorn process, over a database seeded by ``seed_demo``."""

from __future__ import annotations

import re

ORDERS = "/smallstack/explorer/sales/order/"


def test_browse_seeded_orders_and_create_one_under_uvicorn(server):
    client = server.login()
    index = client.get("/smallstack/explorer/")
    assert index.status_code == 200 and "300 rows" in index.text

    listing = client.get(ORDERS)
    assert listing.status_code == 200
    assert "300 rows" in listing.text and "Page 1 of 6" in listing.text
    assert re.search(r'data-key="sales.order.orders" data-state="ok"', listing.text)
    assert "300 orders" in listing.text
    assert client.get(ORDERS, params={"o": "nope"}).status_code == 400

    form = client.get(f"{ORDERS}add/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)[1]
    data = {"customer": "Uvicorn Ltd", "amount": "10.00", "status": "open"}
    data["created"] = "2026-05-06 07:08:09"
    assert client.post(f"{ORDERS}add/", data=data).status_code == 403  # no CSRF token
    created = client.post(f"{ORDERS}add/", data={**data, "csrfmiddlewaretoken": token})
    assert created.status_code == 302, created.text
    detail = client.get(created.headers["location"])
    assert detail.status_code == 200 and "Uvicorn Ltd" in detail.text
    assert "was created" in detail.text

    found = client.get(ORDERS, params={"q": "uvicorn"})
    assert "1 row matching" in found.text and "Uvicorn Ltd" in found.text
    dashboard = client.get("/smallstack/")
    assert 'data-key="explorer.models"' in dashboard.text
    assert 'href="/smallstack/explorer/sales/order/"' in dashboard.text
