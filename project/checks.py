"""Project checks: static files collected; ``check --deploy`` knows project/middleware.py.

**Static files.** With ``DEBUG`` off the static files are served from ``STATIC_ROOT`` only (what
``manage.py collectstatic`` put there), so pages of a server started without that step come out
unstyled. :func:`check_static_files_collected` (``project.W001``) compares ``STATIC_ROOT`` with
what the static file finders offer; ``manage.py check`` reports it, and the ASGI application
(project/asgi.py) logs it when a server process starts (:func:`log_startup_problems`).

**Deployment checks.**

``MIDDLEWARE`` lists event-loop-friendly subclasses of Django's middleware under
``project.middleware.*``. Django's security checks look for its middleware by dotted path
(``"django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE``), so with the
subclasses they would warn that the security, clickjacking and CSRF middleware are missing
(security.W001/W002/W003) and skip every warning those middleware gate: HSTS (W004), the SSL
redirect (W008), nosniff, the referrer and opener policies, X-Frame-Options, the secure and
HttpOnly session cookies (W010-W015) and the secure CSRF cookie (W016).

Django offers no setting or hook for this, so :func:`install` (run by ``ProjectConfig.ready()``)
replaces the four private predicates the checks call with ones that also count a ``MIDDLEWARE``
entry importing to the class or a subclass of it, the rule Django's admin and auth checks already
use. That reliance on Django internals lives here only. If Django renames, removes or changes one
of those predicates, the deploy check :func:`check_adapted_predicates` reports ``project.E001``
naming it, so ``check --deploy`` fails rather than quietly giving wrong answers;
tests/test_deploy_checks.py also fails when the checks stop consulting the predicates.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import django
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

logger = logging.getLogger("project")

#: Tag of the checks a server process runs when it starts (cheap, about serving).
STARTUP_TAG = "project_startup"

#: (module, predicate, the middleware it looks for): every presence test in Django's deploy checks.
PREDICATES = [
    (
        "django.core.checks.security.base",
        "_security_middleware",
        "django.middleware.security.SecurityMiddleware",
    ),
    (
        "django.core.checks.security.base",
        "_xframe_middleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ),
    (
        "django.core.checks.security.csrf",
        "_csrf_middleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ),
    (
        "django.core.checks.security.sessions",
        "_session_middleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
    ),
]

#: Marks a predicate installed by :func:`install`.
ADAPTED = "_counts_subclasses"

_problems: dict[str, str] = {}


def middleware_installed(class_path: str, middleware: Iterable[str] | None = None) -> bool:
    """Whether ``middleware`` (default: ``settings.MIDDLEWARE``) has ``class_path`` or a subclass.

    An entry that does not import is skipped: Django reports it when it builds the handler.
    """
    entries = settings.MIDDLEWARE if middleware is None else middleware
    wanted = None
    for entry in entries:
        if entry == class_path:
            return True
        try:
            candidate = import_string(entry)
            wanted = wanted or import_string(class_path)
        except ImportError:
            continue
        if isinstance(candidate, type) and issubclass(candidate, wanted):
            return True
    return False


def _adapted(original: Callable[[], bool], class_path: str) -> Callable[[], bool]:
    def predicate() -> bool:
        return original() or middleware_installed(class_path)

    predicate.__name__ = original.__name__
    predicate.__qualname__ = original.__qualname__
    predicate.__doc__ = f"{class_path} or a subclass of it is in settings.MIDDLEWARE."
    predicate.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(predicate, ADAPTED, class_path)
    return predicate


def install() -> None:
    """Make Django's middleware-presence predicates count subclasses (idempotent).

    A predicate that is missing or no longer takes no arguments is left alone and recorded
    for :func:`check_adapted_predicates`.
    """
    for module_name, name, class_path in PREDICATES:
        where = f"{module_name}.{name}()"
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            _problems[where] = f"the module {module_name} no longer exists"
            continue
        original = getattr(module, name, None)
        if getattr(original, ADAPTED, None) == class_path:
            _problems.pop(where, None)
            continue
        if not callable(original):
            _problems[where] = "it no longer exists"
            continue
        try:
            parameters = inspect.signature(original).parameters
        except (TypeError, ValueError):
            parameters = {"?": None}
        if parameters:
            _problems[where] = "it takes arguments now"
            continue
        setattr(module, name, _adapted(original, class_path))
        _problems.pop(where, None)


@checks.register(checks.Tags.security, deploy=True)
def check_adapted_predicates(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """project.E001 for each Django predicate :func:`install` could not adapt."""
    errors = []
    for module_name, name, class_path in PREDICATES:
        where = f"{module_name}.{name}()"
        problem = _problems.get(where)
        if problem is None:
            module = importlib.import_module(module_name)
            if getattr(getattr(module, name, None), ADAPTED, None) == class_path:
                continue
            problem = "it is not the adapted version (was project.checks.install() run?)"
        errors.append(
            checks.Error(
                f"Django {django.get_version()} changed {where}: {problem}. The deploy checks "
                f"that depend on whether {class_path} is in MIDDLEWARE cannot see the "
                "project's subclass of it, so their warnings are wrong.",
                hint="Update PREDICATES in project/checks.py to the new Django, or remove the "
                "module if Django now recognises middleware subclasses itself.",
                id="project.E001",
            )
        )
    return errors


# -- static files ---------------------------------------------------------------------------------


def missing_static_files() -> list[str]:
    """Static files the finders offer that are not in ``STATIC_ROOT`` (relative paths)."""
    from django.contrib.staticfiles.finders import get_finders

    root = Path(settings.STATIC_ROOT or "")
    ignore = apps.get_app_config("staticfiles").ignore_patterns  # as collectstatic's default
    missing: set[str] = set()
    for finder in get_finders():
        for path, _storage in finder.list(ignore):
            if not (root / path).is_file():
                missing.add(path)
    return sorted(missing)


# Not tagged "staticfiles": collectstatic runs those checks first, and would warn before copying.
@checks.register(STARTUP_TAG)
def check_static_files_collected(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """project.W001: ``DEBUG`` off, static files served from ``STATIC_ROOT``, and some missing."""
    if (
        settings.DEBUG
        or getattr(settings, "SERVESTATIC_USE_FINDERS", False)
        or not apps.is_installed("django.contrib.staticfiles")
    ):
        return []
    missing = missing_static_files()
    if not missing:
        return []
    return [
        checks.Warning(
            f"{len(missing)} static files are not in STATIC_ROOT ({settings.STATIC_ROOT}), "
            f"e.g. {', '.join(missing[:3])}. With DEBUG off only collected files are served, "
            "so pages would be unstyled.",
            hint="Run 'python manage.py collectstatic --noinput' with the same settings "
            "before starting the server (deploy/Dockerfile does it at build time).",
            id="project.W001",
        )
    ]


def log_startup_problems() -> None:
    """Log what the start-up checks find (a server process runs no system checks itself)."""
    for message in checks.run_checks(tags=[STARTUP_TAG]):
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "%s", message)
