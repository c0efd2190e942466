"""Explorer fields no page shows (``explorer_hidden_fields``) and read pages that refuse writes."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.admin import display as admin_display
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from explorer.registry import explorer
from explorer.versions import read_token

pytestmark = pytest.mark.django_db(transaction=True)

PERMISSIONS = "/smallstack/explorer/auth/permission/"


class PermissionAdmin:
    list_display = ["name", "content_type"]
    search_fields = ["name"]
    explorer_hidden_fields = ["codename"]


@pytest.fixture
def explore():
    """``explore(model, admin_class, **options)``; every model it registered is unregistered."""
    models = []

    def _explore(model, admin_class=None, **options):
        options.setdefault("group", "Hidden tests")
        info = explorer.register(model, admin_class, **options)
        models.append(model)
        return info

    yield _explore
    for model in models:
        if explorer.is_registered(model):
            explorer.unregister(model)


def admin(**attrs) -> type:
    return type("Admin", (), attrs)


# -- registration ------------------------------------------------------------------------------


def test_hidden_fields_are_read_from_the_admin_class_and_leave_the_form(explore):
    info = explore(Permission, PermissionAdmin)
    assert info.hidden_fields == frozenset({"codename"})
    assert "codename" not in info.form_class.base_fields
    assert {"name", "content_type"} <= set(info.form_class.base_fields)


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        (["nope"], "names 'nope', which is not one of its fields"),
        (["id"], "cannot hide the primary key 'id'"),
        ("codename", "must be a list or tuple of field names"),
    ],
)
def test_hidden_fields_must_be_real_non_key_fields(explore, hidden, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        explore(Permission, admin(explorer_hidden_fields=hidden))
    assert not explorer.is_registered(Permission)


@pytest.mark.parametrize(
    ("attrs", "option"),
    [
        ({"list_display": ["name", "codename"]}, "list column 'codename'"),
        ({"search_fields": ["name", "^codename"]}, "search_fields 'codename'"),
        ({"ordering": ["-codename"]}, "ordering 'codename'"),
        ({"fields": ["name", ("content_type", "codename")]}, "fields 'codename'"),
    ],
)
def test_a_path_to_a_hidden_field_is_refused(explore, attrs, option):
    with pytest.raises(ImproperlyConfigured, match=re.escape(option)):
        explore(Permission, admin(**attrs, explorer_hidden_fields=["codename"]))
    assert not explorer.is_registered(Permission)


def test_a_column_through_a_relation_to_a_hidden_field_is_refused(explore):
    explore(ContentType, admin(explorer_hidden_fields=["model"]), readonly=True)
    with pytest.raises(ImproperlyConfigured, match="list column 'content_type__model'"):
        explore(Permission, admin(explorer_list_fields=["name", "content_type__model"]))


def test_a_sortable_method_column_ordering_by_a_hidden_field_is_refused(explore):
    class Sorted:
        explorer_list_fields = ["name", "code"]
        explorer_hidden_fields = ["codename"]

        @admin_display(ordering="codename")
        def code(self, obj):
            return "…"

    with pytest.raises(ImproperlyConfigured, match="admin_order_field of column 'code'"):
        explore(Permission, Sorted)


def test_relation_paths_are_checked_whichever_model_registers_first(explore):
    searches_model = admin(search_fields=["name", "content_type__model"])
    hides_model = admin(explorer_hidden_fields=["model"])

    explore(Permission, searches_model)
    with pytest.raises(ImproperlyConfigured, match=r"auth.Permission's search_fields"):
        explore(ContentType, hides_model)
    assert not explorer.is_registered(ContentType)
    explorer.unregister(Permission)

    explore(ContentType, hides_model)
    with pytest.raises(ImproperlyConfigured, match=r"reaches contenttypes.ContentType.model"):
        explore(Permission, searches_model)
    explore(Permission, admin(search_fields=["name", "content_type__app_label"]))  # visible: fine


# -- pages -------------------------------------------------------------------------------------


@pytest.fixture
def secret_permission(explore):
    """A permission whose codename stands for a secret, registered writable with it hidden."""
    content_type = ContentType.objects.get_for_model(Permission)
    permission = Permission.objects.create(
        name="Can launch", codename="zz-secret-codename-4711", content_type=content_type
    )
    explore(Permission, PermissionAdmin)
    return permission


def test_no_page_or_form_shows_a_hidden_field(staff_client, secret_permission):
    secret, pk = secret_permission.codename, secret_permission.pk
    pages = {
        "list": staff_client.get(PERMISSIONS),
        "search": staff_client.get(PERMISSIONS, {"q": "launch"}),
        "detail": staff_client.get(f"{PERMISSIONS}{pk}/"),
        "add": staff_client.get(f"{PERMISSIONS}add/"),
        "edit": staff_client.get(f"{PERMISSIONS}{pk}/edit/"),
        "delete": staff_client.get(f"{PERMISSIONS}{pk}/delete/"),
    }
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, name
        assert secret not in html, name
        assert 'name="codename"' not in html and "Codename" not in html, name
    assert "Can launch" in pages["detail"].content.decode()
    assert "Can launch" in pages["search"].content.decode()
    # The version tokens are signed, not encrypted: they must not carry the value either.
    for name in ("edit", "delete"):
        token = re.search(r'name="explorer_version" value="([^"]+)"', pages[name].content.decode())
        seen = read_token(unescape(token[1]), secret_permission)
        assert "codename" not in seen.values and "name" in seen.values


def test_searching_or_sorting_by_a_hidden_field_finds_nothing(staff_client, secret_permission):
    found = staff_client.get(PERMISSIONS, {"q": secret_permission.codename})
    assert found.status_code == 200 and "0 rows matching" in found.content.decode()
    sorted_by = staff_client.get(PERMISSIONS, {"o": "codename"})
    assert sorted_by.status_code == 400
    assert "Cannot order by" in sorted_by.content.decode()


def test_editing_keeps_a_hidden_field_as_stored(staff_user, secret_permission):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    url = f"{PERMISSIONS}{secret_permission.pk}/edit/"
    page = client.get(url).content.decode()
    data = {
        name: re.search(rf'name="{name}" value="([^"]+)"', page)[1]
        for name in ("csrfmiddlewaretoken", "explorer_version")
    }
    data |= {
        "name": "Can launch rockets",
        "content_type": secret_permission.content_type_id,
        "codename": "overwritten",  # not a form field: ignored
    }
    assert client.post(url, data).status_code == 302
    secret_permission.refresh_from_db()
    assert secret_permission.name == "Can launch rockets"
    assert secret_permission.codename == "zz-secret-codename-4711"


# -- read pages refuse writes --------------------------------------------------------------------


def test_read_pages_answer_get_and_head_only(staff_client, secret_permission):
    pk = secret_permission.pk
    for path in ("/smallstack/explorer/", PERMISSIONS, f"{PERMISSIONS}{pk}/"):
        assert staff_client.head(path).status_code == 200, path
        for method in (staff_client.post, staff_client.put, staff_client.delete):
            response = method(path)
            assert response.status_code == 405, (method, path)
            assert response["Allow"] == "GET, HEAD"
    secret_permission.refresh_from_db()
    assert secret_permission.name == "Can launch"


def test_read_pages_still_send_anonymous_visitors_to_login(client):
    response = client.post(PERMISSIONS)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
