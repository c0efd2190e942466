"""Help & Docs under a real uvicorn process: the pages, the stylesheet and the card over HTTP,
an edited file served fresh, and a slow first rendering that leaves the event loop free."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.servers import LiveServer, prepare_data_dir


def big_document(parts: int) -> str:
    """A long document (headings, tables, code): a couple of seconds of Markdown to render."""
    chunks = ["# Big\n\nA long reference.\n"]
    for i in range(parts):
        rows = "".join(f"| {j} | **{j * i}** |\n" for j in range(20))
        chunks.append(
            f"## Part {i}\n\nSome *text* with `code` and a [link](https://example.com/{i}).\n\n"
            f"| a | b |\n|---|---|\n{rows}\n```python\nprint({i})\n```\n"
        )
    return "\n".join(chunks)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("help-docs")
    (root / "10-guide").mkdir()
    (root / "10-guide" / "10-start.md").write_text(
        "# Start here\n\nThe first steps with **zebras**.\n\n## Setup\n\nInstall it.\n"
    )
    (root / "20-reference").mkdir()
    (root / "20-reference" / "big.md").write_text(big_document(1200))
    return root


@pytest.fixture(scope="module")
def help_server(tmp_path_factory, docs):
    environ = prepare_data_dir(
        tmp_path_factory.mktemp("help-uvicorn"),
        DJANGO_SETTINGS_MODULE="tests.help_settings",
        HELP_TEST_DOCS=str(docs),
    )
    live = LiveServer(environ).start()
    yield live
    live.stop()


def test_a_slow_first_rendering_leaves_the_event_loop_free(help_server):
    """The first request renders every document (the big one takes seconds); meanwhile the
    same worker keeps answering other requests within a fraction of that."""
    client = help_server.login()
    outcome: dict[str, float | int] = {}

    def fetch_big() -> None:
        started = time.perf_counter()
        response = client.get("/help/reference/big/", timeout=60)
        outcome["status"], outcome["seconds"] = response.status_code, time.perf_counter() - started

    reader = threading.Thread(target=fetch_big)
    reader.start()
    latencies = []
    with httpx.Client(base_url=help_server.url, timeout=10) as probe:
        while reader.is_alive():
            started = time.perf_counter()
            assert probe.get("/accounts/login/").status_code == 200
            latencies.append(time.perf_counter() - started)
    reader.join()
    assert outcome["status"] == 200
    assert outcome["seconds"] > 1.0, outcome  # the rendering really took a while
    assert len(latencies) >= 5
    assert max(latencies) < 0.5, (max(latencies), outcome)
    slowest = max(latencies) * 1000
    print(f"render {outcome['seconds']:.2f} s; {len(latencies)} pages meanwhile, {slowest:.0f} ms")
    # Rendered once: the next request is served from memory.
    started = time.perf_counter()
    assert client.get("/help/reference/big/").status_code == 200
    assert time.perf_counter() - started < outcome["seconds"] / 2


def test_pages_stylesheet_and_card_over_http(help_server):
    client = help_server.login()
    index = client.get("/help/")
    assert index.status_code == 200
    assert "Start here" in index.text and "Big" in index.text
    page = client.get("/help/guide/start/")
    assert page.status_code == 200
    assert '<h2 id="setup">Setup</h2>' in page.text and 'href="#setup"' in page.text
    found = client.get("/help/", params={"q": "zebras"})
    assert "<mark>zebras</mark>" in found.text
    css = client.get("/static/help/help.css")
    assert css.status_code == 200 and ".help-doc" in css.text
    card = client.get("/api/dashboard/widgets/smallstack.help/").json()
    assert card["data"]["headline"] == "2 articles"
    assert card["data"]["detail"] == "across 2 sections"
    assert client.get("/help/guide/missing/").status_code == 404
    anonymous = httpx.get(f"{help_server.url}/help/guide/start/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["location"]


def test_an_edited_document_is_served_fresh_and_concurrent_readers_agree(help_server, docs):
    client = help_server.login()
    start = docs / "10-guide" / "10-start.md"
    start.write_text("# Start here\n\nNow with **giraffes**.\n")
    stat = start.stat()
    os.utime(start, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))

    def read(_: int) -> tuple[int, bool]:
        response = client.get("/help/guide/start/")
        return response.status_code, "giraffes" in response.text

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(read, range(30))) == {(200, True)}
    assert "Traceback" not in help_server.log()
