"""Widgets that misbehave on purpose, for a real uvicorn process (``tests/test_hostile_uvicorn.py``
and ``benchmarks/stall.py``)."""

from __future__ import annotations

import sys
import time
from typing import Any

from smallstack.displays import DashboardWidget


class _Hostile(DashboardWidget):
    on_dashboard = False
    timeout = 3

    def __init__(self, key: str, **attrs: Any) -> None:
        self.key, self.title = key, key.replace("-", " ")
        self.__dict__.update(attrs)


class ExitsSync(_Hostile):
    def get_data(self) -> dict[str, Any]:
        sys.exit(4)


class ExitsAsync(_Hostile):
    async def get_data(self) -> dict[str, Any]:
        sys.exit(4)


class InterruptsSync(_Hostile):
    def get_data(self) -> dict[str, Any]:
        raise KeyboardInterrupt


class InterruptsAsync(_Hostile):
    async def get_data(self) -> dict[str, Any]:
        raise KeyboardInterrupt


class SpinsAsync(_Hostile):
    """Computes for five seconds in an ``async def``, never awaiting (timeout 1 s)."""

    timeout = 1

    async def get_data(self) -> dict[str, Any]:
        end = time.monotonic() + 5
        turns = 0
        while time.monotonic() < end:
            turns += 1
        return {"headline": f"{turns} turns"}


class FiveMegabytes(_Hostile):
    def get_data(self) -> dict[str, Any]:
        return {"headline": "x" * (5 * 1024 * 1024)}


class FiveMegabytesOfExtras(_Hostile):
    async def get_data(self) -> dict[str, Any]:
        return {"headline": "small card"}

    async def get_api_extras(self) -> dict[str, Any]:
        return {"blob": "y" * (5 * 1024 * 1024)}


class Fine(_Hostile):
    async def get_data(self) -> dict[str, Any]:
        return {"headline": "fine"}
