"""The Explorer's first-party dashboard widget."""

from __future__ import annotations

from typing import Any

from explorer.registry import explorer
from smallstack.displays import DashboardWidget

_ICON_TABLE = (
    '<svg viewBox="0 0 24 24" width="22" height="22" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<rect x="3" y="3" width="18" height="18" rx="2"/><path d="M3 9h18M3 15h18M9 3v18"/></svg>'
)


class ExplorerWidget(DashboardWidget):
    """How many models the Explorer browses; links to its index."""

    key = "explorer.models"
    title = "Explorer"
    icon = _ICON_TABLE
    order = 60
    url_name = "explorer:index"

    async def get_data(self) -> dict[str, Any]:
        models = explorer.get_models()
        count = len(models)
        return {
            "headline": f"{count} model{'' if count == 1 else 's'}",
            "detail": "Registered for exploration",
            "extra": {
                "models": [info.label for info in models],
                "groups": explorer.get_groups(),
            },
        }
