"""``check --deploy`` sees project/middleware.py's subclasses as Django's middleware."""

from __future__ import annotations

import importlib
import os
import re
import secrets

import pytest
from django.conf import settings
from django.core import checks
from django.test import override_settings

from project import checks as project_checks
from tests.servers import run_manage

SECURITY = "project.middleware.SecurityMiddleware"
XFRAME = "project.middleware.XFrameOptionsMiddleware"
CSRF = "project.middleware.CsrfViewMiddleware"
SESSION = "project.middleware.SessionMiddleware"
#: Settings that turn off the warnings the security middleware gates.
HARDENED = {
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_SSL_REDIRECT": True,
}


def deploy_warnings() -> set[str]:
    """The ids of the security and project checks, deploy checks included, for the settings."""
    found = checks.run_checks(
        include_deployment_checks=True, tags=[checks.Tags.security], databases=None
    )
    return {message.id for message in found}


def without(path: str) -> list[str]:
    assert path in settings.MIDDLEWARE
    return [entry for entry in settings.MIDDLEWARE if entry != path]


def test_manage_check_deploy_with_the_shipped_settings(tmp_path):
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "DJANGO_", "SMALLSTACK_", "DEBUG", "DATABASE_URL"))
    }
    environ.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="example.com",
        SMALLSTACK_DATA_DIR=str(tmp_path),
    )
    completed = run_manage(environ, "check", "--deploy")
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    reported = set(re.findall(r"\((\w+\.[WE]\d+)\)", output))
    # The subclasses count as the security, clickjacking and CSRF middleware ...
    assert not reported & {"security.W001", "security.W002", "security.W003"}, output
    # ... so the warnings they gate show up: no HSTS, no SSL redirect (both off unless the
    # environment turns them on, as deploy/env.example does).
    assert {"security.W004", "security.W008"} <= reported, output
    assert "project.E001" not in reported, output


def test_hsts_and_ssl_redirect_warnings_follow_the_settings(settings):
    settings.SECURE_HSTS_SECONDS = 0
    settings.SECURE_SSL_REDIRECT = False
    reported = deploy_warnings()
    assert {"security.W004", "security.W008"} <= reported
    assert not reported & {"security.W001", "security.W002", "security.W003", "project.E001"}

    for name, value in HARDENED.items():
        setattr(settings, name, value)
    reported = deploy_warnings()
    assert not reported & {"security.W004", "security.W005", "security.W008", "security.W021"}


def test_hsts_subdomains_and_preload_are_checked_for_the_subclass(settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = False
    settings.SECURE_HSTS_PRELOAD = False
    assert {"security.W005", "security.W021"} <= deploy_warnings()


@pytest.mark.parametrize(
    "removed, missing, gated",
    [
        (SECURITY, "security.W001", {"security.W004", "security.W008"}),
        (XFRAME, "security.W002", set()),
        (CSRF, "security.W003", {"security.W016"}),
    ],
)
def test_a_middleware_really_missing_is_still_reported(settings, removed, missing, gated):
    settings.CSRF_COOKIE_SECURE = False  # W016 is raised only with the CSRF middleware
    settings.MIDDLEWARE = without(removed)
    reported = deploy_warnings()
    assert missing in reported
    assert not reported & gated  # and what it would have gated is not
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, removed]
    assert missing not in deploy_warnings()


def test_the_session_cookie_checks_see_the_session_middleware(settings):
    settings.SESSION_COOKIE_SECURE = False
    settings.SESSION_COOKIE_HTTPONLY = False
    # The sessions app (W010/W013) and the middleware (W011/W014) both: W012/W015.
    assert {"security.W012", "security.W015"} <= deploy_warnings()
    settings.MIDDLEWARE = without(SESSION)
    reported = deploy_warnings()
    assert {"security.W010", "security.W013"} <= reported
    assert not reported & {"security.W011", "security.W012", "security.W014", "security.W015"}


def test_django_paths_other_subclasses_and_broken_entries():
    installed = project_checks.middleware_installed
    stock = "django.middleware.security.SecurityMiddleware"
    assert installed(stock, [stock])
    assert installed(stock, ["no.such.Module", SECURITY])
    assert not installed(stock, ["no.such.Module", XFRAME, "django.middleware.gzip.GZipMiddleware"])
    assert not installed(stock, [])


# -- the reliance on Django internals -----------------------------------------------------


@pytest.mark.parametrize("module_name, name, class_path", project_checks.PREDICATES)
def test_this_django_still_has_the_predicates_the_checks_use(module_name, name, class_path):
    """Fails when Django renames, removes or changes a predicate project/checks.py adapts."""
    predicate = getattr(importlib.import_module(module_name), name)
    assert getattr(predicate, project_checks.ADAPTED) == class_path
    original = predicate.__wrapped__
    assert original.__module__ == module_name and original.__name__ == name
    with_stock = {"MIDDLEWARE": [class_path]}
    with_subclass = {"MIDDLEWARE": settings.MIDDLEWARE}  # project.middleware.*, no stock path
    with override_settings(**with_stock):
        assert original() is True  # the stock path, as Django checks it
        assert predicate() is True
    with override_settings(**with_subclass):
        assert original() is False  # Django alone misses the subclass ...
        assert predicate() is True  # ... the adapted predicate does not
    assert project_checks.check_adapted_predicates() == []


def test_a_changed_django_predicate_is_a_deploy_check_error(monkeypatch):
    base = importlib.import_module("django.core.checks.security.base")
    monkeypatch.delattr(base, "_xframe_middleware")
    try:
        project_checks.install()
        [error] = project_checks.check_adapted_predicates()
        assert error.id == "project.E001" and error.level == checks.ERROR
        assert "django.core.checks.security.base._xframe_middleware()" in error.msg
        assert "no longer exists" in error.msg
        assert "project/checks.py" in error.hint
        # Registered as a deploy check, so `check --deploy` fails with it.
        deploy = checks.registry.registry.get_checks(include_deployment_checks=True)
        assert project_checks.check_adapted_predicates in deploy
    finally:
        monkeypatch.undo()
        project_checks.install()
    assert project_checks.check_adapted_predicates() == []


def test_a_predicate_that_takes_arguments_now_is_reported(monkeypatch):
    csrf = importlib.import_module("django.core.checks.security.csrf")
    monkeypatch.setattr(csrf, "_csrf_middleware", lambda middleware: True)
    try:
        project_checks.install()
        [error] = project_checks.check_adapted_predicates()
        assert "_csrf_middleware(): it takes arguments now" in error.msg
    finally:
        monkeypatch.undo()
        project_checks.install()
    assert project_checks.check_adapted_predicates() == []
