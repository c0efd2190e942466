"""The JSON API behind a real uvicorn process, with a key made by the management command."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.servers import create_api_key, manage


@pytest.fixture(scope="module")
def key(server) -> str:
    return create_api_key(server.environ, "e2e")


def test_bearer_key_conditional_get_and_401_under_uvicorn(server, key):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        anonymous = client.get("/api/dashboard/widgets/")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        auth = {"Authorization": f"Bearer {key}"}
        first = client.get("/api/dashboard/widgets/?app=smallstack_users", headers=auth)
        assert first.status_code == 200
        assert [w["key"] for w in first.json()["widgets"]] == ["smallstack.users"]
        heartbeat = client.get("/api/dashboard/widgets/?app=heartbeat", headers=auth)
        assert [w["key"] for w in heartbeat.json()["widgets"]] == ["smallstack.status"]
        # The Status widget's detail carries a timing, so its tag moves; this one's data is fixed.
        one = client.get("/api/dashboard/widgets/slow-async-0/", headers=auth)
        assert one.json()["data"] == {"headline": "awaited 0.3", "detail": "async"}
        again = client.get(
            "/api/dashboard/widgets/slow-async-0/",
            headers={**auth, "If-None-Match": one.headers["etag"]},
        )
        assert again.status_code == 304
        assert again.content == b""
        assert (
            client.get("/api/dashboard/status/?app=smallstack_users", headers=auth).status_code
            == 200
        )


def test_twenty_slow_widgets_through_the_api_under_uvicorn(server, key):
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=10, headers=auth) as client:
        client.get("/api/dashboard/status/?app=smallstack_users")  # warm-up
        started = time.perf_counter()
        response = client.get("/api/dashboard/widgets/?group=Server%20slow")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    widgets = response.json()["widgets"]
    assert len(widgets) == 20 and all(w["state"] == "ok" for w in widgets)
    assert elapsed < 1.5, f"twenty 0.3 s widgets took {elapsed:.2f} s through the API"


def test_revoked_key_is_refused_under_uvicorn(server):
    key = create_api_key(server.environ, "short-lived")
    manage(server.environ, "revoke_api_token", key.split("_")[1])
    response = httpx.get(
        f"{server.url}/api/dashboard/status/", headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 401
