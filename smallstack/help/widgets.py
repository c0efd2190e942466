"""The Help & Docs card: how many documents there are, in how many sections."""

from __future__ import annotations

from typing import Any

from smallstack.displays import DashboardWidget
from smallstack.help.library import aindex

ICON_BOOK = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<path d="M2 4h6a4 4 0 0 1 4 4v13a3 3 0 0 0-3-3H2z"/>'
    '<path d="M22 4h-6a4 4 0 0 0-4 4v13a3 3 0 0 1 3-3h7z"/></svg>'
)


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


class HelpWidget(DashboardWidget):
    """Counts the documents the help pages serve; the card links to them."""

    key = "smallstack.help"
    title = "Help & Docs"
    icon = ICON_BOOK
    order = 50
    url_name = "help:index"
    cache_ttl = 60  # re-checking every document file's mtime: not once per monitor poll

    async def get_data(self) -> dict[str, Any]:
        index = await aindex()
        documents = len(index.documents)
        data: dict[str, Any] = {
            "headline": plural(documents, "article"),
            "detail": f"across {plural(len(index.sections), 'section')}",
            "extra": {
                "sections": [
                    {"slug": s.slug, "title": s.title, "articles": len(s.documents)}
                    for s in index.sections
                ],
                "skipped": [str(p) for p in index.problems],
            },
        }
        if index.problems:
            data["status"] = "warning"
            data["detail"] += f"; {plural(len(index.problems), 'problem')} (see manage.py check)"
        return data
