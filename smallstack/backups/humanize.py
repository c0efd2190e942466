"""Short human forms of ages and sizes for the card and the page ("3 h ago", "48 MB")."""

from __future__ import annotations

from datetime import timedelta


def age(delta: timedelta) -> str:
    """``delta`` as the card says it: "just now", "12 min ago", "3 h ago", "2 d ago"."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def size(count: int | float) -> str:
    """A byte count in binary units: "512 B", "9.5 KB", "48 MB", "1.2 GB"."""
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def seconds(value: float) -> str:
    """A duration: "0.42 s", "12.3 s", "4 min 5 s"."""
    if value < 10:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"
