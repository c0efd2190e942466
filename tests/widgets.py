"""Widget classes the tests build their scenarios from."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from smallstack.displays import DashboardWidget

_serial = iter(range(10**9))


def unique(title: str) -> str:
    return f"{title} {next(_serial)}"


class SleepySync(DashboardWidget):
    """A plain-def widget that blocks its thread for ``delay`` seconds."""

    def __init__(self, delay: float, title: str = "sleepy sync", **attrs: Any) -> None:
        self.delay, self.title = delay, unique(title)
        self.calls = 0
        self.__dict__.update(attrs)

    def get_data(self) -> dict[str, Any]:
        self.calls += 1
        time.sleep(self.delay)
        return {"headline": f"slept {self.delay}", "detail": threading.current_thread().name}


class SleepyAsync(DashboardWidget):
    """An async widget that awaits ``delay`` seconds."""

    def __init__(self, delay: float, title: str = "sleepy async", **attrs: Any) -> None:
        self.delay, self.title = delay, unique(title)
        self.calls = 0
        self.__dict__.update(attrs)

    async def get_data(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"headline": f"awaited {self.delay}", "detail": "async"}


class Returns(DashboardWidget):
    """Returns a fixed value (or raises a fixed exception), counting its calls."""

    def __init__(self, value: Any = None, *, raises: Exception | None = None, **attrs: Any):
        self.value, self.raises = value, raises
        self.title = attrs.pop("title") if "title" in attrs else unique("returns")
        self.calls = 0
        self.__dict__.update(attrs)

    def get_data(self) -> Any:
        self.calls += 1
        if self.raises is not None:
            raise self.raises
        return self.value


class Hangs(DashboardWidget):
    """A sync widget that blocks until its event is set (or 30 s pass)."""

    def __init__(self, **attrs: Any) -> None:
        self.title = unique("hangs")
        self.release = threading.Event()
        self.entered = 0
        self.__dict__.update(attrs)

    def get_data(self) -> dict[str, Any]:
        self.entered += 1
        self.release.wait(30)
        return {"headline": "finally", "detail": "released"}
