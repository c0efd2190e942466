"""The Explorer's pages: access, browsing, bad parameters, CRUD with CSRF, read-only models."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from explorer.registry import explorer
from project.sales.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = "/smallstack/explorer/sales/order/"


@pytest.fixture
def csrf_client(staff_user):
    """A client that, like a browser, must send the CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    return client


@pytest.fixture
def orders():
    """Seven orders with known customers, amounts and creation times (newest: Fox)."""
    now = timezone.now()
    rows = [
        ("Acme Corp", "120.00", "open"),
        ("Globex", "75.50", "shipped"),
        ("Acme Labs", "300.00", "cancelled"),
        ("Initech", "12.25", "open"),
        ("Hooli", "980.00", "shipped"),
        ("Wayne", "44.00", "open"),
        ("Fox", "5.00", "shipped"),
    ]
    return [
        Order.objects.create(
            customer=customer,
            amount=Decimal(amount),
            status=status,
            created=now - timedelta(hours=len(rows) - index),
        )
        for index, (customer, amount, status) in enumerate(rows)
    ]


@pytest.fixture
def readonly_groups():
    class GroupAdmin:
        list_display = ["name"]
        search_fields = ["name"]

    explorer.register(Group, GroupAdmin, group="Accounts", readonly=True)
    yield
    explorer.unregister(Group)


def _cells(html: str, column: int) -> list[str]:
    """The text of one column of the list table's body."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    values = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        values.append(re.sub(r"<[^>]+>", "", cells[column]).strip())
    return values


# -- access ---------------------------------------------------------------------------------

PAGES = [
    "/smallstack/explorer/",
    ORDERS,
    f"{ORDERS}add/",
    f"{ORDERS}1/",
    f"{ORDERS}1/edit/",
    f"{ORDERS}1/delete/",
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_is_redirected_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_non_staff_is_forbidden(client, plain_user, path):
    client.force_login(plain_user)
    assert client.get(path).status_code == 403


def test_non_staff_cannot_write(plain_user, orders):
    client = Client()
    client.force_login(plain_user)
    target = orders[0]
    assert client.post(f"{ORDERS}{target.pk}/delete/").status_code == 403
    assert client.post(f"{ORDERS}add/", {"customer": "x"}).status_code == 403
    assert Order.objects.filter(pk=target.pk).exists() and Order.objects.count() == 7


# -- browsing -------------------------------------------------------------------------------


def test_index_lists_models_by_group_with_row_counts(staff_client, orders, readonly_groups):
    Group.objects.create(name="editors")
    html = staff_client.get("/smallstack/explorer/").content.decode()
    assert re.search(r"<h2[^>]*>Sales</h2>", html) and re.search(r"<h2[^>]*>Accounts</h2>", html)
    sales = html.split('data-model="sales.order"', 1)[1].split("</li>", 1)[0]
    assert f'href="{ORDERS}"' in sales and "7 rows" in sales
    groups = html.split('data-model="auth.group"', 1)[1].split("</li>", 1)[0]
    assert "1 row<" in groups and "read-only" in groups
    assert 'href="/smallstack/explorer/" aria-current="page"' in html  # the nav link


def test_list_shows_admin_columns_newest_first_and_the_model_widget(staff_client, orders):
    response = staff_client.get(ORDERS)
    html = response.content.decode()
    assert response.status_code == 200
    headers = re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", html)
    assert [re.sub(r"<[^>]+>", "", h) for h in headers] == [
        "ID",
        "Customer",
        "Status",
        "Amount",
        "Created",
    ]
    assert _cells(html, 1) == [o.customer for o in reversed(orders)]  # Meta.ordering -created
    assert _cells(html, 2)[0] == "Shipped"  # choices shown by label
    assert f'href="{ORDERS}{orders[-1].pk}/"' in html  # first column links to the detail page
    # The model's widget sits above the table, evaluated with model_class=Order, linked here.
    card = html.split('data-key="sales.order.orders"', 1)[1].split("</article>", 1)[0]
    assert 'data-state="ok"' in html and "7 orders" in card and "3 open" in card
    assert f'href="{ORDERS}"' in card
    assert html.index('data-key="sales.order.orders"') < html.index("<table")


def test_explorer_list_fields_win_over_list_display(staff_client):
    class GroupAdmin:
        list_display = ["id"]
        explorer_list_fields = ["name", "id"]

    Group.objects.create(name="ops")
    explorer.register(Group, GroupAdmin)
    try:
        html = staff_client.get("/smallstack/explorer/auth/group/").content.decode()
    finally:
        explorer.unregister(Group)
    assert _cells(html, 0) == ["ops"]
    assert "No widgets" not in html and '<section class="grid' not in html  # none attached


def test_search_matches_any_search_field_and_every_word(staff_client, orders):
    html = staff_client.get(ORDERS, {"q": "acme"}).content.decode()
    assert sorted(_cells(html, 1)) == ["Acme Corp", "Acme Labs"]
    assert "2 rows matching “acme”" in html
    html = staff_client.get(ORDERS, {"q": "acme corp"}).content.decode()
    assert _cells(html, 1) == ["Acme Corp"]
    html = staff_client.get(ORDERS, {"q": "OPEN"}).content.decode()  # "=status": exact match
    assert sorted(_cells(html, 1)) == ["Acme Corp", "Initech", "Wayne"]
    html = staff_client.get(ORDERS, {"q": '"corp acme"'}).content.decode()
    assert "Nothing matches" in html


def test_search_text_is_escaped(staff_client, orders):
    Order.objects.create(customer="<script>alert(1)</script>", amount=1)
    html = staff_client.get(ORDERS, {"q": "<script>"}).content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("amount", ["Fox", "Initech", "Wayne", "Globex", "Acme Corp", "Acme Labs", "Hooli"]),
        ("-amount", ["Hooli", "Acme Labs", "Acme Corp", "Globex", "Wayne", "Initech", "Fox"]),
        ("customer", ["Acme Corp", "Acme Labs", "Fox", "Globex", "Hooli", "Initech", "Wayne"]),
    ],
)
def test_ordering_by_a_column(staff_client, orders, order, expected):
    html = staff_client.get(ORDERS, {"o": order}).content.decode()
    assert _cells(html, 1) == expected
    column = order.lstrip("-")
    direction = "descending" if order.startswith("-") else "ascending"
    assert re.search(rf'aria-sort="{direction}"><a href="\?o=-?{column}"', html)


def test_pagination_keeps_search_and_ordering(staff_client, orders, monkeypatch):
    monkeypatch.setattr(explorer.get_model_info(Order), "admin_class", _PerPage3)
    first = staff_client.get(ORDERS, {"o": "amount"}).content.decode()
    assert _cells(first, 1) == ["Fox", "Initech", "Wayne"]
    assert "Page 1 of 3 · rows 1\u20133" in first and 'href="?o=amount&amp;page=2"' in first
    second = staff_client.get(ORDERS, {"o": "amount", "page": 2}).content.decode()
    assert _cells(second, 1) == ["Globex", "Acme Corp", "Acme Labs"]
    assert 'href="?o=amount&amp;page=1" rel="prev"' in second
    last = staff_client.get(ORDERS, {"o": "amount", "page": 3}).content.decode()
    assert _cells(last, 1) == ["Hooli"] and 'rel="next"' not in last
    searched = staff_client.get(ORDERS, {"q": "acme"}).content.decode()
    assert "Page 1" not in searched  # two matches fit on one page


class _PerPage3:
    list_display = ["id", "customer", "amount"]
    search_fields = ["customer"]
    list_per_page = 3


def test_detail_shows_every_field(staff_client, orders):
    order = orders[0]
    html = staff_client.get(f"{ORDERS}{order.pk}/").content.decode()
    fields = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html))
    assert fields["Customer"] == "Acme Corp" and fields["Status"] == "Open"
    assert fields["Amount"] == "120.00" and fields["ID"] == str(order.pk)
    assert f'href="{ORDERS}{order.pk}/edit/"' in html
    assert f'href="{ORDERS}{order.pk}/delete/"' in html


# -- bad parameters: 400/404 with a message, never 500 --------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"o": "bogus"}, 400, "Cannot order by &#x27;bogus&#x27;: sortable columns are id"),
        ({"o": "-"}, 400, "Cannot order by"),
        ({"o": "--amount"}, 400, "Cannot order by"),
        ({"page": "abc"}, 400, "?page= must be a whole number"),
        ({"page": "0"}, 400, "?page= must be 1 or more"),
        ({"page": "-3"}, 400, "?page= must be 1 or more"),
        ({"page": "99"}, 404, "Page 99 does not exist: the list has 1 page."),
        ({"q": "x" * 201}, 400, "longer than 200 characters"),
        ({"q": '"unterminated'}, 200, None),
    ],
)
def test_bad_list_parameters(staff_client, orders, query, status, message):
    response = staff_client.get(ORDERS, query)
    assert response.status_code == status
    if message:
        assert message in response.content.decode()
        assert f'<a href="{ORDERS}">Back to orders</a>' in response.content.decode()


def test_searching_a_model_without_search_fields_is_a_400(staff_client):
    explorer.register(Permission)
    try:
        response = staff_client.get("/smallstack/explorer/auth/permission/", {"q": "add"})
        unsearched = staff_client.get("/smallstack/explorer/auth/permission/")
    finally:
        explorer.unregister(Permission)
    assert response.status_code == 400 and "are not searchable" in response.content.decode()
    assert unsearched.status_code == 200 and 'role="search"' not in unsearched.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/smallstack/explorer/sales/nothing/",
        "/smallstack/explorer/sessions/session/",  # a real model that is not registered
        f"{ORDERS}999999/",
        f"{ORDERS}not-a-number/",
        f"{ORDERS}999999/edit/",
        f"{ORDERS}999999/delete/",
    ],
)
def test_unknown_models_and_objects_are_404(staff_client, path):
    response = staff_client.get(path)
    assert response.status_code == 404
    assert "registered with the Explorer" in response.content.decode() or (
        "primary key" in response.content.decode()
    )


# -- CRUD with CSRF -------------------------------------------------------------------------


def hidden_inputs(html: str) -> dict[str, str]:
    """Name and value of every hidden input in ``html``."""
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)
    return {name: unescape(value) for name, value in found}


def _token(client: Client, path: str) -> str:
    return _hidden(client, path)["csrfmiddlewaretoken"]


def _hidden(client: Client, path: str) -> dict[str, str]:
    """The hidden inputs of the form at ``path`` (CSRF token, and the row's version if any)."""
    response = client.get(path)
    assert response.status_code == 200
    return hidden_inputs(response.content.decode())


def test_create_needs_the_csrf_token_then_saves(csrf_client):
    data = {"customer": "Tyrell", "amount": "99.90", "status": "open", "created": "2026-01-02"}
    assert csrf_client.post(f"{ORDERS}add/", data).status_code == 403  # no token
    assert not Order.objects.exists()

    token = _token(csrf_client, f"{ORDERS}add/")
    response = csrf_client.post(f"{ORDERS}add/", {**data, "csrfmiddlewaretoken": token})
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{ORDERS}{order.pk}/"
    assert (order.customer, order.amount, order.status) == ("Tyrell", Decimal("99.90"), "open")
    page = csrf_client.get(response["Location"]).content.decode()
    assert "was created" in page


def test_invalid_form_is_a_400_with_field_errors_and_saves_nothing(csrf_client):
    token = _token(csrf_client, f"{ORDERS}add/")
    response = csrf_client.post(
        f"{ORDERS}add/",
        {"customer": "", "amount": "lots", "status": "lost", "csrfmiddlewaretoken": token},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "This field is required." in html and "Enter a number." in html
    assert "Select a valid choice. lost is not one of the available choices." in html
    assert 'value="lots"' in html  # the input is kept
    assert not Order.objects.exists()


def test_edit_updates_the_object(csrf_client, orders):
    order = orders[0]
    path = f"{ORDERS}{order.pk}/edit/"
    hidden = _hidden(csrf_client, path)
    form = csrf_client.get(path).content.decode()
    assert 'value="Acme Corp"' in form
    data = {"customer": "Acme Corporation", "amount": "130.00", "status": "shipped"}
    data |= {"created": "2026-03-04 05:06:07", **hidden}
    tokenless = {k: v for k, v in data.items() if k != "csrfmiddlewaretoken"}
    assert csrf_client.post(path, tokenless).status_code == 403
    order.refresh_from_db()
    assert order.customer == "Acme Corp"  # the token-less POST changed nothing
    response = csrf_client.post(path, data)
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.customer, order.status, order.amount) == (
        "Acme Corporation",
        "shipped",
        Decimal("130.00"),
    )


def test_delete_asks_first_and_deletes_only_on_post(csrf_client, orders):
    order = orders[0]
    path = f"{ORDERS}{order.pk}/delete/"
    confirm = csrf_client.get(path)
    assert confirm.status_code == 200 and "will be deleted permanently" in confirm.content.decode()
    assert Order.objects.filter(pk=order.pk).exists()  # GET deletes nothing
    assert csrf_client.post(path).status_code == 403  # no CSRF token
    assert Order.objects.filter(pk=order.pk).exists()

    response = csrf_client.post(path, _hidden(csrf_client, path))
    assert response.status_code == 302 and response["Location"] == ORDERS
    assert not Order.objects.filter(pk=order.pk).exists()
    assert "was deleted" in csrf_client.get(ORDERS).content.decode()


def test_write_pages_refuse_other_methods(staff_client, orders):
    assert staff_client.put(f"{ORDERS}{orders[0].pk}/delete/").status_code == 405
    assert staff_client.delete(f"{ORDERS}{orders[0].pk}/edit/").status_code == 405


# -- read-only registrations ----------------------------------------------------------------


def test_readonly_models_offer_list_and_detail_only(staff_client, readonly_groups):
    group = Group.objects.create(name="auditors")
    base = "/smallstack/explorer/auth/group/"
    listing = staff_client.get(base)
    assert listing.status_code == 200 and "auditors" in listing.content.decode()
    assert f'href="{base}add/"' not in listing.content.decode()
    detail = staff_client.get(f"{base}{group.pk}/")
    assert detail.status_code == 200 and "/edit/" not in detail.content.decode()

    for path in (f"{base}add/", f"{base}{group.pk}/edit/", f"{base}{group.pk}/delete/"):
        response = staff_client.get(path)
        assert response.status_code == 403
        assert "read-only in the Explorer" in response.content.decode()
        assert staff_client.post(path, {"name": "changed"}).status_code == 403
    group.refresh_from_db()
    assert group.name == "auditors" and Group.objects.count() == 1


def test_a_delete_blocked_by_protected_rows_is_a_409_that_offers_no_delete(csrf_client, orders):
    from django.db.models import ProtectedError
    from django.db.models.signals import pre_delete

    def protect(sender, instance, **kwargs):
        raise ProtectedError("referenced", {orders[1], orders[2]})

    pre_delete.connect(protect, sender=Order)
    try:
        path = f"{ORDERS}{orders[0].pk}/delete/"
        response = csrf_client.post(path, _hidden(csrf_client, path))
    finally:
        pre_delete.disconnect(protect, sender=Order)
    html = response.content.decode()
    assert response.status_code == 409
    assert "<h1>This order cannot be deleted</h1>" in html
    expected = f"Order #{orders[1].pk} · Globex, Order #{orders[2].pk} · Acme Labs."
    assert f"cannot be deleted. It cannot be deleted while these refer to it: {expected}" in html
    body = html.split('class="crumbs"', 1)[1]
    assert "will be deleted permanently" not in body and "Yes, delete" not in body
    assert "<button" not in body and 'method="post"' not in body
    assert f'<a href="{ORDERS}{orders[0].pk}/">Back to' in body  # only a way back
    assert Order.objects.count() == 7


def _initial(group: Group) -> str:
    return group.name[:1].upper()


_initial.short_description = "Initial"


def test_list_columns_may_be_str_admin_methods_and_callables(staff_client):
    from django.contrib import admin

    class GroupAdmin(admin.ModelAdmin):
        list_display = ["__str__", "shouted", _initial]

        @admin.display(description="Loud name", ordering="name")
        def shouted(self, obj):
            return f"{obj.name.upper()}!"

    for name in ("beta", "alpha", "<b>gamma</b>"):
        Group.objects.create(name=name)
    explorer.register(Group, GroupAdmin)
    try:
        html = staff_client.get("/smallstack/explorer/auth/group/", {"o": "-shouted"}).text
        unsortable = staff_client.get("/smallstack/explorer/auth/group/", {"o": "__str__"})
    finally:
        explorer.unregister(Group)
    headers = [
        re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", html)
    ]
    assert headers == ["Group", "Loud name ▼", "Initial"]
    assert _cells(html, 1) == ["BETA!", "ALPHA!", "&lt;B&gt;GAMMA&lt;/B&gt;!"]
    assert _cells(html, 2) == ["B", "A", "&lt;"]
    assert unsortable.status_code == 400
    assert "sortable columns are shouted" in unsortable.content.decode()


def test_str_that_queries_a_relation_works_on_every_page(staff_client):
    """Permission.__str__ reads its content type: lazy queries must not hit the event loop."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    permission = Permission.objects.first()
    explorer.register(Permission)
    try:
        base = "/smallstack/explorer/auth/permission/"
        pages = [base, f"{base}{permission.pk}/", f"{base}{permission.pk}/edit/"]
        pages.append(f"{base}{permission.pk}/delete/")
        responses = [staff_client.get(path) for path in pages]
    finally:
        explorer.unregister(Permission)
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    label = str(Permission.objects.get(pk=permission.pk))
    assert all(label.replace("|", "") in r.content.decode().replace("|", "") for r in responses)


async def test_list_rows_and_model_widgets_are_read_concurrently(async_client, staff_user):
    """A slow column (on the request's thread) and a slow widget (its own lane) overlap."""
    import asyncio
    import time

    from smallstack.displays import DashboardWidget

    nap = 0.5

    class SlowWidget(DashboardWidget):
        title = "Slow widget"

        async def get_data(self, model_class=None):
            await asyncio.sleep(nap)
            return {"headline": "awake"}

    class GroupAdmin:
        list_display = ["name", "slow"]
        explorer_dashboard_widgets = [SlowWidget()]

        @staticmethod
        def slow(obj):
            time.sleep(nap)
            return "done"

    await Group.objects.acreate(name="one")
    await async_client.aforce_login(staff_user)
    explorer.register(Group, GroupAdmin)
    try:
        await async_client.get("/smallstack/explorer/")  # warm up URLconf and templates
        started = time.perf_counter()
        response = await async_client.get("/smallstack/explorer/auth/group/")
        elapsed = time.perf_counter() - started
    finally:
        explorer.unregister(Group)
    html = response.content.decode()
    assert response.status_code == 200 and "awake" in html and "<td>done</td>" in html
    assert elapsed < 2 * nap * 0.85, f"a {nap} s column and a {nap} s widget took {elapsed:.2f} s"


def test_detail_links_relations_to_registered_models(staff_client):
    from django.contrib.contenttypes.models import ContentType

    permission = Permission.objects.select_related("content_type").first()
    base = "/smallstack/explorer/auth/permission/"
    explorer.register(Permission)
    try:
        unlinked = staff_client.get(f"{base}{permission.pk}/").content.decode()
        explorer.register(ContentType, readonly=True)
        try:
            linked = staff_client.get(f"{base}{permission.pk}/").content.decode()
        finally:
            explorer.unregister(ContentType)
    finally:
        explorer.unregister(Permission)
    target = f"/smallstack/explorer/contenttypes/contenttype/{permission.content_type.pk}/"
    assert f'href="{target}"' in linked
    assert f'href="{target}"' not in unlinked
    assert f"<dd>{permission.content_type}</dd>" in unlinked
