"""Real uvicorn processes for end-to-end tests.

A :class:`LiveServer` serves ``project.asgi:application`` with the test settings plus
``tests.serverapp`` (slow demo widgets in the "Server slow" group) over its own SQLite file,
migrated and seeded with the staff login ``demo`` / :data:`PASSWORD`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "demo-password-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_data_dir(data_dir: Path, **env: str) -> dict[str, str]:
    """Migrate and seed a fresh database in ``data_dir``; return the environment to serve it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.server_settings",
        "SMALLSTACK_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    manage(environ, "migrate", "--noinput", "-v0")
    manage(environ, "seed_demo", "--password", PASSWORD)
    return environ


def run_manage(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` with ``args`` in ``environ``, as a shell would; output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def manage(environ: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``args`` in ``environ``; its standard output, or an error."""
    completed = run_manage(environ, *args)
    completed.check_returncode()
    return completed.stdout


def create_api_key(environ: dict[str, str], name: str) -> str:
    """A new API key for the demo staff user (``create_api_token`` prints it last)."""
    return manage(environ, "create_api_token", "demo", "--name", name).strip().splitlines()[-1]


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM ``process`` if it still runs; SIGKILL it after ``timeout`` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LiveServer:
    """One uvicorn process; ``start()``/``stop()`` may be called repeatedly (same port)."""

    def __init__(self, environ: dict[str, str], port: int | None = None, workers: int = 1):
        self.environ, self.port, self.workers = environ, port or free_port(), workers
        self.process: subprocess.Popen | None = None
        self.log_path = Path(environ["SMALLSTACK_DATA_DIR"]) / f"uvicorn-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> LiveServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 — closed with the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                "warning",
            ],
            env=self.environ,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/accounts/login/", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"uvicorn did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        stop_process(self.process, 10)
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def login(self, client: httpx.Client | None = None) -> httpx.Client:
        """A client signed in as the demo staff user (session cookie + CSRF token)."""
        client = client or httpx.Client(base_url=self.url, timeout=30)
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": "demo", "password": PASSWORD, "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, response.text
        return client


def start_with_api_key(data_dir: Path, settings: str, key_name: str) -> tuple[LiveServer, str]:
    """A uvicorn process serving ``settings`` over a fresh database, and a staff API key for it."""
    environ = prepare_data_dir(data_dir, DJANGO_SETTINGS_MODULE=settings)
    key = create_api_key(environ, key_name)
    return LiveServer(environ).start(), key
