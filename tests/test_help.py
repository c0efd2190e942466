"""Help & Docs: documents found in section folders, rendered (tables, code, anchors, contents),
sanitised, searched, counted on the card, refused to non-staff, and checked by manage.py check.

Documents come from real files in a temporary directory set through ``SMALLSTACK_HELP``; the
shipped documents are rendered and served one by one at the end.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.utils.html import escape

from smallstack.help import checks as help_checks
from smallstack.help import conf, library, rendering, search
from smallstack.help.library import Library
from smallstack.help.widgets import HelpWidget

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = """\
---
summary: Start here.
---

# Guide & tour

The first paragraph of the guide.

## Part one

Columns:

| name | count |
|:-----|------:|
| apples | 3 |

```python
print("hello")
```

### Details

See [the other page](20-other.md#second) and [the reference](../20-reference/api.md).

## Part two

Nothing more.
"""

OTHER = """\
# Other page

A page about zebras and their stripes.

## Second

Zebras again.
"""

REFERENCE_API = """\
---
title: API reference
order: 1
---

Endpoints are listed here, and the guide is elsewhere.
"""

REFERENCE_FIRST = """\
# Glossary

Words and their meaning.
"""

SECTION = """\
---
title: The Reference
order: 5
---

Everything you can **look up**.
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def docs(tmp_path, settings) -> Path:
    """A project docs directory with two sections and four documents, the only one read."""
    root = tmp_path / "docs"
    write(root / "10-guide" / "10-tour.md", GUIDE)
    write(root / "10-guide" / "20-other.md", OTHER)
    write(root / "20-reference" / "_section.md", SECTION)
    write(root / "20-reference" / "api.md", REFERENCE_API)
    write(root / "20-reference" / "glossary.md", REFERENCE_FIRST)
    write(root / "20-reference" / "notes.txt", "not a document")
    write(root / ".hidden" / "secret.md", "# Hidden")
    settings.SMALLSTACK_HELP = {"DIRS": [str(root)], "BUILTIN_DOCS": False}
    return root


def article(response) -> str:
    """The document's own HTML on its page."""
    html = response.content.decode()
    return html[html.index('<article class="help-doc">') : html.index("</article>")]


# -- rendering --------------------------------------------------------------------------------


def test_a_document_renders_tables_fenced_code_and_heading_anchors(docs, staff_client):
    response = staff_client.get("/help/guide/tour/")
    assert response.status_code == 200
    body = article(response)
    assert '<h1 id="guide-tour">Guide &amp; tour</h1>' in body
    assert '<h2 id="part-one">Part one</h2>' in body
    assert '<h3 id="details">Details</h3>' in body
    assert '<th align="left">name</th>' in body and '<td align="right">3</td>' in body
    assert '<pre><code class="language-python">print("hello")' in body
    # The page's <h1> is the document's own, not a second one.
    assert response.content.decode().count("<h1") == 1


def test_the_table_of_contents_nests_the_second_and_third_level_headings(docs, staff_client):
    html = staff_client.get("/help/guide/tour/").content.decode()
    toc = html[html.index('<nav class="help-toc"') : html.index("</nav>", html.index("help-toc"))]
    assert re.sub(r"\s+", "", toc.split("</h2>", 1)[1]) == (
        '<ul><li><ahref="#part-one">Partone</a><ul><li><ahref="#details">Details</a></li></ul>'
        '</li><li><ahref="#part-two">Parttwo</a></li></ul>'
    )
    assert "guide-tour" not in toc  # the title is not an entry
    glossary = staff_client.get("/help/reference/glossary/").content.decode()
    assert "help-toc" not in glossary  # no sub-headings, no contents box


def test_links_to_markdown_files_point_at_the_documents_pages(docs, staff_client):
    body = article(staff_client.get("/help/guide/tour/"))
    assert 'href="/help/guide/other/#second"' in body
    assert 'href="/help/reference/api/"' in body
    assert staff_client.get("/help/reference/api/").status_code == 200


def test_a_title_from_front_matter_gets_a_heading_on_the_page(docs, staff_client):
    html = staff_client.get("/help/reference/api/").content.decode()
    assert "<h1>API reference</h1>" in html
    assert "title: API reference" not in html  # front matter is not text


# -- sanitising -------------------------------------------------------------------------------

HOSTILE = """\
# Hostile

<script>alert("script")</script>

<img src="x.png" onerror="alert('img')" alt="pic">

[click me](javascript:alert('link')) and <a href=" JaVaScRiPt:alert('raw')">raw</a>

<a href="https://example.com/" onclick="alert('click')" style="color:red">styled</a>

<iframe src="https://example.com/"></iframe><svg onload="alert('svg')"><circle r="1"/></svg>

<form action="/admin/"><input name="x"></form><style>body{display:none}</style>

![data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

<h2 id="x&quot; onmouseover=&quot;alert(1)">Tricky id</h2>

<code class="language-python evil-class" onclick="x()">code</code>
"""


def test_script_event_handlers_and_javascript_links_in_a_document_are_inert(docs, staff_client):
    write(docs / "10-guide" / "30-hostile.md", HOSTILE)
    response = staff_client.get("/help/guide/hostile/")
    assert response.status_code == 200
    body = article(response).lower()
    for needle in (
        "<script",
        "alert(",
        "onerror",
        "onclick",
        "onload",
        "onmouseover",
        "javascript:",
        "<iframe",
        "<svg",
        "<form",
        "<input",
        "<style",
        "style=",
        "data:text",
        "evil-class",
    ):
        assert needle not in body, needle
    # What is legitimate survives: the image, the https link, the code's language class.
    assert '<img src="x.png" alt="pic">' in body
    assert '<a href="https://example.com/" rel="noopener noreferrer">styled</a>' in body
    assert '<code class="language-python">code</code>' in body
    # Nor does anything leak through the search snippets.
    results = staff_client.get("/help/", {"q": "hostile"}).content.decode().lower()
    assert "<script" not in results and "alert(" not in results


def test_the_sanitiser_keeps_what_markdown_produces():
    rendered = rendering.render(GUIDE)
    assert rendering.sanitise(str(rendered.html)) == str(rendered.html)


# -- contents, sections ------------------------------------------------------------------------


def test_the_index_lists_sections_and_documents_in_order(docs, staff_client):
    response = staff_client.get("/help/")
    assert response.status_code == 200
    html = response.content.decode()
    titles = re.findall(r'<a href="/help/[^"]+">([^<]+)</a>', html)
    # _section.md's order (5) puts the reference before the guide (folder prefix 10); in it,
    # front matter order 1 puts the API before the glossary (no order: last).
    assert titles == [
        "The Reference",
        "API reference",
        "Glossary",
        "Guide",
        "Guide &amp; tour",
        "Other page",
    ]
    assert "Hidden" not in html and "notes" not in html


def test_a_section_page_shows_its_introduction_and_the_documents_summaries(docs, staff_client):
    response = staff_client.get("/help/reference/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>The Reference</h1>" in html
    assert "Everything you can <strong>look up</strong>." in html
    assert "Endpoints are listed here, and the guide is elsewhere." in html  # first paragraph
    guide = staff_client.get("/help/guide/").content.decode()
    assert "Start here." in guide  # the front matter's summary


def test_unknown_sections_and_documents_are_404(docs, staff_client):
    assert staff_client.get("/help/nope/").status_code == 404
    assert staff_client.get("/help/guide/nope/").status_code == 404
    assert staff_client.get("/help/reference/guide/").status_code == 404  # wrong section
    assert staff_client.get("/help/guide/10-tour/").status_code == 404  # file names are not slugs


def test_paths_from_the_request_never_reach_the_file_system(docs, staff_client):
    write(docs.parent / "secret.md", "# Secret\n\ntop secret")
    for path in (
        "/help/guide/..%2F..%2Fsecret/",
        "/help/guide/../../secret/",
        "/help/..%2Fsecret/",
        "/help/guide/%2E%2E/",
        "/help/.hidden/secret/",
        "/help/guide/tour.md/",
    ):
        response = staff_client.get(path)
        assert response.status_code == 404, path
        assert b"top secret" not in response.content


# -- search -----------------------------------------------------------------------------------


def results(response) -> list[tuple[str, str, str]]:
    """(title html, section, snippet html) of each result on the page."""
    html = response.content.decode()
    return re.findall(
        r'<a class="help-result-title" href="[^"]+">(.*?)</a>\s*'
        r'<span class="help-result-section">(.*?)</span>\s*'
        r'<p class="help-snippet">(.*?)</p>',
        html,
        re.DOTALL,
    )


def test_search_matches_titles_and_text_with_title_matches_first(docs, staff_client):
    response = staff_client.get("/help/", {"q": "guide"})
    assert response.status_code == 200
    found = results(response)
    assert [title for title, _, _ in found] == ["<mark>Guide</mark> &amp; tour", "API reference"]
    assert found[0][1] == "Guide" and found[1][1] == "The Reference"
    assert "and the <mark>guide</mark> is elsewhere" in found[1][2]
    assert "2 results for “guide”" in response.content.decode()


def test_search_needs_every_word_and_ignores_case(docs, staff_client):
    [(title, _, snippet)] = results(staff_client.get("/help/", {"q": "ZEBRAS stripes"}))
    assert title == "Other page"
    assert "<mark>zebras</mark>" in snippet and "<mark>stripes</mark>" in snippet
    assert results(staff_client.get("/help/", {"q": "zebras glossary"})) == []


def test_search_without_a_match_says_so(docs, staff_client):
    response = staff_client.get("/help/", {"q": "xylophone"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "0 results for “xylophone”" in html
    assert "No document holds every word of “xylophone”" in html


def test_an_empty_query_shows_the_contents_without_results(docs, staff_client):
    for query in ({"q": ""}, {"q": "   "}, {}):
        response = staff_client.get("/help/", query)
        assert response.status_code == 200
        html = response.content.decode()
        assert "help-results" not in html and "Guide &amp; tour" in html


def test_the_query_is_escaped_wherever_it_is_shown(docs, staff_client):
    write(docs / "10-guide" / "30-html.md", "# Markup\n\nWrite `<b>bold</b>` for bold.\n")
    query = '<b>bold</b> "><script>x()</script>'
    html = staff_client.get("/help/", {"q": query}).content.decode()
    assert "<script>x()" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html  # in the heading and the form
    [(title, _, snippet)] = results(staff_client.get("/help/", {"q": "<b>bold"}))
    assert title == "Markup"
    assert "Write <mark>&lt;b&gt;bold</mark>&lt;/b&gt; for bold." in snippet


def test_overlong_queries_are_a_400(docs, staff_client):
    response = staff_client.get("/help/", {"q": "a" * (search.MAX_QUERY + 1)})
    assert response.status_code == 400
    assert "limited to 200 characters" in response.content.decode()
    words = " ".join(f"w{i}" for i in range(search.MAX_TERMS + 1))
    assert staff_client.get("/help/", {"q": words}).status_code == 400


def test_a_snippet_is_cut_around_the_first_match():
    text = " ".join(f"word{i}" for i in range(200)) + " needle " + "tail " * 100
    pattern = re.compile("needle", re.IGNORECASE)
    cut = str(search.snippet(text, pattern, "fallback"))
    assert cut.startswith("… ") and cut.endswith(" …") and "<mark>needle</mark>" in cut
    assert len(cut) < search.LENGTH + 40
    assert str(search.snippet("no match here", pattern, "the summary")) == "the summary"


# -- the card ---------------------------------------------------------------------------------


async def test_the_card_counts_articles_and_sections(docs):
    data = await HelpWidget().get_data()
    assert data["headline"] == "4 articles"
    assert data["detail"] == "across 2 sections"
    assert "status" not in data
    assert [s["articles"] for s in data["extra"]["sections"]] == [2, 2]


async def test_the_card_speaks_in_the_singular_and_warns_about_skipped_files(tmp_path, settings):
    write(tmp_path / "only" / "one.md", "# One\n")
    write(tmp_path / "only" / "broken.md", b"\xff\xfe not utf-8")
    settings.SMALLSTACK_HELP = {"DIRS": [str(tmp_path)], "BUILTIN_DOCS": False}
    data = await HelpWidget().get_data()
    assert (data["headline"], data["status"]) == ("1 article", "warning")
    assert data["detail"].startswith("across 1 section; 1 problem")


def test_the_card_is_on_the_dashboard_and_the_api(docs, staff_client):
    response = staff_client.get("/api/dashboard/widgets/smallstack.help/")
    assert response.status_code == 200
    item = response.json()
    assert (item["title"], item["order"], item["url"]) == ("Help & Docs", 50, "/help/")
    assert item["data"]["headline"] == "4 articles"
    assert item["icon"].startswith("<svg")
    page = staff_client.get("/smallstack/?wait=1").content.decode()
    assert "Help &amp; Docs" in page and "4 articles" in page


# -- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/help/", "/help/guide/", "/help/guide/tour/"])
def test_non_staff_are_refused(docs, client, plain_user, path):
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")
    client.force_login(plain_user)
    assert client.get(path).status_code == 403
    assert client.get(path, {"q": "guide"}).status_code == 403


# -- files changing, caching, threads ----------------------------------------------------------


def test_documents_are_rendered_once_and_again_when_they_change(docs, monkeypatch):
    calls: list[str] = []
    real = library.render

    def counting(source, *args, **kwargs):
        calls.append(source.splitlines()[0])
        return real(source, *args, **kwargs)

    monkeypatch.setattr(library, "render", counting)
    shelf = Library()
    first = shelf.index([docs])
    assert len(calls) == 5 and shelf.index([docs]) is first  # nothing changed: same index
    tour = docs / "10-guide" / "10-tour.md"
    tour.write_text(GUIDE.replace("Guide & tour", "Guided tour"), encoding="utf-8")
    stat = tour.stat()
    os.utime(tour, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = shelf.index([docs])
    assert len(calls) == 6  # only the changed file was read again
    assert second.document("guide", "tour").title == "Guided tour"
    (docs / "10-guide" / "20-other.md").unlink()
    assert shelf.index([docs]).document("guide", "other") is None
    assert len(calls) == 6


async def test_reading_and_rendering_happen_off_the_event_loop(docs, monkeypatch):
    threads: list[threading.Thread] = []
    real = library.library.index

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(library.library, "index", spy)
    index = await library.aindex()
    assert len(index.documents) == 4
    assert threads and threading.current_thread() not in threads


def test_a_project_directory_adds_to_and_overrides_the_shipped_sections(tmp_path, settings):
    write(tmp_path / "99-widgets" / "10-writing-a-widget.md", "# Our widget rules\n")
    write(tmp_path / "widgets" / "house-style.md", "# House style\n")
    settings.SMALLSTACK_HELP = {"DIRS": [tmp_path]}
    index = library.library.index()
    shipped = Library().index([conf.BUILTIN_DIR])
    assert len(index.documents) == len(shipped.documents) + 1
    widgets = index.section("widgets")
    assert widgets is not None and widgets.title == shipped.section("widgets").title
    assert index.document("widgets", "writing-a-widget").title == "Our widget rules"
    assert index.document("widgets", "house-style").title == "House style"


# -- system checks ----------------------------------------------------------------------------


def help_messages() -> list:
    return [m for m in run_checks() if m.id.startswith("help.")]


def test_the_projects_configuration_passes_the_help_checks():
    assert help_messages() == []


def test_a_missing_or_unreadable_docs_directory_is_a_warning_not_a_crash(
    tmp_path, settings, staff_client
):
    missing = tmp_path / "no-such-dir"
    a_file = write(tmp_path / "file.md", "# not a directory")
    settings.SMALLSTACK_HELP = {"DIRS": [str(missing), str(a_file)]}
    messages = help_messages()
    assert [m.id for m in messages] == ["help.W001", "help.W001"]
    assert str(missing) in messages[0].msg and "does not exist" in messages[0].msg
    assert "is not a directory" in messages[1].msg
    response = staff_client.get("/help/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Writing a widget" in html  # the shipped documents are still there
    assert "does not exist" in html  # and staff see what was skipped


def test_unreadable_documents_are_skipped_with_a_warning(tmp_path, settings):
    write(tmp_path / "s" / "good.md", "# Good\n")
    write(tmp_path / "s" / "latin1.md", "# Caf\xe9\n".encode("latin-1"))
    write(tmp_path / "s" / "10-good.md", "# Same slug\n")
    write(tmp_path / "s" / "order.md", "---\norder: soon\n---\n# Ordered\n")
    settings.SMALLSTACK_HELP = {"DIRS": [str(tmp_path)], "BUILTIN_DOCS": False}
    messages = help_messages()
    assert {m.id for m in messages} == {"help.W002"}
    text = " ".join(m.msg for m in messages)
    assert "latin1.md: is not UTF-8" in text
    assert "same slug 'good'" in text
    assert "order 'soon' is not a number" in text
    index = library.library.index()
    assert [d.title for d in index.documents] == ["Same slug", "Ordered"]


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ([], {"help.E001"}),
        ({"DIR": ["/tmp"]}, {"help.E002"}),
        ({"DIRS": "/tmp/docs"}, {"help.E003"}),
        ({"DIRS": [None]}, {"help.E003"}),
        ({"BUILTIN_DOCS": "no"}, {"help.E003"}),
    ],
)
def test_bad_settings_are_errors(settings, value, ids):
    settings.SMALLSTACK_HELP = value
    assert {m.id for m in help_checks.check_settings()} == ids


def test_an_unknown_key_names_the_closest_one(settings):
    settings.SMALLSTACK_HELP = {"DIR": []}
    [message] = help_checks.check_settings()
    assert "Did you mean 'DIRS'?" in message.hint


# -- the shipped documents ---------------------------------------------------------------------


def test_every_shipped_document_renders_has_a_title_and_links_to_real_pages(staff_client):
    index = Library().index([conf.BUILTIN_DIR])
    assert index.problems == ()
    assert len(index.sections) >= 6 and len(index.documents) >= 12
    for doc in index.documents:
        assert doc.title and doc.summary and doc.text, doc.path
        response = staff_client.get(f"/help/{doc.section}/{doc.slug}/")
        assert response.status_code == 200, doc.path
        body = article(response)
        assert f">{escape(doc.title)}</h1>" in body
        for href in re.findall(r'href="(/help/[^"#]*)', body):
            assert staff_client.get(href).status_code == 200, (doc.path, href)
        for anchor in re.findall(r'href="#([^"]+)"', response.content.decode()):
            assert f'id="{anchor}"' in body, (doc.path, anchor)


def test_the_shipped_documents_cover_the_features():
    index = Library().index([conf.BUILTIN_DIR])
    titles = {doc.title for doc in index.documents}
    for expected in (
        "Writing a widget",
        "The Explorer",
        "API tokens",
        "Endpoints",
        "Live updates",
        "Deployment",
        "Backups",
        "Status",
        "Activity",
    ):
        assert expected in titles
