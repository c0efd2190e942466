"""The help pages (staff only): the contents with a search, a section, a document."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from smallstack.access import staff_required
from smallstack.help import search
from smallstack.help.library import aindex


@staff_required
async def index(request: HttpRequest) -> HttpResponse:
    """Every section with its documents; with ``?q=``, the documents matching it first."""
    docs = await aindex()
    query = request.GET.get("q", "")
    context = {
        "title": "Help & Docs",
        "index": docs,
        "query": query,
        "results": None,
        "error": "",
    }
    status = 200
    if query.strip():
        try:
            # Cheap for a few dozen documents, but it is CPU work: keep it off the event loop.
            context["results"] = await sync_to_async(search.search, thread_sensitive=False)(
                docs, query
            )
        except search.BadQuery as exc:
            context["error"], status = str(exc), 400
    return TemplateResponse(request, "help/index.html", context, status=status)


@staff_required
async def section(request: HttpRequest, section: str) -> HttpResponse:
    """One section: its introduction and its documents with their summaries."""
    docs = await aindex()
    found = docs.section(section)
    if found is None:
        raise Http404(f"No help section {section!r}.")
    context = {"title": f"{found.title} · Help", "index": docs, "section": found}
    return TemplateResponse(request, "help/section.html", context)


@staff_required
async def document(request: HttpRequest, section: str, document: str) -> HttpResponse:
    """One document, with its table of contents and the section's other documents.

    Documents are looked up by slug in the scanned index, never by a path from the URL.
    """
    docs = await aindex()
    found = docs.document(section, document)
    if found is None:
        raise Http404(f"No help document {section!r}/{document!r}.")
    previous, following = docs.neighbours(found)
    context = {
        "title": f"{found.title} · Help",
        "index": docs,
        "section": docs.section(section),
        "document": found,
        "previous": previous,
        "next": following,
    }
    return TemplateResponse(request, "help/document.html", context)
