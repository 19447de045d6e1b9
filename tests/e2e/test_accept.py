"""Accepting connections when the server is out of file descriptors, on both event loops.

The server starts with the usual limit; once it serves, its RLIMIT_NOFILE is lowered (prlimit(2) on its
pid) to what it has open plus a few, and the test opens more connections than that allows.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import time
from collections.abc import Iterator

import pytest

from tests.conftest import TricornProcess, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.workers:app"
HEADROOM = 4  # descriptors left for new connections
EXTRA = 40  # connections opened beyond them
WARNING = re.compile(
    r"too many open files \(limit (\d+), raise it with ulimit -n\): pausing accept for 0\.5s"
)


def request(sock: socket.socket) -> bytes:
    """One keep-alive GET / on ``sock``; the response head and body (the app sends content-length)."""
    sock.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE)[1])  # type: ignore[index]
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def answers(port: int) -> bool:
    """Whether a new connection gets a response (within a short timeout)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return request(sock).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


@pytest.fixture
def extra_connections() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def accept_log_lines(log: str) -> list[str]:
    # Ours, and asyncio's own ("socket.accept() out of system resource", one per failed accept).
    return [line for line in log.splitlines() if "accept" in line]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_out_of_file_descriptors_pauses_accepting_and_warns_once_a_second(
    tricorn: type[TricornProcess], extra_connections: list[socket.socket], loop: str
) -> None:
    # A long keep-alive: `first` is probed again after waits that can take seconds on a loaded machine.
    server = tricorn([APP, "--loop", loop, "--no-access-log", "--timeout-keep-alive", "120"]).wait_ready()
    pid = server.proc.pid
    first = socket.create_connection((server.host, server.port), timeout=10)
    extra_connections.append(first)
    assert request(first).startswith(b"HTTP/1.1 200")
    limit = len(os.listdir(f"/proc/{pid}/fd")) + HEADROOM
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    # The kernel completes the handshakes (the backlog holds them); the server accepts what it can.
    started = time.monotonic()
    for _ in range(EXTRA):
        extra_connections.append(socket.create_connection((server.host, server.port), timeout=10))
    wait_for(
        lambda: len(WARNING.findall(server.output())) >= 2 or len(accept_log_lines(server.output())) > 50,
        what="two warnings (a second apart)",
    )
    elapsed = time.monotonic() - started
    lines = accept_log_lines(server.output())
    assert len(lines) <= elapsed + 2, lines[:10]  # at most one a second (generous: the start of each)
    assert WARNING.search(server.output())[1] == str(limit)  # type: ignore[index]
    # The connection that was open before is served meanwhile.
    assert request(first).startswith(b"HTTP/1.1 200")

    # Once the extra connections are gone, new ones are accepted again (the queued ones, closed by their
    # clients, are accepted and closed first).
    for sock in extra_connections[1:]:
        sock.close()
    del extra_connections[1:]
    wait_for(lambda: answers(server.port), what="a new connection answered")
    assert request(first).startswith(b"HTTP/1.1 200")
    assert server.proc.poll() is None
