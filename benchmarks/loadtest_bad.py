"""The bad clients of the load-and-fault run, in a process of their own.

They run in a separate process from the good clients so that their own work (building 10,000
keys, parsing answers) never delays the good clients' event loop: a slower good client in the
"with bad clients" phase is then the server's doing, not the load generator's.

- HTTP, over raw keep-alive sockets (so headers can be truly malformed): bad bearer keys
  (unknown, malformed, right prefix with a wrong secret, revoked, expired, a non-staff user's),
  junk ``Authorization`` headers, oversized and malformed query strings, paths and headers,
  wrong methods. Each kind has the statuses it may get; anything else, 5xx above all, is
  reported.
- Websockets, signed in: binary frames, invalid JSON, ``"[" * 2000 + "]" * 2000``, messages over
  the 4096-character limit (and one of 1 MB), JSON that is not an object, unknown types and bad
  fields. Each must get ``{"type": "error"}`` with the connection left open; a close is
  reported with its code and the client reconnects. Plus anonymous sockets (must be closed 4401)
  and a foreign ``Origin`` (must be refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import string
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import websockets

RESPONSE_TIMEOUT = 15.0
HTTP_CONNECTIONS = 48
WS_FRAME_INTERVAL = 0.5  # seconds between bad frames, per bad socket

_URLSAFE = string.ascii_letters + string.digits + "-_"


@dataclass
class BadRequest:
    kind: str
    raw: bytes
    expect: frozenset[int]
    head: bool = False
    bad_key: bool = False


@dataclass
class BadConfig:
    port: int
    good_key: str  # a valid key: lets malformed queries reach validation
    known_prefix: str  # the prefix of a real key, sent with wrong secrets
    revoked_key: str
    expired_key: str
    non_staff_key: str
    session_cookie: str  # "sessionid=…" of the staff user
    bad_keys: int  # how many bad bearer keys to send
    seconds: float  # over how long (they are paced evenly; the run may stop them earlier)
    ws_clients: int
    seed: int = 8


@dataclass
class BadReport:
    http: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    #: (time.monotonic(), what): CLOCK_MONOTONIC is system-wide on Linux, so the parent
    #: process can tell which ones happened at the worker kill.
    http_unexpected: list[tuple[float, str]] = field(default_factory=list)
    bad_keys_sent: int = 0
    distinct_bad_keys: int = 0
    ws: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    ws_unexpected: list[tuple[float, str]] = field(default_factory=list)
    ws_reconnects: int = 0
    cpu_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "http": {kind: dict(counts) for kind, counts in sorted(self.http.items())},
            "http_unexpected": self.http_unexpected[:1000],
            "bad_keys_sent": self.bad_keys_sent,
            "distinct_bad_keys": self.distinct_bad_keys,
            "ws": {kind: dict(counts) for kind, counts in sorted(self.ws.items())},
            "ws_unexpected": self.ws_unexpected[:1000],
            "ws_reconnects": self.ws_reconnects,
            "cpu_seconds": self.cpu_seconds,
        }


def _now() -> float:
    return time.monotonic()


# -- HTTP -------------------------------------------------------------------------------------


def _request(config: BadConfig, method: str, target: str, *headers: tuple[str, bytes]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode(), f"Host: 127.0.0.1:{config.port}".encode()]
    lines += [name.encode() + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _bearer(key: str | bytes) -> tuple[str, bytes]:
    return ("Authorization", b"Bearer " + (key if isinstance(key, bytes) else key.encode()))


API = "/api/dashboard/widgets/"


def _junk_requests(config: BadConfig) -> list[BadRequest]:
    """Everything bad that is not a bad key: the same few dozen requests, cycled."""
    good = _bearer(config.good_key)
    rq = lambda *a: _request(config, *a)  # noqa: E731
    no_5xx = frozenset(range(200, 500))
    junk_auth = [
        b"Bearer", b"Bearer ", b"Bearer      ", b"Basic dXNlcjpwYXNzd29yZA==", b"Token abc",
        b"bearer ss_00000000_" + b"A" * 43, b"Bearer " + b"x" * 4096, b"Bearer \xff\xfe\xfd",
        b"Bearer ss_\t_\x7f", b"BEARER", b"Bearer ss__", b"Bearer " + b"ss_" * 700,
    ]  # fmt: skip
    requests = [
        BadRequest(f"junk Authorization #{i}", rq("GET", API, ("Authorization", value)),
                   frozenset({400, 401}))
        for i, value in enumerate(junk_auth)
    ]  # fmt: skip
    requests += [
        BadRequest("two Authorization headers",
                   rq("GET", API, good, ("Authorization", b"Bearer nonsense")),
                   frozenset({400, 401})),
        BadRequest("no credentials", rq("GET", API), frozenset({401})),
        BadRequest("?dashboard_only=maybe", rq("GET", API + "?dashboard_only=maybe", good),
                   frozenset({422})),
        BadRequest("?dashboard_only=%00", rq("GET", API + "?dashboard_only=%00", good),
                   frozenset({422})),
        BadRequest("status ?dashboard_only=maybe",
                   rq("GET", "/api/dashboard/status/?dashboard_only=maybe", good),
                   frozenset({422})),
        BadRequest("8 KB ?group=", rq("GET", API + "?group=" + "x" * 8192, good),
                   frozenset({404, 414})),
        BadRequest("8 KB of junk parameters",
                   rq("GET", API + "?" + "&".join(f"p{i}=%zz%ff" for i in range(900)), good),
                   frozenset({200, 404, 414})),
        BadRequest("invalid percent-encoding", rq("GET", API + "?group=%ff%fe%zz&app=%", good),
                   frozenset({400, 404})),
        BadRequest("?group= and ?app= both unknown",
                   rq("GET", API + "?group=%3Cscript%3E&app=..%2F..", good), frozenset({404})),
        BadRequest("junk widget key", rq("GET", API + "%ff%00..%2F/", good),
                   frozenset({400, 404})),
        BadRequest("8 KB widget key", rq("GET", API + "k" * 8192 + "/", good),
                   frozenset({404, 414})),
        BadRequest("HEAD with a good key", rq("HEAD", API, good), frozenset({200, 405}),
                   head=True),
        BadRequest("HEAD with a bad key", rq("HEAD", API, _bearer("nope")),
                   frozenset({401, 405}), head=True),
        BadRequest("POST to the list", rq("POST", API, good, ("Content-Length", b"0")),
                   frozenset({403, 405})),
        BadRequest("16 KB header",
                   rq("GET", API, good, ("X-Junk", b"a" * 16384)), frozenset({200, 400, 431})),
        BadRequest("header with control bytes",
                   rq("GET", API, good, ("X-Junk", b"\x01\x02\x1b[31m")), frozenset({200, 400})),
        BadRequest("If-None-Match junk",
                   rq("GET", API, good, ("If-None-Match", b'W/"' + b"\"" * 500)),
                   frozenset({200, 400})),
        BadRequest("page ?wait=maybe",
                   rq("GET", "/smallstack/?wait=maybe",
                      ("Cookie", config.session_cookie.encode())), frozenset({200})),
        BadRequest("page of an 8 KB group",
                   rq("GET", "/smallstack/group/" + "g" * 8192 + "/",
                      ("Cookie", config.session_cookie.encode())), frozenset({404, 414})),
        BadRequest("malformed request line",
                   b"GET /api/dashboard/widgets/ HTTP/1.1 junk\r\nHost: x\r\n\r\n",
                   frozenset({400})),
    ]  # fmt: skip
    # Whatever the server answers a broken request with, it must not be a 5xx.
    for request in requests:
        request.expect = request.expect & no_5xx
    return requests


def _bad_keys(config: BadConfig, rng: random.Random):
    """``config.bad_keys`` bad bearer keys, in a mix of kinds, nearly all distinct."""
    fixed = [
        ("revoked key", config.revoked_key, frozenset({401})),
        ("expired key", config.expired_key, frozenset({401})),
        ("non-staff user's key", config.non_staff_key, frozenset({403})),
    ]
    for index in range(config.bad_keys):
        roll = index % 10
        if roll < 4:
            kind = "bad key: unknown prefix"
            key = f"ss_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
            expect = frozenset({401})
        elif roll < 6:
            kind = "bad key: known prefix, wrong secret"
            key = f"ss_{config.known_prefix}_{secrets.token_urlsafe(32)}"
            expect = frozenset({401})
        elif roll < 9:
            kind = "bad key: malformed"
            key = "".join(rng.choice(_URLSAFE + "./+=") for _ in range(rng.randint(1, 300)))
            expect = frozenset({401})
        else:
            kind, key, expect = fixed[(index // 10) % len(fixed)]
        yield BadRequest(kind, _request(config, "GET", API, _bearer(key)), expect, bad_key=True)


class RawConnection:
    """One keep-alive HTTP/1.1 connection that sends bytes as given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def exchange(self, request: BadRequest) -> str:
        """The response status as text, or what went wrong ("closed", "timeout", …)."""
        try:
            async with asyncio.timeout(RESPONSE_TIMEOUT):
                return await self._exchange(request)
        except TimeoutError:
            await self.close()
            return "timeout"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            await self.close()
            return "closed without an answer"

    async def _exchange(self, request: BadRequest) -> str:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, limit=1 << 20
            )
        self.writer.write(request.raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if request.head or status in (204, 304) or 100 <= status < 200:
            pass
        elif "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return str(status)


async def _http_clients(config: BadConfig, report: BadReport, stop: asyncio.Event) -> None:
    rng = random.Random(config.seed)
    junk = _junk_requests(config)
    keys = _bad_keys(config, rng)

    def requests():
        for index, request in enumerate(keys):
            yield request
            if index % 3 == 2:  # one junk request for every three bad keys
                yield junk[(index // 3) % len(junk)]

    stream = requests()
    total = config.bad_keys + config.bad_keys // 3
    interval = config.seconds / max(1, total)
    started = time.monotonic()
    sent = 0
    distinct: set[bytes] = set()

    async def connection() -> None:
        nonlocal sent
        conn = RawConnection(config.port)
        try:
            while not stop.is_set():
                request = next(stream, None)
                if request is None:
                    return
                slot = started + sent * interval
                sent += 1
                if slot > time.monotonic():
                    await asyncio.sleep(slot - time.monotonic())
                outcome = await conn.exchange(request)
                report.http[request.kind][outcome] += 1
                if request.bad_key:
                    report.bad_keys_sent += 1
                    distinct.add(request.raw)
                ok = outcome.isdigit() and int(outcome) in request.expect
                if not ok and not (outcome == "closed without an answer" and not request.bad_key
                                   and request.kind in _MAY_CLOSE):  # fmt: skip
                    report.http_unexpected.append((_now(), f"{request.kind}: {outcome}"))
        finally:
            await conn.close()

    await asyncio.gather(*(connection() for _ in range(HTTP_CONNECTIONS)))
    report.distinct_bad_keys = len(distinct)


#: Requests a server may refuse at the protocol level by closing the connection.
_MAY_CLOSE = {"16 KB header", "header with control bytes", "malformed request line"}


# -- websockets -----------------------------------------------------------------------------

NESTED = "[" * 2000 + "]" * 2000

#: (name, frame) pairs; every one must be answered ``{"type": "error"}``.
BAD_FRAMES: list[tuple[str, str | bytes]] = [
    ("binary frame", b"\x00\x01\x02\xff"),
    ("invalid JSON", '{"type": "subscribe"'),
    ("nested arrays 2000 deep", NESTED),
    ("nested objects 1000 deep", '{"a":' * 1000 + "1" + "}" * 1000),
    ("nested inside a subscribe", '{"type":"subscribe","group":' + "[" * 1500 + "]" * 1500 + "}"),
    ("over the 4096 limit", '{"type":"snapshot","pad":"' + "x" * 5000 + '"}'),
    ("1 MB message", "x" * 1_000_000),
    ("JSON array", "[]"),
    ("JSON string", '"subscribe"'),
    ("JSON null", "null"),
    ("unknown type", '{"type":"explode"}'),
    ("type not a string", '{"type":{"nested":[1,2,3]}}'),
    ("NaN type", '{"type":NaN}'),
    ("unknown group", '{"type":"subscribe","group":"no such group"}'),
    ("group not a string", '{"type":"subscribe","group":{"a":1}}'),
    ("group and app", '{"type":"subscribe","group":"Faults","app":"sales"}'),
    ("extra field", '{"type":"subscribe","evil":true}'),
    ("snapshot keys not a list", '{"type":"snapshot","keys":"all"}'),
    ("refresh unknown key", '{"type":"refresh","key":"no-such-widget"}'),
    ("refresh key not a string", '{"type":"refresh","key":["fault-fast"]}'),
    ("3000 non-ASCII characters", '{"type":"subscribe","group":"' + "é" * 3000 + '"}'),
]


async def _reply(socket, within: float = 10.0) -> dict[str, Any]:
    """The next message that answers the client (pushed updates and status are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await socket.recv())
            if message.get("type") not in ("widget.update", "status"):
                return message


async def _ws_client(index: int, config: BadConfig, report: BadReport, stop: asyncio.Event) -> None:
    url = f"ws://127.0.0.1:{config.port}/ws/smallstack/dashboard/"
    headers = {"Cookie": config.session_cookie, "Origin": f"http://127.0.0.1:{config.port}"}
    frame_index = index  # the clients start at different frames
    await asyncio.sleep(index * WS_FRAME_INTERVAL / max(1, config.ws_clients))
    while not stop.is_set():
        try:
            async with websockets.connect(
                url, additional_headers=headers, max_size=None, open_timeout=15
            ) as socket:
                while not stop.is_set():
                    name, frame = BAD_FRAMES[frame_index % len(BAD_FRAMES)]
                    frame_index += 1
                    await socket.send(frame)
                    try:
                        answer = await _reply(socket)
                    except TimeoutError:
                        report.ws[name]["no answer within 10 s"] += 1
                        report.ws_unexpected.append((_now(), f"{name}: no answer within 10 s"))
                        continue
                    kind = answer.get("type")
                    report.ws[name][str(kind)] += 1
                    if kind != "error":
                        report.ws_unexpected.append(
                            (_now(), f"{name}: answered {str(answer)[:120]}")
                        )
                    # The connection still works: a valid message after the bad one.
                    if frame_index % 5 == 0:
                        await socket.send('{"type":"subscribe","group":"Faults"}')
                        answer = await _reply(socket)
                        report.ws["valid subscribe after bad frames"][answer.get("type")] += 1
                    await asyncio.sleep(WS_FRAME_INTERVAL)
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "none"
            name = BAD_FRAMES[(frame_index - 1) % len(BAD_FRAMES)][0]
            report.ws[name][f"connection closed {code}"] += 1
            report.ws_unexpected.append((_now(), f"{name}: connection closed with code {code}"))
        except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
            report.ws["connect"][type(exc).__name__] += 1
            report.ws_unexpected.append((_now(), f"connect: {exc!r}"[:200]))
        if not stop.is_set():
            report.ws_reconnects += 1
            await asyncio.sleep(0.5)


async def _ws_refused(config: BadConfig, report: BadReport, stop: asyncio.Event) -> None:
    """Anonymous sockets (closed 4401) and a foreign Origin (refused), now and then."""
    url = f"ws://127.0.0.1:{config.port}/ws/smallstack/dashboard/"
    origin = f"http://127.0.0.1:{config.port}"
    while not stop.is_set():
        try:
            async with websockets.connect(url, additional_headers={"Origin": origin}) as socket:
                await asyncio.wait_for(socket.recv(), 10)
            outcome = "not closed"
        except websockets.ConnectionClosed as exc:
            outcome = f"closed {exc.rcvd.code if exc.rcvd else 'none'}"
        except TimeoutError:
            outcome = "no answer within 10 s"
        except (OSError, websockets.InvalidHandshake) as exc:
            # The handshake cut short (a worker killed under it): "connect:" lets the report
            # tell such cuts at the kill from surprises.
            outcome = f"connect: {type(exc).__name__}"
        report.ws["anonymous socket"][outcome] += 1
        if outcome != "closed 4401":
            report.ws_unexpected.append((_now(), f"anonymous socket: {outcome}"))
        headers = {"Cookie": config.session_cookie, "Origin": "http://evil.example"}
        try:
            async with websockets.connect(url, additional_headers=headers) as socket:
                await asyncio.wait_for(socket.recv(), 10)
            outcome = "accepted"
        except websockets.InvalidStatus as exc:
            outcome = f"refused {exc.response.status_code}"
        except TimeoutError:
            outcome = "no answer within 10 s"
        except (websockets.ConnectionClosed, OSError, websockets.InvalidHandshake) as exc:
            outcome = f"connect: {type(exc).__name__}"
        report.ws["foreign Origin"][outcome] += 1
        if outcome != "refused 403":
            report.ws_unexpected.append((_now(), f"foreign Origin: {outcome}"))
        await asyncio.sleep(1.0)


async def run_bad_clients(config: BadConfig, stop: asyncio.Event) -> BadReport:
    """Run every bad client until ``stop`` is set (or the bad keys run out)."""
    report = BadReport()
    cpu = time.process_time()
    await asyncio.gather(
        _http_clients(config, report, stop),
        _ws_refused(config, report, stop),
        *(_ws_client(i, config, report, stop) for i in range(config.ws_clients)),
    )
    report.cpu_seconds = time.process_time() - cpu
    return report


def process_main(config: BadConfig, go, stop, results) -> None:
    """Entry point of the bad clients' process: wait for ``go``, run until ``stop``."""

    async def main() -> BadReport:
        loop_stop = asyncio.Event()

        async def watch() -> None:
            # ``stop`` is a multiprocessing event: polled, it has no awaitable side.
            while not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            loop_stop.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            return await run_bad_clients(config, loop_stop)
        finally:
            watcher.cancel()

    go.wait()
    try:
        results.put(asyncio.run(main()).as_dict())
    except BaseException as exc:
        results.put({"crashed": repr(exc)})
        raise
