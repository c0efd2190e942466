"""Processes around the load-and-fault run: a throwaway Redis, and what ``/proc`` tells of workers.

Linux only (``/proc``). Figures per process:

- ``rss_kb`` and ``threads``: ``VmRSS`` and ``Threads`` of ``/proc/<pid>/status``;
- ``cpu_s``: user + system CPU seconds (``/proc/<pid>/stat``);
- ``db_fds``: the process's open file descriptors whose target is the SQLite database or its
  ``-wal``/``-shm`` side files. SQLite keeps the database file open for as long as a connection
  is open (and the WAL file in WAL mode), so with no request in flight any such descriptor is a
  connection some thread still holds. File descriptors belong to the process, not to a thread:
  the check is made when no request is in flight, so it covers every thread at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server on a loopback port, no persistence; ``stop()``/``start()`` keep the port."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@dataclass
class ProcStats:
    pid: int
    rss_kb: int
    threads: int
    cpu_s: float
    db_fds: int


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return sorted(found)


def uvicorn_workers(master: int) -> list[int]:
    """The worker processes of a ``uvicorn --workers N`` master (not its resource tracker)."""
    workers = []
    for pid in children(master):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return workers


def db_paths(database: Path) -> set[str]:
    return {str(database), f"{database}-wal", f"{database}-shm", f"{database}-journal"}


def open_db_fds(pid: int, database: Path) -> list[str]:
    """Targets of ``pid``'s descriptors that are the database or its side files."""
    wanted, found = db_paths(database), []
    try:
        entries = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return found
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target in wanted:
            found.append(target)
    return sorted(found)


def proc_stats(pid: int, database: Path) -> ProcStats | None:
    """Figures of a live process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in values:  # a zombie
        return None
    return ProcStats(
        pid=pid,
        rss_kb=int(values["VmRSS"].split()[0]),
        threads=int(values["Threads"]),
        cpu_s=(int(fields[11]) + int(fields[12])) / _TICK,
        db_fds=len(open_db_fds(pid, database)),
    )


def cpu_seconds(pids: list[int]) -> float:
    """Summed user + system CPU seconds of the live ones among ``pids``."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
    return total
