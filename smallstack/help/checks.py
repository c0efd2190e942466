"""System checks for ``SMALLSTACK_HELP`` and the documents it points at.

``help.E001``-``E003``: the setting itself. ``help.W001``: a docs directory that cannot be
listed (missing, not a directory, no permission). ``help.W002``: a document that is skipped
(unreadable, not UTF-8, a duplicate slug, a front matter order that is not a number). The pages
keep working in both cases: they show what they could read.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

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
    value = getattr(settings, "SMALLSTACK_HELP", {})
    if not isinstance(value, dict):
        return [
            Error(
                f"SMALLSTACK_HELP must be a dict, not {type(value).__name__}.",
                obj="settings.SMALLSTACK_HELP",
                id="help.E001",
            )
        ]
    messages: list[CheckMessage] = []
    for key, given in value.items():
        if key not in conf.DEFAULTS:
            closest = difflib.get_close_matches(str(key), list(conf.DEFAULTS), n=1)
            messages.append(
                Error(
                    f"SMALLSTACK_HELP has an unknown key {key!r}; it has no effect.",
                    hint=(f"Did you mean {closest[0]!r}? " if closest else "")
                    + f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    obj="settings.SMALLSTACK_HELP",
                    id="help.E002",
                )
            )
            continue
        test, description = RULES[key]
        if not test(given):
            messages.append(
                Error(
                    f"SMALLSTACK_HELP[{key!r}] is {given!r}; it must be {description}.",
                    hint=f"Remove it to use the default, {conf.DEFAULTS[key]!r}.",
                    obj="settings.SMALLSTACK_HELP",
                    id="help.E003",
                )
            )
    return messages


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
