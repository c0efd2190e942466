"""The Explorer refuses lost updates: writes to a row that changed since the page was shown."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape

import pytest
from django.db import connections
from django.test import Client

from explorer import views
from explorer.versions import VERSION_FIELD, changes, read_token, snapshot
from project.sales.models import Order
from tests.test_explorer_pages import ORDERS, hidden_inputs

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["customer", "amount", "status", "created"]


@pytest.fixture
def order():
    return Order.objects.create(
        customer="Acme Corp",
        amount=Decimal("120.00"),
        status="open",
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@pytest.fixture
def other_staff(django_user_model):
    return django_user_model.objects.create_user("other", password="pw-other-123", is_staff=True)


def _browser(user) -> Client:
    """A signed-in client that, like a browser, must send the CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def alice(staff_user):
    return _browser(staff_user)


@pytest.fixture
def bob(other_staff):
    return _browser(other_staff)


INPUT = re.compile(r'<input type="(?:text|number)" name="([^"]+)" value="([^"]*)"')
SELECT = re.compile(r'<select name="([^"]+)"[^>]*>(.*?)</select>', re.S)


def _form(html: str) -> dict[str, str]:
    """What a browser submits from the page's form as it is: inputs and selected options."""
    data = hidden_inputs(html)
    for name, value in INPUT.findall(html):
        data[name] = unescape(value)
    for name, options in SELECT.findall(html):
        data[name] = re.search(r'<option value="([^"]*)" selected>', options)[1]
    return data


def _open(client: Client, path: str) -> dict[str, str]:
    response = client.get(path)
    assert response.status_code == 200
    return _form(response.content.decode())


def _changes(html: str) -> dict[str, tuple[str, str, str]]:
    """The conflict notice's rows: field name -> (label, seen, now), as in the HTML."""
    rows = re.findall(
        r'<tr data-field="([^"]+)"><th scope="row">(.*?)</th><td>(.*?)</td><td>(.*?)</td></tr>',
        html,
    )
    return {name: (label, seen, now) for name, label, seen, now in rows}


def _version(order: Order) -> str:
    return snapshot(order, FIELDS).version


# -- editing --------------------------------------------------------------------------------


def test_the_second_of_two_saves_is_a_409_that_keeps_its_input(alice, bob, order):
    path = f"{ORDERS}{order.pk}/edit/"
    alice_form, bob_form = _open(alice, path), _open(bob, path)
    assert alice_form[VERSION_FIELD] == bob_form[VERSION_FIELD]

    saved = alice.post(path, {**alice_form, "customer": "Acme <b>Alice</b>"})
    assert saved.status_code == 302
    refused = bob.post(path, {**bob_form, "customer": "Acme Bob", "status": "shipped"})
    html = refused.content.decode()

    assert refused.status_code == 409
    order.refresh_from_db()
    assert (order.customer, order.status) == ("Acme <b>Alice</b>", "open")  # Alice's change kept
    assert "Someone changed this order while you were editing it, so nothing was saved." in html
    assert _changes(html) == {
        "customer": ("Customer", "Acme Corp", "Acme &lt;b&gt;Alice&lt;/b&gt;")
    }
    assert "<b>Alice</b>" not in html
    resubmit = _form(html)  # Bob's input is still in the form, with the row's new version
    assert resubmit["customer"] == "Acme Bob" and resubmit["status"] == "shipped"
    assert resubmit[VERSION_FIELD] != bob_form[VERSION_FIELD]

    again = bob.post(path, resubmit)  # a deliberate second submit saves
    assert again.status_code == 302 and again["Location"] == f"{ORDERS}{order.pk}/"
    order.refresh_from_db()
    assert (order.customer, order.status) == ("Acme Bob", "shipped")


def test_an_unchanged_row_saves_and_a_stale_resubmit_is_refused(alice, order):
    path = f"{ORDERS}{order.pk}/edit/"
    form = _open(alice, path)
    assert alice.post(path, {**form, "amount": "130.00"}).status_code == 302
    stale = alice.post(path, {**form, "amount": "140.00"})  # e.g. the browser's back button
    assert stale.status_code == 409
    assert _changes(stale.content.decode()) == {"amount": ("Amount", "120.00", "130.00")}
    order.refresh_from_db()
    assert order.amount == Decimal("130.00")


def test_a_conflict_with_an_invalid_input_shows_both(alice, bob, order):
    path = f"{ORDERS}{order.pk}/edit/"
    alice_form, bob_form = _open(alice, path), _open(bob, path)
    assert alice.post(path, {**alice_form, "status": "cancelled"}).status_code == 302
    refused = bob.post(path, {**bob_form, "amount": "lots"})
    html = refused.content.decode()
    assert refused.status_code == 409
    assert _changes(html) == {"status": ("Status", "Open", "Cancelled")}
    assert "Enter a number." in html and 'value="lots"' in html


def test_concurrent_saves_with_the_same_version_let_only_one_win(
    staff_user, other_staff, order, monkeypatch
):
    """Two real threads (each with its own database connection) submit the same version."""
    path = f"{ORDERS}{order.pk}/edit/"
    clients = [_browser(staff_user), _browser(other_staff)]
    forms = [_open(client, path) for client in clients]
    locked_row = views._locked_row

    def slow_locked_row(*args, **kwargs):
        row = locked_row(*args, **kwargs)
        time.sleep(0.3)  # widen the window between re-reading the row and saving it
        return row

    monkeypatch.setattr(views, "_locked_row", slow_locked_row)
    start = threading.Barrier(2)
    responses: dict[str, object] = {}

    def submit(client: Client, form: dict[str, str], customer: str) -> None:
        try:
            start.wait(timeout=10)
            responses[customer] = client.post(path, {**form, "customer": customer})
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=submit, args=(client, form, name))
        for client, form, name in zip(clients, forms, ["First", "Second"], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(responses) == 2, "a request did not finish"

    statuses = {name: response.status_code for name, response in responses.items()}
    assert sorted(statuses.values()) == [302, 409], statuses
    winner = next(name for name, status in statuses.items() if status == 302)
    loser = next(name for name, status in statuses.items() if status == 409)
    order.refresh_from_db()
    assert order.customer == winner
    html = responses[loser].content.decode()
    assert _changes(html) == {"customer": ("Customer", "Acme Corp", winner)}
    assert _form(html)["customer"] == loser


# -- deleting -------------------------------------------------------------------------------


def test_deleting_a_row_changed_since_the_confirmation_is_a_409(alice, bob, order):
    edit, delete = f"{ORDERS}{order.pk}/edit/", f"{ORDERS}{order.pk}/delete/"
    confirmation = _open(bob, delete)
    assert alice.post(edit, {**_open(alice, edit), "status": "shipped"}).status_code == 302

    refused = bob.post(delete, confirmation)
    html = refused.content.decode()
    assert refused.status_code == 409
    assert Order.objects.filter(pk=order.pk).exists()
    assert "changed after the page was shown, so it was not deleted" in html
    assert _changes(html) == {"status": ("Status", "Open", "Shipped")}
    again = hidden_inputs(html)  # the page offers to confirm again, with the new version
    assert "Yes, delete</button>" in html and again[VERSION_FIELD] != confirmation[VERSION_FIELD]

    deleted = bob.post(delete, again)
    assert deleted.status_code == 302 and deleted["Location"] == ORDERS
    assert not Order.objects.filter(pk=order.pk).exists()


def test_deleting_with_the_current_version_deletes(alice, order):
    delete = f"{ORDERS}{order.pk}/delete/"
    response = alice.post(delete, _open(alice, delete))
    assert response.status_code == 302
    assert not Order.objects.exists()


# -- rows deleted meanwhile, and unusable versions ------------------------------------------


@pytest.mark.parametrize("page", ["edit", "delete"])
def test_a_post_to_a_row_deleted_meanwhile_is_a_404(alice, order, page):
    path = f"{ORDERS}{order.pk}/{page}/"
    form = _open(alice, path)
    Order.objects.filter(pk=order.pk).delete()
    response = alice.post(path, form)
    assert response.status_code == 404
    assert f"This order (primary key &#x27;{order.pk}&#x27;) no longer exists" in response.text
    assert not Order.objects.exists()


def _garbled(token: str) -> str:
    return token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")


@pytest.mark.parametrize("page", ["edit", "delete"])
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda form, other: form.pop(VERSION_FIELD), "is missing"),
        (lambda form, other: form.update({VERSION_FIELD: ""}), "is missing"),
        (lambda form, other: form.update({VERSION_FIELD: "not-a-version"}), "is malformed"),
        (
            lambda form, other: form.update({VERSION_FIELD: _garbled(form[VERSION_FIELD])}),
            "is malformed",
        ),
        (lambda form, other: form.update({VERSION_FIELD: other}), "is malformed"),  # another row's
    ],
    ids=["absent", "empty", "garbage", "tampered", "other-row"],
)
def test_a_missing_or_malformed_version_is_a_400(alice, order, page, change, problem):
    other = Order.objects.create(customer="Other", amount=1)
    path = f"{ORDERS}{order.pk}/{page}/"
    form = {**_open(alice, path), "customer": "Changed"}
    change(form, _open(alice, f"{ORDERS}{other.pk}/{page}/")[VERSION_FIELD])
    response = alice.post(path, form)
    assert response.status_code == 400
    assert f"The form&#x27;s version field ({VERSION_FIELD}) {problem}" in response.text
    assert "Reload the page and try again." in response.text
    order.refresh_from_db()
    assert order.customer == "Acme Corp"  # neither saved nor deleted


# -- explorer.versions ----------------------------------------------------------------------


def test_a_version_changes_with_the_fields_it_covers_only(order):
    before = snapshot(order, FIELDS)
    assert snapshot(Order.objects.get(pk=order.pk), FIELDS).version == before.version
    assert snapshot(order, ["customer"]).version != before.version
    assert snapshot(order, [*FIELDS, "not_a_model_field"]).version == before.version
    Order.objects.filter(pk=order.pk).update(amount=Decimal("1.00"))
    assert _version(Order.objects.get(pk=order.pk)) != before.version
    assert (
        snapshot(order, ["customer"]).version
        == snapshot(Order.objects.get(pk=order.pk), ["customer"]).version
    )


def test_a_token_round_trips_for_its_row_only(order):
    shown = snapshot(order, FIELDS)
    seen = read_token(shown.token(), order)
    assert seen.version == shown.version and seen.values == shown.values
    other = Order.objects.create(customer="Other", amount=1)
    with pytest.raises(ValueError, match="is malformed"):
        read_token(shown.token(), other)


def test_a_token_depends_on_the_values_only_not_on_the_clock(order, monkeypatch):
    before = snapshot(order, FIELDS).token()
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)  # what a timestamped signature would read
    assert snapshot(Order.objects.get(pk=order.pk), FIELDS).token() == before
    Order.objects.filter(pk=order.pk).update(customer="Acme")
    assert snapshot(Order.objects.get(pk=order.pk), FIELDS).token() != before


def test_changes_fall_back_to_stored_values_when_the_display_is_the_same(order):
    seen = snapshot(order, FIELDS)
    Order.objects.filter(pk=order.pk).update(
        created=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), customer="Acme"
    )
    now = snapshot(Order.objects.get(pk=order.pk), FIELDS)
    found = {change.name: (change.seen, change.now) for change in changes(seen, now)}
    assert found == {
        "customer": ("Acme Corp", "Acme"),
        "created": ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:06+00:00"),
    }
