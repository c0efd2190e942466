"""Widgets returning large but allowed data (about 200 KB serialised, under MAX_DATA_BYTES)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from smallstack.displays import DashboardWidget

#: Characters of widget data: with the JSON around it, under the 256 KiB MAX_DATA_BYTES default.
SIZE = 200_000


def blob() -> str:
    """A new string every call, as real data would be (nothing shared between evaluations)."""
    return os.urandom(SIZE // 2).hex()


class _Big(DashboardWidget):
    on_dashboard = False
    timeout = 20

    def __init__(self, key: str, cache_ttl: float = 0) -> None:
        self.key, self.title, self.cache_ttl = key, key, cache_ttl


class BigHeadline(_Big):
    """A plain ``def`` widget whose headline is the big string."""

    def get_data(self) -> dict[str, Any]:
        return {"headline": blob()}


class BigApiExtras(_Big):
    """A plain ``def`` widget whose big data comes from ``get_api_extras()``."""

    def get_data(self) -> dict[str, Any]:
        return {"headline": "big extras"}

    def get_api_extras(self) -> dict[str, Any]:
        return {"extra": blob()}


class AsyncBigHeadline(_Big):
    async def get_data(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"headline": blob()}


class AsyncBigExtra(_Big):
    """An ``async def`` widget with the big string in ``extra`` (API only)."""

    async def get_data(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"headline": "big extra", "extra": blob()}
