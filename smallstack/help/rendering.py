"""Markdown to safe HTML: the ``markdown`` library renders, ``nh3`` sanitises.

A document's raw HTML is passed through by Markdown and then cleaned, so what survives is what
Markdown itself produces (headings with ids, tables, code with a language class, links) and
harmless inline markup; scripts, event handlers and ``javascript:`` links do not.
"""

from __future__ import annotations

import html
import posixpath
import re
import textwrap
import xml.etree.ElementTree as etree
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import markdown
import nh3
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

#: Tags a document may keep after sanitising; everything else is stripped (its text kept).
ALLOWED_TAGS = frozenset(
    {
        *(f"h{level}" for level in range(1, 7)),
        *("p", "br", "hr", "a", "em", "strong", "b", "i", "s", "del", "ins", "mark", "small"),
        *("code", "pre", "kbd", "samp", "var", "sup", "sub", "abbr", "blockquote", "q"),
        *("ul", "ol", "li", "dl", "dt", "dd", "img", "details", "summary"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "div", "span"),
    }
)

#: Attributes kept per tag. Heading ids are the anchors the table of contents links to.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{f"h{level}": {"id"} for level in range(1, 7)},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "code": {"class"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "td": {"align", "colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}

#: Link and image schemes allowed besides relative URLs: no ``javascript:``, no ``data:``.
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_LANGUAGE_CLASS = re.compile(r"^language-[A-Za-z0-9_+#.-]{1,40}$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,100}$")
_ALIGN = frozenset({"left", "right", "center"})


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    """Keep only the values Markdown produces for the attributes that carry meaning."""
    if name == "class":  # only code blocks' language-* classes
        kept = [c for c in value.split() if _LANGUAGE_CLASS.match(c)]
        return " ".join(kept) or None
    if name == "id":
        return value if _SAFE_ID.match(value) else None
    if name == "align":
        return value if value in _ALIGN else None
    return value


def sanitise(fragment: str) -> str:
    """The HTML fragment with every tag, attribute and URL outside the allowed sets removed."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )


def plain_text(fragment: str) -> str:
    """The text of an HTML fragment, whitespace collapsed (for search and summaries)."""
    text = html.unescape(nh3.clean(fragment, tags=set()))
    return " ".join(text.split())


_NUMBER_PREFIX = re.compile(r"^(\d+)[-_. ]+(?=\S)")


def split_name(name: str) -> tuple[float | None, str]:
    """``"20-json-api.md"`` → ``(20, "json-api")``: the order prefix and the slug of a name."""
    stem = name[:-3] if name.lower().endswith(".md") else name
    match = _NUMBER_PREFIX.match(stem)
    order = float(match.group(1)) if match else None
    slug = slugify(stem[match.end() :] if match else stem)
    return order, slug or slugify(stem)


#: Builds the URL of a document from its section and slug (and a fragment, or "").
DocumentUrl = Callable[[str, str, str], str]


class _MarkdownLinks(Treeprocessor):
    """Rewrites relative links to ``.md`` files (``../api/10-tokens.md#scopes``) into the
    help pages' URLs, so documents can link to each other as they link on disk."""

    def __init__(self, md: markdown.Markdown, section_folder: str, url: DocumentUrl) -> None:
        super().__init__(md)
        self.section_folder = section_folder
        self.url = url

    def run(self, root: etree.Element) -> None:
        for link in root.iter("a"):
            href = link.get("href", "")
            target, _, fragment = href.partition("#")
            if not target.lower().endswith(".md") or ":" in target or target.startswith("/"):
                continue
            parts = posixpath.normpath(posixpath.join(self.section_folder, target)).split("/")
            if len(parts) != 2 or ".." in parts:
                continue
            link.set("href", self.url(split_name(parts[0])[1], split_name(parts[1])[1], fragment))


class _LinksExtension(Extension):
    def __init__(self, section_folder: str, url: DocumentUrl) -> None:
        super().__init__()
        self.section_folder = section_folder
        self.url = url

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # Markdown's hook name
        md.treeprocessors.register(
            _MarkdownLinks(md, self.section_folder, self.url), "smallstack-help-links", 5
        )


@dataclass(frozen=True)
class Rendered:
    """One Markdown source, rendered: safe HTML, its headings and its front matter."""

    html: SafeString
    toc: SafeString  # nested <ul> of the h2/h3 headings; "" when there are none
    text: str
    meta: dict[str, str]
    heading: str  # the first h1's text, or ""
    summary: str  # the front matter's summary, else the first paragraph (truncated)


_FIRST_PARAGRAPH = re.compile(r"<p>(.*?)</p>", re.DOTALL)


def _toc(tokens: Iterable[dict[str, Any]], max_level: int = 3) -> SafeString:
    """A nested list of links for headings of level 2 to ``max_level`` (h1s are titles)."""
    items = [
        (
            str(token["id"]),
            html.unescape(str(token.get("name", ""))),
            _toc(token.get("children", []), max_level),
        )
        for token in tokens
        if 1 < token["level"] <= max_level
    ]
    if not items:
        return SafeString("")
    return format_html(
        "<ul>{}</ul>",
        format_html_join("", '<li><a href="#{}">{}</a>{}</li>', items),
    )


def render(source: str, section_folder: str = "", url: DocumentUrl | None = None) -> Rendered:
    """Render one Markdown document (with optional front matter) to sanitised HTML."""
    extensions: list[Extension | str] = ["meta", "tables", "fenced_code", "sane_lists", "toc"]
    if url is not None:
        extensions.append(_LinksExtension(section_folder, url))
    md = markdown.Markdown(
        extensions=extensions,
        extension_configs={"tables": {"use_align_attribute": True}},
        output_format="html",
    )
    body = sanitise(md.convert(source))
    tokens = getattr(md, "toc_tokens", [])
    meta = {
        str(key).lower(): " ".join(str(v) for v in values).strip()
        for key, values in getattr(md, "Meta", {}).items()
    }
    heading = next(
        (html.unescape(str(t.get("name", ""))) for t in tokens if t["level"] == 1),
        "",
    )
    summary = meta.get("summary", "")
    if not summary:
        first = _FIRST_PARAGRAPH.search(body)
        summary = plain_text(first.group(1)) if first else ""
    return Rendered(
        html=mark_safe(body),  # sanitised by nh3 just above
        toc=_toc_from_tokens(tokens),
        text=plain_text(body),
        meta=meta,
        heading=heading.strip(),
        summary=textwrap.shorten(summary, 200, placeholder=" …"),
    )


def _toc_from_tokens(tokens: list[dict[str, Any]]) -> SafeString:
    """Headings under each h1 are lifted to the top level of the table of contents."""
    flat: list[dict[str, Any]] = []
    for token in tokens:
        flat.extend(token.get("children", []) if token["level"] == 1 else [token])
    return _toc(flat)
