"""API tokens: hashing, lookup, last-used throttling, management commands and the admin."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smallstack import tokens
from smallstack.models import APIToken

pytestmark = pytest.mark.django_db(transaction=True)

authenticate = async_to_sync(tokens.aauthenticate)


@pytest.fixture
def no_token_cache(settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "API_TOKEN_CACHE": 0}


def test_key_format_and_only_its_hash_is_stored(staff_user):
    token, key = tokens.create_token(staff_user, "monitor")
    assert re.fullmatch(r"ss_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", key)
    assert key.startswith(f"ss_{token.prefix}_")
    row = APIToken.objects.filter(pk=token.pk).values().get()
    assert row["key_hash"] == tokens.hash_key(key)
    secret = key.split("_", 2)[2]
    assert not any(secret in str(value) for value in row.values())


def test_valid_key_authenticates(staff_user):
    token, key = tokens.create_token(staff_user)
    found = authenticate(key)
    assert found is not None and found.pk == token.pk
    assert found.user == staff_user


def test_invalid_keys_are_refused(staff_user):
    token, key = tokens.create_token(staff_user)
    other_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown_prefix = f"ss_{'0' * 8 if token.prefix != '0' * 8 else '1' * 8}_{key.split('_', 2)[2]}"
    for bad in ["", "garbage", key[:-1] + "!", other_secret, unknown_prefix, key + " ", "ss__x"]:
        assert authenticate(bad) is None, bad


def test_revoked_and_expired_keys_are_refused(staff_user):
    revoked, revoked_key = tokens.create_token(staff_user)
    revoked.revoked = timezone.now()
    revoked.save()
    _, expired_key = tokens.create_token(staff_user, expires=timezone.now() - timedelta(seconds=1))
    _, future_key = tokens.create_token(staff_user, expires=timezone.now() + timedelta(days=1))
    assert authenticate(revoked_key) is None
    assert authenticate(expired_key) is None
    assert authenticate(future_key) is not None


def test_last_used_is_written_at_most_once_a_minute(staff_user, no_token_cache):
    token, key = tokens.create_token(staff_user)
    with CaptureQueriesContext(connection) as first:
        authenticate(key)
    assert any(q["sql"].startswith("UPDATE") for q in first.captured_queries)
    stamped = APIToken.objects.get(pk=token.pk).last_used
    assert stamped is not None

    with CaptureQueriesContext(connection) as second:
        authenticate(key)
    assert [q for q in second.captured_queries if q["sql"].startswith("UPDATE")] == []
    assert len(second.captured_queries) == 1  # the lookup only
    assert APIToken.objects.get(pk=token.pk).last_used == stamped

    old = timezone.now() - timedelta(minutes=2)
    APIToken.objects.filter(pk=token.pk).update(last_used=old)
    authenticate(key)
    assert APIToken.objects.get(pk=token.pk).last_used > old


def test_create_api_token_prints_the_key_last(staff_user):
    out = StringIO()
    call_command("create_api_token", "staff", "--name", "uptime", "--expires-days", "7", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    token = authenticate(key)
    assert token is not None and token.name == "uptime"
    assert timedelta(days=6, hours=23) < token.expires - timezone.now() <= timedelta(days=7)


def test_create_api_token_errors(plain_user):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="not an active staff user"):
        call_command("create_api_token", "plain", stdout=StringIO())
    with pytest.raises(CommandError, match="expires-days"):
        call_command("create_api_token", "plain", "--allow-non-staff", "--expires-days", "0")
    assert not APIToken.objects.exists()
    out = StringIO()
    call_command("create_api_token", "plain", "--allow-non-staff", stdout=out)
    assert APIToken.objects.get().user == plain_user


def test_revoke_api_token(staff_user):
    token, key = tokens.create_token(staff_user)
    out = StringIO()
    call_command("revoke_api_token", token.prefix, stdout=out)
    assert "Revoked" in out.getvalue()
    assert APIToken.objects.get(pk=token.pk).revoked is not None
    assert authenticate(key) is None
    with pytest.raises(CommandError, match="No API token with prefix 'deadbeef'"):
        call_command("revoke_api_token", "deadbeef", stdout=StringIO())


def test_manage_py_exit_codes(tmp_path):
    """The commands as a shell sees them: key on the last line, errors exit non-zero."""
    from tests.servers import prepare_data_dir, run_manage

    environ = prepare_data_dir(tmp_path)  # its own migrated database, staff user "demo"

    def manage(*args):
        return run_manage(environ, *args)

    created = manage("create_api_token", "demo", "--name", "shell")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert tokens.parse_prefix(key) is not None
    revoked = manage("revoke_api_token", tokens.parse_prefix(key))
    assert revoked.returncode == 0, revoked.stderr
    missing = manage("create_api_token", "no-such-user")
    assert missing.returncode != 0
    assert "No user named 'no-such-user'" in missing.stderr
    unknown = manage("revoke_api_token", "zzzzzzzz")
    assert unknown.returncode != 0
    assert "No API token with prefix 'zzzzzzzz'" in unknown.stderr


def test_a_verified_key_is_remembered_briefly(staff_user, settings):
    settings.SMALLSTACK_DASHBOARD = {**settings.SMALLSTACK_DASHBOARD, "API_TOKEN_CACHE": 0.5}
    token, key = tokens.create_token(staff_user, expires=timezone.now() + timedelta(seconds=1))
    assert authenticate(key) is not None
    with CaptureQueriesContext(connection) as queries:
        assert authenticate(key) is not None
    assert queries.captured_queries == []  # no database work within the window
    APIToken.objects.filter(pk=token.pk).update(revoked=timezone.now())
    assert authenticate(key) is not None  # documented: revocation lands when the window ends
    time.sleep(0.55)
    assert authenticate(key) is None
    # Expiry is checked on every request, remembered or not.
    APIToken.objects.filter(pk=token.pk).update(revoked=None)
    assert authenticate(key) is not None
    time.sleep(max(0.0, (token.expires - timezone.now()).total_seconds()) + 0.05)
    assert authenticate(key) is None


def test_unverified_keys_are_never_remembered(staff_user):
    _, key = tokens.create_token(staff_user)
    forged = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    assert authenticate(forged) is None
    with CaptureQueriesContext(connection) as queries:
        assert authenticate(forged) is None
    assert len(queries.captured_queries) == 1


def test_admin_shows_the_key_once_and_never_again(admin_client, staff_user):
    response = admin_client.post(
        "/admin/smallstack/apitoken/add/",
        {"user": staff_user.pk, "name": "from admin", "expires_0": "", "expires_1": ""},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = APIToken.objects.get(name="from admin")
    key = re.search(r'value="(ss_[0-9a-f]{8}_[A-Za-z0-9_-]{43})"', response.content.decode())[1]
    assert tokens.hash_key(key) == token.key_hash
    assert authenticate(key).pk == token.pk
    secret = key.split("_", 2)[2]
    assert not any(secret in morsel.value for morsel in response.cookies.values())
    for url in ["/admin/smallstack/apitoken/", f"/admin/smallstack/apitoken/{token.pk}/change/"]:
        page = admin_client.get(url)
        assert page.status_code == 200
        assert token.prefix in page.content.decode()
        assert secret not in page.content.decode()
        assert token.key_hash not in page.content.decode()


def test_admin_revoke_action(admin_client, staff_user):
    token, key = tokens.create_token(staff_user)
    response = admin_client.post(
        "/admin/smallstack/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert authenticate(key) is None
