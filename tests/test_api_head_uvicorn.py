"""HEAD on the API behind a real uvicorn process: GET's status and headers, no body on the wire.

Django's test client drops a HEAD response's body itself, so only a real server shows that the
bytes after the headers are really absent.
"""

from __future__ import annotations

import socket

import pytest

from tests.servers import create_api_key


@pytest.fixture(scope="module")
def key(server) -> str:
    return create_api_key(server.environ, "head")


def raw_request(port: int, method: str, path: str, key: str) -> tuple[bytes, bytes]:
    """The response's head and everything the server sent after it, until it closed."""
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def headers_of(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)
    }


@pytest.mark.parametrize(
    "path",
    ["/api/dashboard/status/?app=smallstack_users", "/api/dashboard/widgets/slow-async-0/"],
)
def test_head_sends_gets_status_and_headers_and_no_body(server, key, path):
    get_head, get_body = raw_request(server.port, "GET", path, key)
    head_head, head_body = raw_request(server.port, "HEAD", path, key)
    assert get_head.split(b"\r\n")[0] == head_head.split(b"\r\n")[0] == b"HTTP/1.1 200 OK"
    assert get_body and head_body == b""
    got, headed = headers_of(get_head), headers_of(head_head)
    for name in ("content-type", "etag", "cache-control"):
        assert headed[name] == got[name], name
    assert int(headed["content-length"]) > 0  # what a GET would send


def test_head_errors_are_gets_errors_without_a_body(server, key):
    head, body = raw_request(server.port, "HEAD", "/api/dashboard/status/?app=nope", key)
    assert head.startswith(b"HTTP/1.1 404 ") and body == b""
    head, body = raw_request(server.port, "HEAD", "/api/dashboard/status/", "not-a-key")
    assert head.startswith(b"HTTP/1.1 401 ") and body == b""
    assert 'error="invalid_token"' in headers_of(head)["www-authenticate"]
