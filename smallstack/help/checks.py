"""System checks for ``SMALLSTACK_HELP`` and the documents it points at.

``help.E001``-``E003``: the setting itself. ``help.W001``: a docs directory that cannot be
listed (missing, not a directory, no permission). ``help.W002``: a document that is skipped
(unreadable, not UTF-8, a duplicate slug, a front matter order that is not a number). The pages
keep working in both cases: they show what they could read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Warning, register

from smallstack.conf import check_settings_dict
from smallstack.help import conf
from smallstack.help.library import library


def _paths(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, str | os.PathLike) and str(v) for v in value
    )


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "DIRS": (_paths, "a list of directory paths"),
    "BUILTIN_DOCS": (lambda v: isinstance(v, bool), "True or False"),
}


@register("help")
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    return check_settings_dict(
        "SMALLSTACK_HELP", conf.DEFAULTS, RULES, ("help.E001", "help.E002", "help.E003")
    )


@register("help")
def check_documents(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Reads every document (which also fills the rendering cache) and reports what it skipped."""
    messages: list[CheckMessage] = []
    for problem in library.index().problems:
        if problem.kind == "directory":
            messages.append(
                Warning(
                    f"Help & Docs cannot read the docs directory {problem.path}: "
                    f"{problem.message}.",
                    hint="Fix the path in SMALLSTACK_HELP['DIRS'] or create the directory; "
                    "its documents are left out until then.",
                    obj="settings.SMALLSTACK_HELP",
                    id="help.W001",
                )
            )
        else:
            messages.append(
                Warning(
                    f"Help & Docs skips the document {problem.path}: {problem.message}.",
                    obj="settings.SMALLSTACK_HELP",
                    id="help.W002",
                )
            )
    return messages
