"""Search over the documents' titles and text: every word must appear (case-insensitive)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from smallstack.help.library import Document, Index, Section

#: The longest query accepted, in characters; a longer one is a 400.
MAX_QUERY = 200
#: The most distinct words a query may hold.
MAX_TERMS = 10
#: The most results listed.
MAX_RESULTS = 50
#: Characters of context shown before the first match, and the snippet's length.
BEFORE, LENGTH = 60, 220


class BadQuery(ValueError):
    """A query the search refuses; the message says why."""


@dataclass(frozen=True)
class Result:
    document: Document
    section: Section
    title: SafeString  # the title, escaped, matches in <mark>
    snippet: SafeString  # text around the first match, escaped, matches in <mark>
    score: int


def terms(query: str) -> list[str]:
    """The distinct words of ``query``; [] for a blank one."""
    if len(query) > MAX_QUERY:
        raise BadQuery(f"The search is limited to {MAX_QUERY} characters.")
    words = list(dict.fromkeys(word.casefold() for word in query.split()))
    if len(words) > MAX_TERMS:
        raise BadQuery(f"The search is limited to {MAX_TERMS} words.")
    return words


def highlight(text: str, pattern: re.Pattern[str]) -> SafeString:
    """``text`` escaped, with each match of ``pattern`` inside ``<mark>``."""
    parts: list[str] = []
    at = 0
    for match in pattern.finditer(text):
        parts += [escape(text[at : match.start()]), "<mark>", escape(match.group()), "</mark>"]
        at = match.end()
    parts.append(escape(text[at:]))
    return mark_safe("".join(parts))  # every piece of text is escaped


def snippet(text: str, pattern: re.Pattern[str], fallback: str) -> SafeString:
    """About :data:`LENGTH` characters of ``text`` around its first match (else ``fallback``)."""
    first = pattern.search(text)
    if first is None:
        return highlight(fallback, pattern)
    start = max(0, first.start() - BEFORE)
    if start:
        space = text.find(" ", start, first.start())
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + LENGTH)
    if end < len(text):
        space = text.rfind(" ", max(first.end(), start + LENGTH // 2), end)
        end = space if space >= 0 else end
    marked = highlight(text[start:end], pattern)
    return mark_safe(  # highlight() escaped the text
        ("… " if start else "") + marked + (" …" if end < len(text) else "")
    )


def search(index: Index, query: str) -> list[Result]:
    """Documents whose title or text holds every word of ``query``, best first.

    A word found in the title counts ten times as much as one occurrence in the text.
    """
    words = terms(query)
    if not words:
        return []
    patterns = [re.compile(re.escape(word), re.IGNORECASE) for word in words]
    anywhere = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    results: list[tuple[tuple[float, ...], Result]] = []
    for section_at, section in enumerate(index.sections):
        for doc_at, doc in enumerate(section.documents):
            if not all(p.search(doc.title) or p.search(doc.text) for p in patterns):
                continue
            score = sum(
                10 * bool(p.search(doc.title)) + min(20, len(p.findall(doc.text))) for p in patterns
            )
            result = Result(
                document=doc,
                section=section,
                title=highlight(doc.title, anywhere),
                snippet=snippet(doc.text, anywhere, doc.summary),
                score=score,
            )
            results.append(((-score, section_at, doc_at), result))
    results.sort(key=lambda pair: pair[0])
    return [result for _, result in results[:MAX_RESULTS]]
