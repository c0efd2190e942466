"""The documents: found in the docs directories, rendered once, re-rendered when they change.

Each directory holds one folder per section (``10-getting-started/``) with a ``.md`` file per
document (``20-first-widget.md``). A number before the name orders folders and files and is
not part of the slug; front matter (``title:``, ``order:``, ``summary:``) overrides what the
name and the first heading give. An optional ``_section.md`` in a folder sets the section's
title and order (front matter) and an introduction (its text). A later directory's document
replaces an earlier one with the same section and slug; sections with the same slug merge.

Everything here is blocking file I/O and CPU: call :meth:`Library.index` from a thread
(:func:`aindex` does).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from asgiref.sync import sync_to_async
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString

from smallstack.help import conf
from smallstack.help.rendering import Rendered, render, split_name

logger = logging.getLogger("smallstack.help")

#: The order of a document or section whose name and front matter give none.
DEFAULT_ORDER = 1000.0
#: The file in a section folder that describes the section itself.
SECTION_FILE = "_section.md"


@dataclass(frozen=True)
class Document:
    section: str
    slug: str
    title: str
    order: float
    summary: str
    html: SafeString
    toc: SafeString
    text: str
    has_heading: bool  # the body starts with its own h1, so the page adds none
    path: Path


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    order: float
    intro: SafeString
    documents: tuple[Document, ...]


@dataclass(frozen=True)
class Problem:
    """Something the library skipped: a directory it could not list, a file it could not read."""

    kind: Literal["directory", "document"]
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Index:
    sections: tuple[Section, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def documents(self) -> tuple[Document, ...]:
        return tuple(doc for section in self.sections for doc in section.documents)

    def section(self, slug: str) -> Section | None:
        return next((s for s in self.sections if s.slug == slug), None)

    def document(self, section: str, slug: str) -> Document | None:
        found = self.section(section)
        return next((d for d in found.documents if d.slug == slug), None) if found else None

    def neighbours(self, doc: Document) -> tuple[Document | None, Document | None]:
        """The documents before and after ``doc`` in its section."""
        section = self.section(doc.section)
        docs = section.documents if section else ()
        at = docs.index(doc) if doc in docs else -1
        if at < 0:
            return None, None
        return (docs[at - 1] if at > 0 else None, docs[at + 1] if at + 1 < len(docs) else None)


@dataclass(frozen=True)
class _Entry:
    root: Path
    folder: str
    name: str
    path: Path
    stamp: tuple[int, int]  # (mtime_ns, size): a change re-renders the file


def scan(directories: Iterable[Path]) -> tuple[list[_Entry], list[Problem]]:
    """Every document file under ``directories`` with its stamp, and what could not be read."""
    entries: list[_Entry] = []
    problems: list[Problem] = []
    for root in directories:
        try:
            with os.scandir(root) as found:
                folders = sorted(
                    e.name for e in found if e.is_dir() and not e.name.startswith((".", "_"))
                )
        except OSError as exc:
            problems.append(Problem("directory", root, _reason(exc)))
            continue
        for folder in folders:
            try:
                with os.scandir(root / folder) as found:
                    files = sorted(
                        (e for e in found if _is_document(e.name) and e.is_file()),
                        key=lambda e: e.name,
                    )
                    for file in files:
                        stat = file.stat()
                        entries.append(
                            _Entry(
                                root,
                                folder,
                                file.name,
                                Path(file.path),
                                (stat.st_mtime_ns, stat.st_size),
                            )
                        )
            except OSError as exc:
                problems.append(Problem("directory", root / folder, _reason(exc)))
    return entries, problems


def _is_document(name: str) -> bool:
    return name.lower().endswith(".md") and (name == SECTION_FILE or name[0] not in "._")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, NotADirectoryError):
        return "is not a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnicodeDecodeError):
        return f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return f"{type(exc).__name__}: {exc}"


def humanise(slug: str) -> str:
    """``"live-updates"`` → ``"Live updates"``."""
    words = slug.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def document_url(section: str, slug: str, fragment: str = "") -> str:
    """The help page of a document; what links between documents are rewritten to."""
    try:
        url = reverse("help:document", args=[section, slug])
    except NoReverseMatch:  # the help URLs are not mounted: leave the link relative
        url = f"../{section}/{slug}/"
    return f"{url}#{fragment}" if fragment else url


@dataclass
class _SectionDraft:
    slug: str
    title: str
    order: float
    intro: SafeString = field(default_factory=lambda: SafeString(""))
    documents: dict[str, tuple[Path, Document]] = field(default_factory=dict)


class Library:
    """Reads the docs directories, keeping each file's rendering until the file changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rendered: dict[Path, tuple[tuple[int, int], Rendered | Problem]] = {}
        self._index: tuple[object, Index] | None = None

    def index(self, directories: Sequence[Path] | None = None) -> Index:
        """The current documents. Lists the directories and stats the files each time;
        reads and renders only files that are new or whose modification time or size changed."""
        dirs = list(conf.directories() if directories is None else directories)
        entries, problems = scan(dirs)
        key = (tuple(dirs), tuple((e.path, e.stamp) for e in entries), tuple(problems))
        with self._lock:
            if self._index is not None and self._index[0] == key:
                return self._index[1]
            index = self._build(entries, problems)
            self._rendered = {e.path: self._rendered[e.path] for e in entries}
            self._index = (key, index)
        for problem in index.problems:
            logger.warning("Help & Docs skipped %s", problem)
        return index

    def clear(self) -> None:
        """Forget every rendering (the next call reads every file again)."""
        with self._lock:
            self._rendered.clear()
            self._index = None

    def _render(self, entry: _Entry) -> Rendered | Problem:
        cached = self._rendered.get(entry.path)
        if cached is not None and cached[0] == entry.stamp:
            return cached[1]
        result: Rendered | Problem
        try:
            source = entry.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            result = Problem("document", entry.path, _reason(exc))
        else:
            result = render(source, entry.folder, document_url)
        self._rendered[entry.path] = (entry.stamp, result)
        return result

    def _build(self, entries: list[_Entry], problems: list[Problem]) -> Index:
        drafts: dict[str, _SectionDraft] = {}
        found = list(problems)
        for entry in entries:
            folder_order, section_slug = split_name(entry.folder)
            draft = drafts.get(section_slug)
            if draft is None:
                draft = drafts[section_slug] = _SectionDraft(
                    section_slug, humanise(section_slug), _or(folder_order, DEFAULT_ORDER)
                )
            rendered = self._render(entry)
            if isinstance(rendered, Problem):
                found.append(rendered)
                continue
            order = _order(rendered, entry, found)
            if entry.name == SECTION_FILE:
                draft.title = rendered.meta.get("title") or rendered.heading or draft.title
                draft.order = _or(order, draft.order)
                draft.intro = rendered.html
                continue
            file_order, slug = split_name(entry.name)
            earlier = draft.documents.get(slug)
            if earlier is not None and earlier[0] == entry.path.parent:
                found.append(
                    Problem(
                        "document",
                        entry.path,
                        f"has the same slug {slug!r} as {earlier[1].path.name}; skipped",
                    )
                )
                continue
            draft.documents[slug] = (
                entry.path.parent,
                Document(
                    section=section_slug,
                    slug=slug,
                    title=rendered.meta.get("title") or rendered.heading or humanise(slug),
                    order=_or(order, _or(file_order, DEFAULT_ORDER)),
                    summary=rendered.summary,
                    html=rendered.html,
                    toc=rendered.toc,
                    text=rendered.text,
                    has_heading=bool(rendered.heading),
                    path=entry.path,
                ),
            )
        sections = [
            Section(
                slug=d.slug,
                title=d.title,
                order=d.order,
                intro=d.intro,
                documents=tuple(
                    sorted(
                        (doc for _, doc in d.documents.values()),
                        key=lambda doc: (doc.order, doc.title.casefold(), doc.slug),
                    )
                ),
            )
            for d in drafts.values()
            if d.documents
        ]
        sections.sort(key=lambda s: (s.order, s.title.casefold(), s.slug))
        return Index(tuple(sections), tuple(found))


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _order(rendered: Rendered, entry: _Entry, problems: list[Problem]) -> float | None:
    """The front matter's ``order``, if it has a usable one."""
    given = rendered.meta.get("order")
    if not given:
        return None
    try:
        return float(given)
    except ValueError:
        problems.append(
            Problem("document", entry.path, f"front matter order {given!r} is not a number")
        )
        return None


#: The process's library: every page and the card read through it.
library = Library()


async def aindex() -> Index:
    """:meth:`Library.index` on a worker thread, off the event loop."""
    return await sync_to_async(library.index, thread_sensitive=False)()
