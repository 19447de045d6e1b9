"""Applications that misbehave, end to end (tests.apps.misbehaving): one that calls sys.exit() or raises
KeyboardInterrupt, and one that cancels its own task. The worker answers for the app and serves on.

A request's worker is told by ``/pid`` on the same keep-alive connection, just before the misbehaving
request; worker pids come from /proc, as in test_supervisor.
"""

from __future__ import annotations

import asyncio
import re
import socket

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TricornProcess
from tests.e2e.test_supervisor import alive, children, wait_workers

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


@pytest.mark.parametrize("workers", [1, 2])
def test_sys_exit_or_keyboard_interrupt_is_answered_500_and_the_worker_serves_on(
    tricorn: type[TricornProcess], workers: int
) -> None:
    # Before an await it used to end the worker at once (no answer, no graceful shutdown); after an await it
    # was answered 500. Now both are answered 500, with one error line, by a worker that goes on serving.
    server = tricorn([*(["--workers", "2"] if workers == 2 else []), APP]).wait_ready()
    pids = wait_workers(server, 2) if workers == 2 else {server.proc.pid}
    cases = {
        "/exit-now?code=3": "SystemExit(3)",
        "/exit-later?code=0": "SystemExit(0)",
        "/interrupt": "KeyboardInterrupt()",
    }
    for path, exc in cases.items():
        with connection(server) as sock:
            pid = worker_of(sock)
            assert pid in pids
            status, _, closes = exchange(sock, path)
            assert (status, closes) == (500, True), path
        with connection(server) as sock:
            assert worker_of(sock) in pids  # the next request is served
        assert alive(pid), path
        line = f"exception in asgi application: {exc}"
        assert server.output().count(line) == 1, server.output()
    if workers == 2:
        assert children(server.proc.pid) == pids  # none died, none was replaced
    else:
        assert server.proc.poll() is None
    assert server.stop() == 0


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


def test_a_timeout_that_expires_as_the_request_first_waits_cancels_it(tricorn: type[TricornProcess]) -> None:
    # An expired asyncio.timeout cancels its task from a loop callback: one that ran after the request
    # had suspended and been handed to its host task, before the host ran again. The cancellation was
    # swallowed by the host, and the request slept on as if it had no deadline.
    server = tricorn([APP]).wait_ready()
    with connection(server) as sock:
        worker_of(sock)  # the host task that the next request suspends in has run and waits for work
        assert exchange(sock, "/expired-timeout") == (200, b"timed out", False)
        assert exchange(sock, "/expired-timeout") == (200, b"timed out", False)


def test_a_websocket_app_calling_sys_exit_is_closed_1011(tricorn: type[TricornProcess]) -> None:
    server = tricorn([APP]).wait_ready()

    async def session() -> int:
        ws = await connect(f"ws://{server.host}:{server.port}/exit")
        await ws.send("goodbye")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code

    assert asyncio.run(asyncio.wait_for(session(), 30)) == 1011
    assert httpx.get(f"{server.url}/pid").text == f"pid {server.proc.pid}"
    assert server.output().count("exception in asgi websocket application: SystemExit(3)") == 1
    assert server.stop() == 0


def test_a_wsgi_app_raising_system_exit_is_answered_500(tricorn: type[TricornProcess]) -> None:
    server = tricorn(["tests.apps.misbehaving:wsgi_app"]).wait_ready()
    with connection(server) as sock:
        assert exchange(sock, "/exit")[0] == 500
    assert httpx.get(f"{server.url}/pid").text == f"pid {server.proc.pid}"
    assert server.output().count("exception in wsgi application: SystemExit(3)") == 1
    assert server.stop() == 0
