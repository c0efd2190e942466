"""deploy/nginx.conf for real: the shipped site in front of the shipped gunicorn configuration.

The site is rendered for this machine (loopback ports, a self-signed certificate made with
openssl, the test's STATIC_ROOT and gunicorn's port; see ``render_site``) and served by a real
nginx child process, TLS and HTTP/2 included.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import uuid

import httpx
import pytest

from tests import deploy_servers
from tests.conftest import require_binary
from tests.deploy_servers import (
    NginxServer,
    login,
    make_certificate,
    manage_static,
    next_update,
    nginx_version,
    open_deploy_socket,
    render_site,
    session_headers,
)
from tests.servers import free_port

pytestmark = pytest.mark.redis

redis_url = deploy_servers.redis_url
deploy_site = deploy_servers.deploy_site
gunicorn_server = deploy_servers.gunicorn_server


class Site:
    def __init__(self, nginx: NginxServer, http_port: int, https_port: int, certificate) -> None:
        self.nginx, self.http_port, self.https_port = nginx, http_port, https_port
        self.certificate = certificate
        self.url = f"https://127.0.0.1:{https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=30)


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    # Debian installs it in /usr/sbin, which a non-root PATH may leave out.
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else require_binary("nginx")


@pytest.fixture(scope="module")
def site(tmp_path_factory, nginx_binary, deploy_site, gunicorn_server):
    base = tmp_path_factory.mktemp("nginx")
    certificate, key = make_certificate(base)
    static_root = manage_static(deploy_site)
    (static_root / "only-in-static-root.txt").write_text("collected\n")
    acme = base / "acme"
    (acme / ".well-known" / "acme-challenge").mkdir(parents=True)
    (acme / ".well-known" / "acme-challenge" / "token-1").write_text("challenge answer")
    http_port, https_port = free_port(), free_port()
    rendered = render_site(
        http_port=http_port,
        https_port=https_port,
        upstream=f"127.0.0.1:{gunicorn_server.port}",
        static_root=static_root,
        certificate=certificate,
        key=key,
        acme_root=acme,
        version=nginx_version(nginx_binary),
    )
    nginx = NginxServer(nginx_binary, base / "prefix", rendered)
    checked = nginx.test_config()
    assert checked.returncode == 0, checked.stderr
    nginx.start(https_port)
    yield Site(nginx, http_port, https_port, certificate)
    nginx.stop()


def test_the_shipped_site_passes_nginx_t(site):
    checked = site.nginx.test_config()
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
    # Nothing nginx merely tolerates either (deprecated syntax, ignored directives).
    assert "[warn]" not in checked.stderr, checked.stderr


def test_plain_http_redirects_to_https_except_certificate_challenges(site):
    plain = f"http://127.0.0.1:{site.http_port}"
    response = httpx.get(f"{plain}/smallstack/?x=1")
    assert response.status_code == 301
    assert response.headers["location"] == "https://127.0.0.1/smallstack/?x=1"
    challenge = httpx.get(f"{plain}/.well-known/acme-challenge/token-1")
    assert (challenge.status_code, challenge.text) == (200, "challenge answer")


def test_https_negotiates_http2(site):
    context = site.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", site.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"


def test_pages_are_proxied_with_the_original_host_and_scheme(site, gunicorn_server):
    """Signing in through nginx passes Django's CSRF origin check, which compares the browser's
    Origin (https, with the port) with the scheme and host Django saw: so nginx forwarded
    the Host with its port and X-Forwarded-Proto, and gunicorn believed the latter."""
    with site.client() as client:
        signed_in = login(site.url, verify=site.ssl_context())
        try:
            page = signed_in.get("/smallstack/")
            assert page.status_code == 200
            # The worker card names the gunicorn worker that rendered the page.
            assert 'data-key="deploy-worker"' in page.text
            assert any(f">{pid}</p>" in page.text for pid in gunicorn_server.worker_pids())
            assert page.headers["server"] == "nginx"  # server_tokens off: no version
        finally:
            signed_in.close()
        # A forged Origin is still refused: the check is real.
        token_page = client.get("/accounts/login/")
        refused = client.post(
            "/accounts/login/",
            data={"username": "demo", "password": "x"},
            headers={"Origin": f"http://127.0.0.1:{site.https_port}"},
        )
        assert token_page.status_code == 200 and refused.status_code == 403


def test_static_files_come_from_static_root_with_cache_headers(site):
    with site.client() as client:
        # Only in STATIC_ROOT, so nginx (not the application's finders) served it.
        probe = client.get("/static/only-in-static-root.txt")
        assert (probe.status_code, probe.text) == (200, "collected\n")
        stylesheet = client.get("/static/smallstack/dashboard.css")
        assert stylesheet.status_code == 200
        assert stylesheet.headers["content-type"].startswith("text/css")
        cache_control = stylesheet.headers.get_list("cache-control")
        assert "max-age=3600" in cache_control and "public" in cache_control
        assert "etag" in stylesheet.headers and "expires" in stylesheet.headers
        revalidated = client.get(
            "/static/smallstack/dashboard.css",
            headers={"If-None-Match": stylesheet.headers["etag"]},
        )
        assert revalidated.status_code == 304
        assert client.get("/static/nothing-here.css").status_code == 404


async def test_a_pushed_update_arrives_through_nginx(site, gunicorn_server, deploy_site):
    """A socket opened through nginx (wss) gets the update a refresh sent to gunicorn directly
    causes; the handshake's Upgrade crossed nginx both ways."""
    client = await asyncio.to_thread(login, site.url, None, verify=site.ssl_context())
    headers = session_headers(client, site.url)
    through_nginx, _ = await open_deploy_socket(
        f"wss://127.0.0.1:{site.https_port}/ws/smallstack/dashboard/",
        headers,
        ssl=site.ssl_context(),
    )
    direct, _ = await open_deploy_socket(
        f"ws://127.0.0.1:{gunicorn_server.port}/ws/smallstack/dashboard/",
        {**headers, "Origin": gunicorn_server.url},
    )
    try:
        value = f"through-nginx-{uuid.uuid4().hex[:8]}"
        deploy_site.value_file.write_text(value)
        await direct.send(json.dumps({"type": "refresh", "key": "deploy-value"}))
        message = await next_update(through_nginx, "deploy-value", value, within=5)
        assert f">{value}</p>" in message["html"]
    finally:
        await through_nginx.close()
        await direct.close()
        client.close()
