"""System checks (smallstack/checks.py): each fires on its misconfiguration, not on the project."""

from __future__ import annotations

import copy
import threading
import time
from io import StringIO

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command

from smallstack import checks, conf
from tests.widgets import SleepyAsync, SleepySync


def smallstack_messages(id_: str | None = None, **options):
    """The dashboard's check messages (all of them, or those with ``id_``)."""
    return [
        m
        for m in run_checks(**options)
        if m.id.startswith("smallstack.") and (id_ is None or m.id == id_)
    ]


def dashboard_setting(settings, **values):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, **values}


# The project's own configuration


def test_the_projects_configuration_passes_every_check():
    assert smallstack_messages() == []
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)  # raises SystemCheckError on an error
    assert "smallstack." not in out.getvalue() + err.getvalue()
    assert "no issues" in out.getvalue()


def test_checks_run_under_the_smallstack_tag(settings, register):
    register(SleepySync(0, url_name="no-such-url"))
    dashboard_setting(settings, WIDGET_TIMEOUT=0)
    ids = {m.id for m in run_checks(tags=["smallstack"])}
    assert {"smallstack.E001", "smallstack.E005"} <= ids


# smallstack.E001: links that do not reverse


def test_unknown_url_name_is_an_error(register):
    registration = register(SleepySync(0, url_name="no-such-url"))
    [message] = smallstack_messages("smallstack.E001")
    assert isinstance(message, Error)
    assert registration.key in message.msg and "'no-such-url'" in message.msg
    assert message.obj is registration.widget


def test_url_kwargs_that_do_not_fit_are_an_error(register):
    missing = register(SleepySync(0, url_name="smallstack:group"))
    extra = register(
        SleepySync(0, url_name="smallstack:dashboard", url_kwargs={"group": "Monitoring"})
    )
    flagged = {m.obj for m in smallstack_messages("smallstack.E001")}
    assert flagged == {missing.widget, extra.widget}


def test_default_url_name_of_a_registration_is_checked_too(register):
    registration = register(SleepySync(0), default_url_name="explorer:nowhere")
    [message] = smallstack_messages("smallstack.E001")
    assert registration.key in message.msg and "default_url_name" in message.msg


def test_links_that_reverse_pass(register):
    register(SleepySync(0, url_name="smallstack:group", url_kwargs={"group": "Monitoring"}))
    register(SleepySync(0, url_name="admin:auth_user_changelist"))
    register(
        SleepySync(0), default_url_name="smallstack:app", default_url_kwargs={"app_label": "x"}
    )
    assert smallstack_messages("smallstack.E001") == []


def test_url_check_follows_the_urlconf(register, settings):
    registration = register(SleepySync(0, url_name="smallstack:dashboard"))
    assert smallstack_messages("smallstack.E001") == []
    settings.ROOT_URLCONF = "explorer.urls"  # a URLconf without the smallstack namespace
    flagged = [m.obj for m in smallstack_messages("smallstack.E001")]
    assert registration.widget in flagged


def test_url_check_is_limited_to_the_apps_given(register):
    from django.apps import apps

    register(SleepySync(0, url_name="no-such-url"))  # app label "tests"
    assert smallstack_messages("smallstack.E001", app_configs=[apps.get_app_config("auth")]) == []


# smallstack.E002: card templates


def test_template_removed_by_settings_is_an_error(register, settings):
    registration = register(SleepySync(0, template_name="brokencards/custom.html"))
    assert smallstack_messages("smallstack.E002") == []

    templates = copy.deepcopy(settings.TEMPLATES)
    tests_dir = settings.BASE_DIR / "tests" / "templates"
    assert tests_dir in templates[0]["DIRS"]
    templates[0]["DIRS"] = [d for d in templates[0]["DIRS"] if d != tests_dir]
    settings.TEMPLATES = templates
    [message] = smallstack_messages("smallstack.E002")
    assert isinstance(message, Error)
    assert registration.key in message.msg
    assert "no template 'brokencards/custom.html'" in message.msg
    assert "template_name" in message.msg


def test_template_changed_after_registration_is_an_error(register):
    missing = register(SleepySync(0))
    broken = register(SleepySync(0))
    missing.widget.widget_type = "no-such-type"
    broken.widget.template_name = "brokencards/syntax-error.html"
    messages = {m.obj: m.msg for m in smallstack_messages("smallstack.E002")}
    assert set(messages) == {missing.widget, broken.widget}
    assert "smallstack/widgets/no-such-type.html" in messages[missing.widget]
    assert "widget_type 'no-such-type'" in messages[missing.widget]
    assert "does not compile" in messages[broken.widget]


# smallstack.W001: thread pool against the sync widgets of one page


def pool_warnings(about: str) -> list[Warning]:
    return [m for m in smallstack_messages("smallstack.W001") if about in m.msg]


def test_group_page_with_more_sync_widgets_than_threads_warns(register, group, settings):
    dashboard_setting(settings, THREAD_POOL_SIZE=2)
    keys = [register(SleepySync(0, on_dashboard=False)).key for _ in range(3)]
    register(SleepyAsync(0, on_dashboard=False))  # async widgets need no thread
    [message] = pool_warnings(f"group page {group!r}")
    assert isinstance(message, Warning)
    assert "3 sync widgets" in message.msg and "THREAD_POOL_SIZE is 2" in message.msg
    assert all(key in message.msg for key in keys)
    assert "at least 3" in message.hint


def test_as_many_sync_widgets_as_threads_is_quiet(register, group, settings):
    dashboard_setting(settings, THREAD_POOL_SIZE=2)
    for _ in range(2):
        register(SleepySync(0, on_dashboard=False))
    for _ in range(3):
        register(SleepyAsync(0, on_dashboard=False))
    assert pool_warnings(f"group page {group!r}") == []


def test_main_dashboard_and_app_pages_are_counted(register, settings):
    dashboard_setting(settings, THREAD_POOL_SIZE=2)
    on_main = [register(SleepySync(0), group=f"own-group-{i}") for i in range(3)]
    [main] = pool_warnings("main dashboard")
    assert all(r.key in main.msg for r in on_main)
    [app] = pool_warnings("app page 'tests'")
    assert all(r.key in app.msg for r in on_main)
    assert not any(pool_warnings(f"group page 'own-group-{i}'") for i in range(3))


def test_widgets_off_the_main_dashboard_do_not_count_there(register, settings):
    dashboard_setting(settings, THREAD_POOL_SIZE=3)
    for i in range(3):
        register(SleepySync(0, on_dashboard=False), group=f"own-group-{i}")
    assert pool_warnings("main dashboard") == []


# smallstack.E003-E005: the SMALLSTACK_DASHBOARD setting


def test_setting_that_is_not_a_dict_is_an_error(settings):
    settings.SMALLSTACK_DASHBOARD = [("WIDGET_TIMEOUT", 3)]
    [message] = smallstack_messages()
    assert message.id == "smallstack.E003" and "list" in message.msg


def test_the_widget_loops_watchdog_outlives_a_setting_it_cannot_read(settings):
    from smallstack.engine import widget_loop

    assert widget_loop.loop.is_running()
    [watchdog] = [t for t in threading.enumerate() if t.name == "smallstack-widget-watchdog"]
    settings.SMALLSTACK_DASHBOARD = [("LOOP_BLOCK_LIMIT", 1)]  # E003: not a dict
    time.sleep(0.3)  # several rounds of the watchdog, each reading LOOP_BLOCK_LIMIT
    assert watchdog.is_alive()


def test_unknown_key_is_an_error_naming_the_closest_known_one(settings):
    dashboard_setting(settings, WIDGET_TIMOUT=5, SOMETHING_ELSE=1)
    messages = {m.msg: m for m in smallstack_messages("smallstack.E004")}
    assert len(messages) == 2
    [typo] = [m for msg, m in messages.items() if "'WIDGET_TIMOUT'" in msg]
    assert "Did you mean 'WIDGET_TIMEOUT'?" in typo.hint
    assert all(key in typo.hint for key in conf.DEFAULTS)
    [other] = [m for msg, m in messages.items() if "'SOMETHING_ELSE'" in msg]
    assert "Did you mean" not in other.hint


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WIDGET_TIMEOUT", 0),
        ("WIDGET_TIMEOUT", -1.5),
        ("WIDGET_TIMEOUT", "3"),
        ("WIDGET_TIMEOUT", float("nan")),
        ("THREAD_POOL_SIZE", 0),
        ("THREAD_POOL_SIZE", 4.5),
        ("THREAD_POOL_SIZE", True),
        ("CACHE", "no-such-cache"),
        ("STALE_TTL", -1),
        ("BUILTIN_WIDGETS", "yes"),
        ("RENDER_BUDGET", -0.1),
        ("LOCK_URL", "localhost:6379"),
        ("LOCK_URL", None),
        ("RETRY_AFTER", -1),
        ("MAX_DATA_BYTES", 0),
        ("LOOP_BLOCK_LIMIT", 0),
        ("LOOP_BLOCK_COOLDOWN", -1),
        ("LIVE_MAX_MESSAGE", "4096"),
        ("API_TOKEN_CACHE", -5),
    ],
)
def test_bad_value_of_a_known_key_is_an_error(settings, key, value):
    dashboard_setting(settings, **{key: value})
    [message] = smallstack_messages()
    assert message.id == "smallstack.E005"
    assert f"[{key!r}] is {value!r}" in message.msg
    assert repr(conf.DEFAULTS[key]) in message.hint


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WIDGET_TIMEOUT", 0.25),
        ("THREAD_POOL_SIZE", 64),
        ("CACHE", "default"),
        ("STALE_TTL", None),
        ("STALE_TTL", 0),
        ("BUILTIN_WIDGETS", False),
        ("RENDER_BUDGET", 0),
        ("LOCK_URL", "redis://localhost:6379/0"),
        ("LOCK_URL", ""),
        ("RETRY_AFTER", 0),
        ("LOOP_BLOCK_COOLDOWN", 0),
        ("API_TOKEN_CACHE", 0),
        ("API_TOKEN_CACHE", 0.5),
    ],
)
def test_good_values_pass(settings, key, value):
    dashboard_setting(settings, **{key: value})
    assert smallstack_messages() == []


def test_every_setting_has_a_value_rule_its_default_satisfies():
    assert set(checks.VALUE_RULES) == set(conf.DEFAULTS)
    for key, default in conf.DEFAULTS.items():
        assert checks.VALUE_RULES[key][0](default), key


# API_TOKEN_CACHE is read through conf


def test_api_token_cache_is_read_through_conf(settings):
    from smallstack import tokens

    assert tokens._cache_seconds() == conf.DEFAULTS["API_TOKEN_CACHE"] == 5
    dashboard_setting(settings, API_TOKEN_CACHE=0.5)
    assert tokens._cache_seconds() == 0.5
