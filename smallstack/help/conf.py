"""The ``SMALLSTACK_HELP`` setting (a dict), with its defaults.

- ``DIRS``: the project's own documentation directories (paths), read after the shipped
  documents; each holds one sub-folder per section with ``.md`` files in it.
- ``BUILTIN_DOCS``: include the documents that ship with SmallStack (``help/docs/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

#: The documents that ship with the app.
BUILTIN_DIR = Path(__file__).resolve().parent / "docs"

DEFAULTS: dict[str, Any] = {
    "DIRS": (),
    "BUILTIN_DOCS": True,
}


def get(name: str) -> Any:
    """One help setting, falling back to its default."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown SMALLSTACK_HELP setting {name!r}")
    value = getattr(settings, "SMALLSTACK_HELP", {})
    return value.get(name, DEFAULTS[name]) if isinstance(value, dict) else DEFAULTS[name]


def directories() -> list[Path]:
    """Where documents are read from, in order: the shipped ones, then ``DIRS``.

    A later directory's document replaces an earlier one with the same section and slug.
    Entries that are not paths are left out here (the system check reports them).
    """
    found = [BUILTIN_DIR] if get("BUILTIN_DOCS") is not False else []
    dirs = get("DIRS")
    if isinstance(dirs, (list, tuple)):
        found += [Path(d) for d in dirs if isinstance(d, str | Path)]
    return found
