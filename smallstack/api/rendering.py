"""API items as JSON, serialised once per evaluation rather than once per poll.

Monitors poll the widget list every few seconds, and within a widget's ``cache_ttl`` every poll
gets the same evaluation back. :class:`ItemRenderer` keeps each widget's latest item as JSON
bytes, with the digest of its stable fields (what the ETag covers, see
:mod:`smallstack.api.conditional`), and reuses both while the item is unchanged: every field
equal (the evaluation's ``evaluated_at`` and ``elapsed_ms`` included) and the data equal. An
item that changed only in those two volatile fields (a widget without ``cache_ttl``,
re-evaluated to the same result) keeps its digest and is serialised again.

Each item is checked against the documented :class:`~smallstack.api.schemas.WidgetItem` when
its digest is computed, so once per change rather than per poll. An item that does not match
is still served as it is (its data passed the widget's own checks) and logged as an error: the
schema and the items have drifted apart.

One entry per widget key, so memory is bounded by the registry: the latest item's bytes and
data. Used from the event loop only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from smallstack.api.schemas import WidgetItem
from smallstack.contract import VOLATILE_ITEM_FIELDS, digest, stable_item

logger = logging.getLogger("smallstack.api")

#: Entries kept before all are dropped (widgets registered and unregistered over and over).
MAX_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class RenderedItem:
    """One item as served: its JSON and the digest of its stable fields."""

    stable: tuple[tuple[str, Any], ...]
    volatile: tuple[tuple[str, Any], ...]
    data: Any
    digest: str
    json: bytes


def _split(item: Mapping[str, Any]) -> tuple[tuple, tuple]:
    stable, volatile = [], []
    for name, value in item.items():
        if name in VOLATILE_ITEM_FIELDS:
            volatile.append((name, value))
        elif name != "data":
            stable.append((name, value))
    return tuple(stable), tuple(volatile)


def encode(value: Any) -> bytes:
    """Compact JSON, as every API body is written."""
    return json.dumps(value, separators=(",", ":")).encode()


class ItemRenderer:
    """Each widget's latest item as JSON and digest; see the module's notes."""

    def __init__(self) -> None:
        self._latest: dict[str, RenderedItem] = {}

    def clear(self) -> None:
        self._latest.clear()

    def render(self, item: Mapping[str, Any]) -> RenderedItem:
        """``item`` (:meth:`WidgetContext.as_item`) rendered, reusing what did not change."""
        stable, volatile = _split(item)
        data = item.get("data")
        known = self._latest.get(item["key"])
        if known is not None and known.stable == stable and known.data == data:
            if known.volatile == volatile:
                return known
            rendered = RenderedItem(stable, volatile, known.data, known.digest, encode(item))
        else:
            _check(item)
            rendered = RenderedItem(stable, volatile, data, digest(stable_item(item)), encode(item))
        if len(self._latest) >= MAX_ENTRIES:
            self._latest.clear()
        self._latest[item["key"]] = rendered
        return rendered

    def render_all(self, items: Iterable[Mapping[str, Any]]) -> list[RenderedItem]:
        return [self.render(item) for item in items]


def list_body(rendered: list[RenderedItem], **fields: Any) -> bytes:
    """The widget list's body: ``{"widgets": [...], **fields}`` from the items' JSON."""
    body = b'{"widgets":[' + b",".join(r.json for r in rendered) + b"]"
    return body + (b"," + encode(fields)[1:] if fields else b"}")


def _check(item: Mapping[str, Any]) -> None:
    try:
        WidgetItem.model_validate(item)
    except ValidationError as exc:
        logger.error(
            "API item of widget %s does not match the documented WidgetItem schema; "
            "served as it is: %s",
            item.get("key"),
            exc,
        )


#: The process's renderer, shared by the API's endpoints.
renderer = ItemRenderer()
