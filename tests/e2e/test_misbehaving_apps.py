"""Applications that misbehave, end to end (tests.apps.misbehaving): one that cancels its own task. The
worker answers for the app and serves on.
"""

from __future__ import annotations

import re
import socket

import pytest

from tests.conftest import TricornProcess

pytestmark = pytest.mark.e2e

APP = "tests.apps.misbehaving:app"


def exchange(sock: socket.socket, path: str) -> tuple[int, bytes, bool]:
    """Send ``GET path`` and read its response: (status, body, whether the server closed after it)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed before a response to {path}; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    assert match is not None, head
    while len(body) < int(match.group(1)):
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed in the body of the response to {path}")
        body += chunk
    closes = re.search(rb"(?i)\r\nconnection: *close", head) is not None
    return status, body, closes


def worker_of(sock: socket.socket) -> int:
    status, body, _ = exchange(sock, "/pid")
    assert status == 200
    return int(body.split()[1])


def connection(server: TricornProcess) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=10)


def test_a_request_that_cancels_its_own_task_is_answered(tricorn: type[TricornProcess]) -> None:
    # Review §5.1: it used to get no answer at all, on a fresh connection and on a kept-alive one.
    server = tricorn([APP]).wait_ready()
    with connection(server) as sock:
        assert exchange(sock, "/self-cancel") == (200, b"survived its own cancellation", False)
        assert exchange(sock, "/self-cancel") == (200, b"survived its own cancellation", False)
        assert exchange(sock, "/pid")[0] == 200
    with connection(server) as sock:
        worker_of(sock)
        # Letting the CancelledError out is a failure of the app like any other.
        assert exchange(sock, "/self-cancel-unhandled")[:1] == (500,)
    assert server.output().count("exception in asgi application: CancelledError()") == 1
