"""Widgets whose behaviour the load generator switches at run time, through files.

A widget's mode is the text of ``<SMALLSTACK_DATA_DIR>/faults/<key>`` (its ``default_mode``
while the file is missing or empty), read on every call:

- ``ok``: answers at once;
- ``slow:<seconds>``: answers after that long (``asyncio.sleep`` or ``time.sleep``);
- ``hang``: blocks until its file says something else (at most ``HANG_LIMIT`` seconds), so a
  hung widget is released when the run ends and no thread outlives the server's shutdown;
- ``raise``: raises ``RuntimeError``;
- ``tick``: answers with the current second (changes every second: pushes on every refresh).

:func:`set_mode` is what the load generator calls (from another process: it only writes the
file).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from smallstack.displays import DashboardWidget

HANG_LIMIT = 600.0
POLL = 0.05


def faults_dir(data_dir: str | os.PathLike | None = None) -> Path:
    base = data_dir if data_dir is not None else os.environ.get("SMALLSTACK_DATA_DIR", "var")
    return Path(base) / "faults"


def set_mode(data_dir: str | os.PathLike, key: str, mode: str) -> None:
    """Switch widget ``key`` of the server using ``data_dir`` to ``mode`` (atomically)."""
    directory = faults_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{key}.tmp"
    temporary.write_text(mode)
    temporary.replace(directory / key)


class FaultWidget(DashboardWidget):
    """One card of the "Faults" group; sync (``def``) unless ``is_async``."""

    default_mode = "ok"

    def __init__(self, key: str, title: str, order: int, mode: str = "ok", **attrs: Any):
        self.key, self.title, self.order, self.default_mode = key, title, order, mode
        self.__dict__.update(attrs)

    def mode(self) -> str:
        try:
            text = (faults_dir() / self.key).read_text().strip()
        except OSError:
            text = ""
        return text or self.default_mode

    def _answer(self, mode: str) -> dict[str, Any]:
        if mode == "raise":
            raise RuntimeError(f"{self.key} was told to raise")
        if mode == "tick":
            return {"headline": time.strftime("%H:%M:%S"), "detail": "changes every second"}
        return {"headline": "fine", "detail": f"mode {mode}", "status": "ok"}

    def get_data(self) -> dict[str, Any]:
        mode = self.mode()
        if mode.startswith("slow:"):
            time.sleep(float(mode.partition(":")[2]))
        elif mode == "hang":
            deadline = time.monotonic() + HANG_LIMIT
            while self.mode() == "hang" and time.monotonic() < deadline:
                time.sleep(POLL)
            return {"headline": "released", "detail": "was hung", "status": "warning"}
        return self._answer(mode)


class AsyncFaultWidget(FaultWidget):
    async def get_data(self) -> dict[str, Any]:  # type: ignore[override]
        mode = self.mode()
        if mode.startswith("slow:"):
            await asyncio.sleep(float(mode.partition(":")[2]))
        elif mode == "hang":
            deadline = time.monotonic() + HANG_LIMIT
            # Polls a file another process writes: no event to wait on.
            while self.mode() == "hang" and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(POLL)
            return {"headline": "released", "detail": "was hung", "status": "warning"}
        return self._answer(mode)


#: The keys the load generator switches.
FAST = "fault-fast"
SLOW = "fault-slow"
HUNG = "fault-hung"
RAISING = "fault-raising"
TICKER = "fault-ticker"
WILL_HANG = "fault-will-hang"
WILL_RAISE = "fault-will-raise"


def fault_widgets() -> list[DashboardWidget]:
    return [
        AsyncFaultWidget(FAST, "Fast", 40),
        AsyncFaultWidget(SLOW, "Half a second", 41, mode="slow:0.5"),
        FaultWidget(HUNG, "Hung", 42, mode="hang", timeout=1.0),
        FaultWidget(RAISING, "Raising", 43, mode="raise"),
        AsyncFaultWidget(TICKER, "Ticker", 44, mode="tick", refresh_interval=1),
        # Fine until the run's fault phase switches them.
        FaultWidget(WILL_HANG, "Will hang", 45, timeout=1.0),
        AsyncFaultWidget(WILL_RAISE, "Will raise", 46),
    ]
