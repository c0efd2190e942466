"""Widgets served by the gunicorn and nginx test servers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from smallstack.displays import DashboardWidget


class WorkerPid(DashboardWidget):
    """The pid of the process that evaluated it: never cached, so always the serving worker."""

    key = "deploy-worker"
    title = "Worker"
    order = 1

    async def get_data(self) -> dict[str, Any]:
        return {"headline": str(os.getpid()), "detail": "the worker serving this socket"}


class FileValue(DashboardWidget):
    """Shows the content of a file the test controls."""

    key = "deploy-value"
    title = "Deploy value"
    order = 2

    def get_data(self) -> dict[str, Any]:
        path = os.environ.get("SMALLSTACK_DEPLOY_VALUE_FILE", "")
        text = Path(path).read_text().strip() if path and Path(path).exists() else "unset"
        return {"headline": text, "detail": "from the test's file"}


class Slow(DashboardWidget):
    """Answers after ``SMALLSTACK_DEPLOY_SLOW_SECONDS`` (default 3)."""

    key = "deploy-slow"
    title = "Slow"
    on_dashboard = False
    timeout = 30

    async def get_data(self) -> dict[str, Any]:
        seconds = float(os.environ.get("SMALLSTACK_DEPLOY_SLOW_SECONDS", "3"))
        await asyncio.sleep(seconds)
        return {"headline": "slow", "detail": f"after {seconds:g} s in process {os.getpid()}"}
