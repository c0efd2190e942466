"""Conditional GET for pollers: a weak ETag over the data, and 304 when it is unchanged.

The ETag covers what a poller acts on: every item's fields and data, its state, staleness and
error. It leaves out what changes on every request without the dashboard changing: the
response's ``generated_at`` and ``elapsed_ms``, and each item's ``elapsed_ms`` and
``evaluated_at``. So a widget re-evaluated to the same result keeps its ETag, and the body
behind a 304 may carry older timestamps than a fresh 200 would. The tag is weak (``W/``)
because the bytes differ in those timestamps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.http import parse_etags

from smallstack.contract import digest, stable_item

CACHE_CONTROL = "private, no-cache"


def etag_for(items: Iterable[Mapping[str, Any]], *extra: Any) -> str:
    return f'W/"{digest([[stable_item(item) for item in items], *extra])[:32]}"'


def etag_of_digests(digests: Iterable[str]) -> str:
    """The ETag of items given by their digests (``digest(stable_item(item))``), in order."""
    return f'W/"{hashlib.sha256("".join(digests).encode()).hexdigest()[:32]}"'


def not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """A 304 when ``If-None-Match`` matches ``etag`` (weak comparison), else None."""
    header = request.META.get("HTTP_IF_NONE_MATCH")  # request.headers would map them all
    if not header:
        return None
    if header != etag:  # a poller sending back the tag it was given is the common case
        wanted = _opaque(etag)
        if not any(tag == "*" or _opaque(tag) == wanted for tag in parse_etags(header)):
            return None
    response = HttpResponseNotModified()
    set_headers(response, etag)
    return response


def set_headers(response: HttpResponse, etag: str | None) -> None:
    if etag is not None:
        response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag
