"""Whole widget lists reused while every widget in them is within its ``cache_ttl``.

A monitor polling ``/api/dashboard/widgets/`` every few seconds gets the same evaluations back
until the first of them reaches its ``cache_ttl``: the engine would answer each poll from the
dashboard cache, widget by widget. A :class:`Snapshot` keeps that answer, the contexts with
their items already serialised and the list's ETag, for the scope it was made for (filters and
script prefix), and the next polls take it as it is, until:

- the first widget's result is ``cache_ttl`` old (the engine would evaluate it again), or
- the widgets in scope are not the same registrations (or a widget was registered or
  unregistered since: the registry's generation moved), or
- a result was replaced before its ``cache_ttl`` was over (a refresh, in any process sharing
  the cache), or the cache was cleared, restarted or is unreachable: the engine's
  :meth:`~smallstack.engine.Engine.results_version`, read before the results a snapshot is made
  from, has changed.

Only lists whose every widget succeeded with a ``cache_ttl`` (not stale, not paused by its
breaker) become snapshots; any other list is evaluated on every poll, as before. Polls answered
from a snapshot count as cache hits in the telemetry, as the engine would count them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smallstack import telemetry
from smallstack.api.conditional import etag_of_digests
from smallstack.api.rendering import RenderedItem, renderer
from smallstack.contract import State, WidgetContext
from smallstack.engine import engine
from smallstack.registry import Registration, registry
from smallstack.shared_calls import joined

#: Scopes kept before all are dropped (a scope is a filter combination).
MAX_SCOPES = 256


@dataclass(slots=True)
class Snapshot:
    """Evaluated widgets of one scope, with their rendered items and ETag made on demand."""

    registrations: tuple[Registration, ...]
    contexts: list[WidgetContext]
    #: ``time.time()`` at which the first of these results is ``cache_ttl`` old; 0: never reused.
    expires: float = 0.0
    #: The engine's results version read before these results were (see the module's notes).
    version: str = ""
    #: The registry's generation when the registrations were selected.
    generation: int = -1
    _rendered: list[RenderedItem] | None = field(default=None, repr=False)
    _etag: str | None = field(default=None, repr=False)

    @property
    def rendered(self) -> list[RenderedItem]:
        if self._rendered is None:
            self._rendered = renderer.render_all(c.as_item() for c in self.contexts)
        return self._rendered

    @property
    def etag(self) -> str:
        if self._etag is None:
            self._etag = etag_of_digests(r.digest for r in self.rendered)
        return self._etag


def expiry(contexts: Sequence[WidgetContext]) -> float:
    """When the first result is ``cache_ttl`` old; 0 when any cannot be reused at all."""
    expires = float("inf")
    for context in contexts:
        ttl = context.widget.cache_ttl
        at = context.evaluated_at
        if (
            not ttl
            or at is None
            or context.state != State.OK
            or context.stale
            or context.breaker is not None
        ):
            return 0.0
        expires = min(expires, at.timestamp() + ttl)
    return expires if contexts else 0.0


class Snapshots:
    """The process's snapshots by scope; see the module's notes. Used from the event loop."""

    def __init__(self) -> None:
        self._by_scope: dict[Any, Snapshot] = {}
        #: Snapshots being made, by scope, each on the event loop of the poll making it.
        self._building: dict[Any, asyncio.Future[Snapshot]] = {}

    def clear(self) -> None:
        self._by_scope.clear()

    async def current(self, scope: Any) -> Snapshot | None:
        """The scope's snapshot while it is still valid, else None; never evaluates.

        For a caller that knows the scope but has not selected its registrations: the registry
        must not have changed since the snapshot was made.
        """
        known = self._by_scope.get(scope)
        if known is None or time.time() >= known.expires or known.generation != registry.generation:
            return None
        if known.version != await engine.results_version():
            return None
        return known

    async def evaluate(self, scope: Any, registrations: Sequence[Registration]) -> Snapshot:
        """The registrations evaluated (with API extras): a valid snapshot of ``scope``, or a
        new evaluation, kept as the scope's snapshot when it can be reused."""
        selected = tuple(registrations)
        generation = registry.generation  # the caller selected them just now, without awaiting
        # Read before the results: a result stored after this (a refresh, another process's
        # evaluation, a cleared cache) changes it, and the snapshot is not reused.
        version = await engine.results_version()
        known = self._by_scope.get(scope)
        if (
            known is not None
            and known.registrations == selected
            and time.time() < known.expires
            and known.version == version
        ):
            telemetry.cache_lookups(len(selected), 0)
            known.generation = generation  # the same selection, seen in this generation
            return known
        self._by_scope.pop(scope, None)

        async def make() -> Snapshot:
            contexts = await engine.evaluate(selected, with_extras=True)
            snapshot = Snapshot(selected, contexts, expiry(contexts), version, generation)
            if snapshot.expires:
                if len(self._by_scope) >= MAX_SCOPES:
                    self._by_scope.clear()
                self._by_scope[scope] = snapshot
            return snapshot

        # Concurrent polls of the scope share one evaluation into a new snapshot (when the
        # version moves, every poll in flight would otherwise make its own).
        return await joined(
            self._building,
            scope,
            make,
            lambda shared: shared.registrations == selected and shared.version == version,
        )


#: The process's snapshots, shared by the API's endpoints.
snapshots = Snapshots()
