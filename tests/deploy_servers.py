"""Real gunicorn and nginx processes running the files shipped in deploy/.

- :class:`GunicornServer` runs ``gunicorn -c deploy/gunicorn.conf.py`` (uvicorn workers) with the
  configuration taken from the environment, as the systemd unit and the container do.
- :func:`render_site` turns ``deploy/nginx.conf`` into a site for this machine: the same file
  with its ports, paths and upstream replaced (each replacement must find its text, so a
  change to the shipped file that the tests no longer cover fails them), and
  :class:`NginxServer` runs it as a foreground child with its own prefix, pid and logs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.servers import PASSWORD, ROOT, free_port, prepare_data_dir, stop_process

DEPLOY = ROOT / "deploy"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
NGINX_SITE = DEPLOY / "nginx.conf"


def child_pids(parent: int) -> set[int]:
    """Processes whose parent is ``parent`` (read from /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            children.add(int(entry.name))
    return children


class GunicornServer:
    """``gunicorn -c deploy/gunicorn.conf.py`` on a loopback port, configured by environment."""

    def __init__(self, environ: dict[str, str], workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.workers = workers
        self.environ = {
            **environ,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            **env,
        }
        self.process: subprocess.Popen | None = None
        self.log_path = Path(environ["SMALLSTACK_DATA_DIR"]) / f"gunicorn-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def worker_pids(self) -> set[int]:
        return child_pids(self.pid)

    def start(self, timeout: float = 30) -> GunicornServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 — closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
            env=self.environ,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            # Up once every worker has said so (each logs "Started server process [pid]").
            started = set(map(int, re.findall(r"Started server process \[(\d+)\]", self.log())))
            if len(started & self.worker_pids()) >= self.workers:
                try:
                    httpx.get(f"{self.url}/health/live/", timeout=2).raise_for_status()
                    return self
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not start within {timeout} s:\n{self.log()}")

    def terminate(self) -> None:
        """SIGTERM to the master, as systemd and ``docker stop`` send it; does not wait."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        stop_process(self.process, 40)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# -- nginx ---------------------------------------------------------------------------------------


def nginx_version(binary: str) -> tuple[int, ...]:
    output = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", output)
    assert match, output
    return tuple(int(part) for part in match.groups())


def _replace(text: str, old: str, new: str, count: int | None = None) -> str:
    found = text.count(old)
    assert found and (count is None or found == count), (
        f"deploy/nginx.conf: expected {count or 'some'} {old!r}, found {found}"
    )
    return text.replace(old, new)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def render_site(
    *,
    http_port: int,
    https_port: int,
    upstream: str,
    static_root: Path,
    certificate: Path,
    key: Path,
    acme_root: Path,
    version: tuple[int, ...],
) -> str:
    """deploy/nginx.conf for this machine: loopback ports, the test's paths and upstream.

    nginx before 1.25.1 (Debian 12 ships 1.22) has no ``http2`` directive; there the site's
    ``http2 on;`` becomes the older ``http2`` parameter of its ``listen ... ssl`` lines.
    """
    # The directives only: comments mention paths and syntax too.
    site = "\n".join(line.split("#", 1)[0].rstrip() for line in NGINX_SITE.read_text().splitlines())
    site = _replace(site, "server 127.0.0.1:8000", f"server {upstream}", 1)
    site = _replace(site, "/srv/smallstack/var/static/", f"{static_root}/", 1)
    site = _replace(site, "root /var/www/letsencrypt;", f"root {acme_root};", 1)
    site = _replace(
        site, "/etc/letsencrypt/live/dashboard.example.com/fullchain.pem", str(certificate), 1
    )
    site = _replace(site, "/etc/letsencrypt/live/dashboard.example.com/privkey.pem", str(key), 1)
    six = "[::1]" if ipv6_loopback() else None
    for port, new in ((443, https_port), (80, http_port)):
        site = _replace(site, f"listen {port}", f"listen 127.0.0.1:{new}", 1)
        if six:
            site = _replace(site, f"listen [::]:{port}", f"listen {six}:{new}", 1)
        else:
            site = re.sub(rf"\n\s*listen \[::\]:{port}[^;]*;", "", site)
    if version < (1, 25, 1):
        site = _replace(site, "http2 on;", "", 1)
        site = re.sub(r"(listen \S+ ssl)", r"\1 http2", site)
    return site


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with openssl."""
    from tests.conftest import require_binary

    openssl = require_binary("openssl")
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


class NginxServer:
    """nginx in the foreground with everything (pid, logs, temp files) under ``prefix``."""

    def __init__(self, binary: str, prefix: Path, site: str) -> None:
        self.binary, self.prefix = binary, prefix
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "site.conf").write_text(site)
        temp = "\n".join(
            f"    {name}_temp_path {prefix / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # Run as root (CI does), the workers would switch to "nobody", who cannot read the
        # test's private temporary directory; the directive is only allowed as root.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.config = prefix / "nginx.conf"
        self.config.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    include /etc/nginx/mime.types;\n"
            "    default_type application/octet-stream;\n"
            f"    access_log {prefix / 'access.log'};\n"
            f"{temp}\n"
            f"    include {prefix / 'site.conf'};\n"
            "}\n"
        )
        self.process: subprocess.Popen | None = None

    def command(self, *args: str) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-c",
            str(self.config),
            *args,
        ]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command("-t"), capture_output=True, text=True)

    def start(self, port: int, timeout: float = 10) -> NginxServer:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


# -- shared by tests/test_deploy_gunicorn.py and tests/test_deploy_nginx.py ----------------------


def login(base_url: str, origin: str | None = None, **client_options) -> httpx.Client:
    """A client signed in as the demo staff user through ``base_url``.

    ``origin`` is sent with the login form as a browser sends it; Django's CSRF check compares
    it with the scheme and host the request reached it with.
    """
    client = httpx.Client(base_url=base_url, timeout=30, **client_options)
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post(
        "/accounts/login/",
        data={"username": "demo", "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)},
        headers={"Origin": origin or base_url, "Referer": f"{base_url}/accounts/login/"},
    )
    assert response.status_code == 302, response.text
    return client


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    from tests.conftest import require_binary
    from tests.test_live_redis import RedisServer

    server = RedisServer(require_binary("redis-server"), tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def deploy_site(tmp_path_factory, redis_url) -> DeploySite:
    """A migrated, seeded database and the environment to serve it with gunicorn and Redis.

    The request log is written every 300 s only, so rows still buffered when a worker is told
    to stop can only reach the database through the shutdown path.
    """
    base = tmp_path_factory.mktemp("deploy")
    value_file = base / "value.txt"
    value_file.write_text("first")
    environ = prepare_data_dir(
        base / "data",
        DJANGO_SETTINGS_MODULE="tests.deploy_settings",
        REDIS_URL=redis_url,
        SMALLSTACK_DEPLOY_VALUE_FILE=str(value_file),
        SMALLSTACK_ACTIVITY_FLUSH_INTERVAL="300",
    )
    return DeploySite(environ, value_file, Path(environ["SMALLSTACK_DATA_DIR"]))


class DeploySite:
    def __init__(self, environ: dict[str, str], value_file: Path, data_dir: Path) -> None:
        self.environ, self.value_file, self.data_dir = environ, value_file, data_dir

    def request_log_paths(self, prefix: str) -> list[str]:
        """Paths of the request log rows under ``prefix``, read from the database file."""
        with closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=20)) as db:
            rows = db.execute(
                "SELECT path FROM activity_requestlog WHERE path LIKE ? ORDER BY path",
                (prefix + "%",),
            ).fetchall()
        return [path for (path,) in rows]


@pytest.fixture(scope="module")
def gunicorn_server(deploy_site) -> Iterator[GunicornServer]:
    """The shipped gunicorn.conf.py with 2 uvicorn workers and Redis; one per test module."""
    server = GunicornServer(deploy_site.environ, workers=2).start()
    yield server
    server.stop()


# -- websockets ----------------------------------------------------------------------------------


async def next_message(socket, kind: str, within: float = 10.0, **match) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if message["type"] == kind and all(message.get(k) == v for k, v in match.items()):
                return message


async def next_update(socket, key: str, headline: str, within: float = 10.0) -> dict:
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if (
                message["type"] == "widget.update"
                and message["widget"]["key"] == key
                and message["widget"]["data"]["headline"] == headline
            ):
                return message


async def open_deploy_socket(url: str, headers: dict[str, str], **options) -> tuple[Any, int]:
    """A dashboard socket following the "Deploy" group, and the pid of the worker serving it
    (its snapshot of ``deploy-worker``, which the serving worker evaluates)."""
    socket = await websockets.connect(url, additional_headers=headers, **options)
    assert await next_message(socket, "status") == {"type": "status", "push": "live"}
    await socket.send(json.dumps({"type": "subscribe", "group": "Deploy"}))
    await next_message(socket, "subscribed")
    await socket.send(json.dumps({"type": "snapshot", "keys": ["deploy-worker"]}))
    update = await next_message(socket, "widget.update")
    await next_message(socket, "snapshot.done")
    return socket, int(update["widget"]["data"]["headline"])


def session_headers(client: httpx.Client, origin: str) -> dict[str, str]:
    from django.conf import settings

    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Origin": origin}


def manage_static(site: DeploySite) -> Path:
    """``manage.py collectstatic`` into the site's STATIC_ROOT (``$SMALLSTACK_DATA_DIR/static``)."""
    from tests.servers import manage

    manage(site.environ, "collectstatic", "--noinput", "-v0")
    return site.data_dir / "static"
