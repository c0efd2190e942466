"""The same behaviour behind a real uvicorn process."""

from __future__ import annotations

import time


def test_staff_only_under_uvicorn(server):
    import httpx

    response = httpx.get(f"{server.url}/smallstack/")
    assert response.status_code == 302
    assert response.headers["location"] == "/accounts/login/?next=/smallstack/"


def test_twenty_slow_widgets_render_together_under_uvicorn(server):
    client = server.login()
    client.get("/smallstack/group/Server%20slow/?wait=1")  # warm-up: imports templates
    started = time.perf_counter()
    response = client.get("/smallstack/group/Server%20slow/?wait=1")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.text.count('data-state="ok"') == 20
    assert elapsed < 1.5, f"twenty 0.3 s widgets took {elapsed:.2f} s under uvicorn"


def test_dashboard_and_static_files_under_uvicorn(server):
    client = server.login()
    page = client.get("/smallstack/")
    assert page.status_code == 200
    assert 'data-key="smallstack.status"' in page.text
    assert client.get("/static/smallstack/dashboard.css").status_code == 200
