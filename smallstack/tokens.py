"""API token keys: generation, hashing and lookup.

A key looks like ``ss_<prefix>_<secret>``: ``prefix`` is 8 hex characters stored in clear to
find the row, ``secret`` 43 URL-safe characters (256 bits). The database keeps the SHA-256
hex digest of the whole key and compares it in constant time.

Pollers send the same key every few seconds, so a verified key is remembered in memory (by its
digest, never the key itself) for ``SMALLSTACK_DASHBOARD["API_TOKEN_CACHE"]`` seconds (default
5; 0 turns it off). Within that window a request needs no database query; a revocation, or the
user losing staff status, takes effect when it ends. Expiry is checked on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.signals import setting_changed
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from smallstack import conf
from smallstack.models import APIToken
from smallstack.shared_calls import joined

if TYPE_CHECKING:
    from django.contrib.auth.models import User  # the AUTH_USER_MODEL the stubs resolve

KEY_RE = re.compile(r"^ss_([0-9a-f]{8})_([A-Za-z0-9_-]{32,128})$")
#: ``last_used`` is written at most this often per token, so pollers do not write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_VERIFIED_MAX = 1024

_verified: dict[str, tuple[float, APIToken]] = {}
_verified_lock = threading.Lock()
#: Lookups in progress by digest, each on the event loop of the request making it.
_lookups: dict[str, asyncio.Future[APIToken | None]] = {}


def _cache_seconds() -> float:
    return float(conf.get("API_TOKEN_CACHE"))


def forget_verified() -> None:
    """Drop every remembered verification (tests, settings changes)."""
    with _verified_lock:
        _verified.clear()


def _remember(digest: str, token: APIToken) -> None:
    with _verified_lock:
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[digest] = (time.monotonic() + _cache_seconds(), token)


def _on_setting_changed(*, setting: str, **_: object) -> None:
    if setting == "SMALLSTACK_DASHBOARD":
        forget_verified()


setting_changed.connect(_on_setting_changed)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    match = KEY_RE.match(key)
    return match.group(1) if match else None


def create_token(
    user: User, name: str = "", expires: datetime | None = None
) -> tuple[APIToken, str]:
    """Create a token for ``user``; return it with its raw key (never stored, show it once)."""
    for _ in range(5):
        prefix = secrets.token_hex(4)
        key = f"ss_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = APIToken.objects.create(
                    user=user, name=name, prefix=prefix, key_hash=hash_key(key), expires=expires
                )
        except IntegrityError:  # prefix collision: draw again
            continue
        return token, key
    raise RuntimeError("could not draw an unused token prefix")


async def aauthenticate(key: str) -> APIToken | None:
    """The usable token ``key`` belongs to, with its user loaded; None for anything else.

    Malformed, unknown, revoked and expired keys all give None. ``last_used`` is refreshed
    by a conditional UPDATE at most once per :data:`LAST_USED_RESOLUTION`. A key verified less
    than ``API_TOKEN_CACHE`` seconds ago is answered from memory. Concurrent requests with the
    same key to look up share one lookup: when the remembered verification of a poller's key
    ends, its requests in flight make one query between them, not one each.
    """
    prefix = parse_prefix(key)
    if prefix is None:
        return None
    digest = hash_key(key)
    remembered = _verified.get(digest)
    if remembered is not None and remembered[0] > time.monotonic():
        token = remembered[1]
        return None if token.is_expired() else token
    return await joined(_lookups, digest, lambda: _lookup(prefix, digest))


async def _lookup(prefix: str, digest: str) -> APIToken | None:
    """Verify a well-formed key (given by its digest) against the database; remember it."""
    try:
        token = await APIToken.objects.select_related("user").aget(prefix=prefix)
    except APIToken.DoesNotExist:
        return None
    if not hmac.compare_digest(token.key_hash, digest):
        return None
    now = timezone.now()
    if token.revoked is not None or token.is_expired(now):
        return None
    cutoff = now - LAST_USED_RESOLUTION
    if token.last_used is None or token.last_used < cutoff:
        # Conditional, so concurrent requests of one poller write once between them.
        await APIToken.objects.filter(
            Q(last_used__isnull=True) | Q(last_used__lt=cutoff), pk=token.pk
        ).aupdate(last_used=now)
        token.last_used = now
    if _cache_seconds() > 0:
        _remember(digest, token)
    return token
