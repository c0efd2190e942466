"""Widgets served by the live end-to-end test server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from smallstack.displays import DashboardWidget


class FileValue(DashboardWidget):
    """Shows the content of a file the test controls."""

    key = "live-value"
    title = "Live value"
    order = 1

    def get_data(self) -> dict[str, Any]:
        path = os.environ.get("SMALLSTACK_LIVE_VALUE_FILE", "")
        text = Path(path).read_text().strip() if path and Path(path).exists() else "unset"
        return {"headline": text, "detail": "from the test's file"}


class CachedFileValue(FileValue):
    """The same file, its result kept a minute: API polls of it are answered from a snapshot."""

    key = "live-cached"
    title = "Live cached value"
    cache_ttl = 60
    on_dashboard = False


class Late(DashboardWidget):
    """Finishes after a delay, long after the page's render budget."""

    key = "late-card"
    title = "Late card"
    order = 2
    timeout = 10

    def __init__(self, seconds: float | None = None, **attrs: Any) -> None:
        self.seconds = seconds
        self.__dict__.update(attrs)
        if "key" in attrs:
            self.title = f"Late {attrs['key']}"

    async def get_data(self) -> dict[str, Any]:
        seconds = self.seconds
        if seconds is None:
            seconds = float(os.environ.get("SMALLSTACK_LIVE_LATE_SECONDS", "1"))
        await asyncio.sleep(seconds)
        return {"headline": "arrived late", "detail": f"after {seconds:g} s"}


class Quick(DashboardWidget):
    on_dashboard = False

    def __init__(self, index: int) -> None:
        self.key, self.title = f"bench-quick-{index}", f"Quick {index}"

    async def get_data(self) -> dict[str, Any]:
        return {"headline": "instant"}
