"""Personal layouts: each user's card order, hidden cards and card widths, per dashboard page.

A page is named by its scope: ``"dashboard"`` (``/smallstack/``), ``"group:<name>"`` or
``"app:<label>"``. Layouts are stored as :class:`~smallstack.models.DashboardLayout` rows and
always read through :func:`normalise` against the widgets registered *now*: keys that are no
longer registered vanish, widgets registered since the layout was saved take their default
position, and a user without a saved layout gets the page's default order.

Hidden cards are left out before evaluation (:func:`arrange`), so they cost nothing; saving or
resetting a layout tells that user's open dashboards (:func:`announce`), which then stop or
start forwarding the cards concerned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.db import IntegrityError
from django.urls import NoReverseMatch, reverse

from smallstack.live import BROADCAST_GROUP
from smallstack.registry import Registration, registry

logger = logging.getLogger("smallstack.dashboard")

#: The main dashboard's scope.
DASHBOARD = "dashboard"
#: The widths a user may give a card, in grid columns.
SPANS = (1, 2)
#: The longest scope that can be stored (``DashboardLayout.scope``).
MAX_SCOPE_LENGTH = 255
#: The channel-layer event type sent to every open dashboard when a user's layout changes.
CHANGED_EVENT = "layout.changed"
_SAVE_ATTEMPTS = 3


class InvalidScope(ValueError):
    """A scope that is malformed or names no registered group or app; the message says which."""


@dataclass(frozen=True)
class PageScope:
    """A dashboard page: the main one, a group's or an app's."""

    name: str
    group: str | None = None
    app: str | None = None

    @property
    def filters(self) -> dict[str, str]:
        """``{}``, ``{"group": …}`` or ``{"app": …}``: the page's filters as the live socket and
        the templates name them."""
        if self.group is not None:
            return {"group": self.group}
        if self.app is not None:
            return {"app": self.app}
        return {}

    def registrations(self) -> list[Registration]:
        """The page's widgets in default order; raises ``UnknownScope`` if it has none now."""
        return registry.scope(group=self.group, app=self.app)


def scope_for(group: str | None = None, app: str | None = None) -> PageScope:
    """The scope of the page showing ``group``, else ``app``, else the main dashboard."""
    if group is not None:
        return PageScope(f"group:{group}", group=group)
    if app is not None:
        return PageScope(f"app:{app}", app=app)
    return PageScope(DASHBOARD)


def parse_scope(value: str) -> PageScope:
    """The page named by ``value``; :class:`InvalidScope` if malformed or unknown."""
    if value == DASHBOARD:
        return PageScope(DASHBOARD)
    kind, colon, name = value.partition(":")
    if not colon or kind not in ("group", "app") or not name:
        raise InvalidScope(f"must be 'dashboard', 'group:<name>' or 'app:<label>', not {value!r}")
    if len(value) > MAX_SCOPE_LENGTH:
        raise InvalidScope(f"must be at most {MAX_SCOPE_LENGTH} characters")
    if kind == "group" and name not in registry.groups():
        raise InvalidScope(f"no dashboard group named {name!r}")
    if kind == "app" and name not in registry.app_labels():
        raise InvalidScope(f"no dashboard widgets for app {name!r}")
    return scope_for(**{kind: name})


@dataclass(frozen=True)
class Layout:
    """A normalised layout: ``order`` holds every key of the page exactly once (hidden ones
    too, where they will come back), ``hidden`` and ``spans`` only keys of the page."""

    scope: str
    order: list[str]
    hidden: list[str] = field(default_factory=list)
    spans: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{"scope", "order", "hidden", "spans"}``: the API's body and the page's ``layout``."""
        return {
            "scope": self.scope,
            "order": list(self.order),
            "hidden": list(self.hidden),
            "spans": dict(self.spans),
        }


def normalise(
    scope: str,
    keys: Sequence[str],
    order: Iterable[Any] = (),
    hidden: Iterable[Any] = (),
    spans: Mapping[Any, Any] | None = None,
) -> Layout:
    """The layout of a page whose widgets are ``keys`` (in default order).

    Unknown keys, duplicates and spans other than 1 or 2 are dropped. Keys missing from
    ``order`` (widgets registered since, or left out by the caller) are inserted at their index
    in the default order, so a new widget shows up where it would without a layout.
    """
    known = set(keys)
    arranged = list(dict.fromkeys(k for k in order if isinstance(k, str) and k in known))
    placed = set(arranged)
    for index, key in enumerate(keys):
        if key not in placed:
            arranged.insert(min(index, len(arranged)), key)
    hidden_keys = {k for k in hidden if isinstance(k, str)}
    given = spans or {}
    return Layout(
        scope=scope,
        order=arranged,
        hidden=[k for k in arranged if k in hidden_keys],
        spans={
            k: given[k]
            for k in arranged
            if k in given and type(given[k]) is int and given[k] in SPANS
        },
    )


def default(scope: str, keys: Sequence[str]) -> Layout:
    """The layout of a user who saved none: the default order, nothing hidden."""
    return normalise(scope, keys)


#: A page's layout and its registrations split by it: ``(layout, visible, hidden)``, the
#: visible ones in the layout's order, the hidden ones in default order.
Arranged = tuple[Layout, list[Registration], list[Registration]]


def _split(registrations: Sequence[Registration], layout: Layout) -> Arranged:
    """``registrations`` split by ``layout``, normalised for exactly them (:func:`aget`)."""
    by_key = {r.key: r for r in registrations}
    hidden = set(layout.hidden)
    return (
        layout,
        [by_key[k] for k in layout.order if k not in hidden],
        [r for r in registrations if r.key in hidden],
    )


def layout_url() -> str | None:
    """The path of the API's layout endpoint (None if the project does not mount the API)."""
    try:
        return reverse("smallstack-api:get_layout")
    except NoReverseMatch:
        return None


def hidden_cards(hidden: Iterable[Registration]) -> list[dict[str, str]]:
    """``[{"key", "title"}, …]`` of the hidden registrations: the page's list to show them from."""
    return [{"key": r.key, "title": r.widget.title} for r in hidden]


# -- storage ----------------------------------------------------------------------------------


def _model():
    from smallstack.models import DashboardLayout

    return DashboardLayout


def _user_id(user: Any) -> Any:
    """The user's primary key; None for no user or an anonymous one (who has no layouts)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def _from_row(scope: str, keys: Sequence[str], row: Any) -> Layout:
    if row is None:
        return default(scope, keys)
    # Rows come from the API, validated; anything else found there (edited by hand) is ignored.
    order = row.order if isinstance(row.order, list) else ()
    hidden = row.hidden if isinstance(row.hidden, list) else ()
    spans = row.spans if isinstance(row.spans, dict) else {}
    return normalise(scope, keys, order, hidden, spans)


async def aget(user: Any, scope: str, keys: Sequence[str]) -> Layout:
    """``user``'s layout of the page ``scope`` whose widgets are ``keys``, normalised."""
    user_id = _user_id(user)
    if user_id is None:
        return default(scope, keys)
    row = await _model().objects.filter(user_id=user_id, scope=scope).afirst()
    return _from_row(scope, keys, row)


def get(user: Any, scope: str, keys: Sequence[str]) -> Layout:
    """Blocking twin of :func:`aget`, for sync views."""
    user_id = _user_id(user)
    if user_id is None:
        return default(scope, keys)
    row = _model().objects.filter(user_id=user_id, scope=scope).first()
    return _from_row(scope, keys, row)


async def aarranged(user: Any, scope: str, registrations: Sequence[Registration]) -> Arranged:
    """``user``'s layout of the page ``scope`` showing ``registrations``, and them split by it:
    what a page evaluates (the visible ones, in order) and lists to show again (the hidden)."""
    return _split(registrations, await aget(user, scope, [r.key for r in registrations]))


def arranged(user: Any, scope: str, registrations: Sequence[Registration]) -> Arranged:
    """Blocking twin of :func:`aarranged`, for sync views."""
    return _split(registrations, get(user, scope, [r.key for r in registrations]))


async def asave(
    user: Any,
    page: PageScope,
    *,
    order: Iterable[Any] = (),
    hidden: Iterable[Any] = (),
    spans: Mapping[Any, Any] | None = None,
) -> Layout:
    """Store ``user``'s layout of ``page`` (normalised first) and tell their open dashboards.

    Returns the stored layout. Saves racing for the same user and page both succeed; the last
    one wins.
    """
    layout = normalise(page.name, [r.key for r in page.registrations()], order, hidden, spans or {})
    values = {"order": layout.order, "hidden": layout.hidden, "spans": layout.spans}
    for attempt in range(_SAVE_ATTEMPTS):
        try:
            await _model().objects.aupdate_or_create(
                user_id=user.pk, scope=page.name, defaults=values
            )
            break
        except IntegrityError:
            # Both inserted at once; the next attempt finds the other's row and updates it.
            if attempt == _SAVE_ATTEMPTS - 1:
                raise
    await announce(user.pk, page.name)
    return layout


async def adelete(user: Any, page: PageScope) -> Layout:
    """Forget ``user``'s layout of ``page`` (back to the default) and tell their dashboards."""
    await _model().objects.filter(user_id=user.pk, scope=page.name).adelete()
    await announce(user.pk, page.name)
    return default(page.name, [r.key for r in page.registrations()])


async def announce(user_id: Any, scope: str) -> None:
    """Tell every open dashboard (every process) that ``user_id``'s layout of ``scope`` changed.

    Their sockets of that page re-read it. A channel layer that is down is logged, not raised:
    the sockets read the layout again when they next subscribe (on reconnecting or reloading).
    """
    event = {"type": CHANGED_EVENT, "user_id": str(user_id), "scope": scope}
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(BROADCAST_GROUP, event)
    except Exception:
        # Once more: after a Redis restart the first use of a pooled connection can fail.
        await asyncio.sleep(0.05)
        try:
            await layer.group_send(BROADCAST_GROUP, event)
        except Exception as exc:
            logger.warning("Could not tell the open dashboards of a layout change: %r", exc)
