"""--timeout-read and --timeout-send end to end: clients that stall while the app waits on them.

A client that sends part of a body and stops, or asks for a large response and never reads it, must not
hold its request (and under WSGI a pool thread) forever. Timeouts are set to 1 s through the flags; every
wait is on a condition (a response, a log line, the app's events), with generous bounds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest

from tests.conftest import TricornProcess, wait_for
from tests.e2e.test_http import Reader, connect, get, log_lines

pytestmark = pytest.mark.e2e

ASGI = "tests.apps.basic:app"
WSGI = "tests.apps.wsgi_basic:app"
SIZE = 8 * 1024 * 1024  # more than the kernel buffers of a client that reads nothing (4 MiB + its own)
TIMEOUTS = ("--timeout-read", "1", "--timeout-send", "1")
SLOW_BODY = b"POST %s HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nabc"  # and then nothing

Start = Callable[..., TricornProcess]


@pytest.fixture
def start(tricorn: type[TricornProcess]) -> Start:
    def starter(app: str, *options: str) -> TricornProcess:
        return tricorn([*TIMEOUTS, *options, app]).wait_ready()

    return starter


def events(server: TricornProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/events", headers={"connection": "close"}, timeout=30).json()  # type: ignore[no-any-return]


def non_reader(port: int, request: bytes) -> tuple[socket.socket, Reader]:
    """A connection that sends ``request``, reads the response head, and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    reader = Reader(sock)
    assert reader.until(b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    return sock, reader


def read_to_the_end(sock: socket.socket, reader: Reader) -> int:
    """Bytes received until the server's close (a reset counts as the end)."""
    received = len(reader.buf)
    try:
        while data := sock.recv(1 << 20):
            received += len(data)
    except ConnectionResetError:
        pass
    return received


# -- HTTP/1.1: a body that stops coming


@pytest.mark.parametrize(
    ("app", "path"), [(ASGI, "/read-slowly"), (WSGI, "/read-disconnect")], ids=["asgi", "wsgi"]
)
def test_a_stalled_request_body_gets_408_and_the_connection_is_closed(
    start: Start, app: str, path: str
) -> None:
    server = start(app)
    began = time.monotonic()
    with connect(server.port, timeout=30) as sock:
        sock.sendall(SLOW_BODY % path.encode())
        reader = Reader(sock)
        response = reader.response()
        assert response.status == 408
        assert response.header("connection") == "close"
        assert reader.at_eof()
    assert time.monotonic() - began < 20
    log_lines(server, 1, "408 request body not received in time (--timeout-read 1s)")
    seen = "disconnect /read-slowly" if app == ASGI else "read failed: ClientTimeout"
    wait_for(lambda: seen in events(server)["events"])
    assert "exception in" not in server.output()  # the app was told the client left: not an app error
    assert httpx.get(server.url).status_code == 200


def test_a_body_that_keeps_coming_is_not_cut(start: Start) -> None:
    # Each piece comes within --timeout-read of the one before, though the whole takes longer than it.
    server = start(ASGI, "--timeout-read", "0.5")
    with connect(server.port, timeout=30) as sock:
        sock.sendall(b"POST /read-slowly HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n")
        for _ in range(10):
            sock.sendall(b"x")
            threading.Event().wait(0.1)  # pacing the client, not synchronisation
        response = Reader(sock).response()
    assert response.status == 200
    assert response.json() == {"bytes": 10, "parts": response.json()["parts"]}


# -- HTTP/1.1: a response the client does not take


def test_a_client_that_does_not_read_is_closed_and_the_asgi_app_told(start: Start) -> None:
    server = start(ASGI)
    sock, reader = non_reader(server.port, get(f"/big?size={SIZE}"))
    with sock:
        log_lines(
            server, 1, "response not taken by the client in time (--timeout-send 1s): connection closed"
        )
        assert read_to_the_end(sock, reader) < SIZE
    wait_for(lambda: events(server)["big"]["error"] is not None)
    big = events(server)["big"]
    assert big["error"].startswith("ClientTimeout: response not taken by the client in time"), big
    assert not big["done"]
    assert "exception in" not in server.output()


def test_a_client_that_does_not_read_is_closed_and_the_wsgi_write_fails(start: Start) -> None:
    server = start(WSGI)
    sock, reader = non_reader(server.port, get(f"/write-big?size={SIZE}"))
    with sock:
        log_lines(
            server, 1, "response not taken by the client in time (--timeout-send 1s): connection closed"
        )
        assert read_to_the_end(sock, reader) < SIZE
    wait_for(lambda: "write failed: ClientTimeout" in events(server)["events"])
    assert "exception in" not in server.output()


def test_a_client_that_does_not_read_a_sendfile_response_is_closed(start: Start, tmp_path: Path) -> None:
    server = start(WSGI)
    path = tmp_path / "big.bin"
    path.write_bytes(b"f" * SIZE)
    sock, reader = non_reader(server.port, get(f"/file?path={path}"))
    with sock:
        log_lines(
            server, 1, "response not taken by the client in time (--timeout-send 1s): connection closed"
        )
        assert read_to_the_end(sock, reader) < SIZE
    assert events(server)["sendfile_calls"] > 0  # (it was sent by the worker, not through the loop)


def test_stalled_clients_do_not_pin_the_wsgi_threads(start: Start) -> None:
    server = start(WSGI, "--threads", "2")
    with connect(server.port, timeout=30) as slow_body:
        slow_body.sendall(SLOW_BODY % b"/read-disconnect")
        wait_for(lambda: "reading" in events(server)["events"])  # one thread waits for the body
        sock, _ = non_reader(server.port, get(f"/write-big?size={SIZE}"))  # the other, to write
        with sock:
            began = time.monotonic()
            assert httpx.get(server.url, timeout=30).text == "hello, world"
            assert time.monotonic() - began < 15
            # Both threads are free again: two requests that complete only if they run at once.
            results: list[int] = []

            def barrier() -> None:
                url = f"{server.url}/barrier"
                results.append(httpx.get(url, params={"group": "after", "n": "2"}, timeout=30).status_code)

            threads = [threading.Thread(target=barrier) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert results == [200, 200]
        assert Reader(slow_body).response().status == 408
    seen = events(server)["events"]
    assert "read failed: ClientTimeout" in seen
    assert "write failed: ClientTimeout" in seen


# -- HTTP/2 (prior knowledge over a plain socket): one stream stalls, the connection serves on


class H2Client:
    """An h2-library client on a plain socket, recording each stream's response."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        # Room on the connection for every stream: a stream left unread must not starve the others.
        self.conn.increment_flow_control_window(1 << 28)
        self.streams: dict[int, dict[str, Any]] = {}
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: bytes, path: bytes, body: bytes | None = None, *, end: bool = True) -> int:
        stream_id: int = self.conn.get_next_available_stream_id()
        headers = [(b":method", method), (b":scheme", b"http"), (b":authority", b"test"), (b":path", path)]
        if body is not None and not end:
            headers.append((b"content-length", b"100"))
        self.conn.send_headers(stream_id, headers, end_stream=body is None and end)
        if body is not None:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.streams[stream_id] = {"status": None, "body": b"", "ended": False, "reset": None}
        self.flush()
        return stream_id

    def until(self, done: Callable[[], bool]) -> None:
        while not done():
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("connection closed")
            for event in self.conn.receive_data(data):
                stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
                if stream is None:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    stream["status"] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    stream["body"] += event.data
                elif isinstance(event, h2.events.StreamEnded):
                    stream["ended"] = True
                elif isinstance(event, h2.events.StreamReset):
                    stream["reset"] = event.error_code
            self.flush()

    def finished(self, stream_id: int) -> bool:
        stream = self.streams[stream_id]
        return bool(stream["ended"] or stream["reset"] is not None)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("app", "path"), [(ASGI, "/read-slowly"), (WSGI, "/read-disconnect")], ids=["asgi", "wsgi"]
)
def test_h2_a_stalled_stream_body_gets_408_and_the_connection_serves_on(
    start: Start, app: str, path: str
) -> None:
    server = start(app)
    client = H2Client(server.port)
    try:
        stalled = client.request(b"POST", path.encode(), b"abc", end=False)
        # Streams served meanwhile, one after another: one that starts after the stalled stream's app
        # waits must not put its deadline off.
        for _ in range(2):
            other = client.request(b"GET", b"/")
            client.until(lambda: client.finished(other))  # noqa: B023 - called before `other` changes
            assert (client.streams[other]["status"], client.streams[other]["body"]) == (200, b"hello, world")
        assert not client.finished(stalled)
        client.until(lambda: client.finished(stalled))
        outcome = client.streams[stalled]  # nothing of its response was sent: a 408, then RST_STREAM
        assert (outcome["status"], outcome["body"]) == (408, b"request body not received in time\n"), outcome
        after = client.request(b"GET", b"/")
        client.until(lambda: client.finished(after))
        assert client.streams[after]["status"] == 200
    finally:
        client.close()
    log_lines(server, 1, "request body not received in time (--timeout-read 1s)")


def test_h2_a_stream_whose_window_stays_shut_is_reset_and_the_connection_serves_on(start: Start) -> None:
    server = start(ASGI)
    client = H2Client(server.port)
    try:
        # The client never opens stream 1's window again: its app waits to send after the first 64 KiB.
        big = client.request(b"GET", f"/big?size={SIZE}".encode())
        client.until(lambda: client.finished(big))
        assert client.streams[big]["reset"] == h2.errors.ErrorCodes.CANCEL
        assert len(client.streams[big]["body"]) < SIZE
        after = client.request(b"GET", b"/")
        client.until(lambda: client.finished(after))
        assert (client.streams[after]["status"], client.streams[after]["body"]) == (200, b"hello, world")
    finally:
        client.close()
    log_lines(server, 1, "response not taken by the client in time (--timeout-send 1s): stream reset")
    wait_for(lambda: events(server)["big"]["error"] is not None)
    assert events(server)["big"]["error"].startswith("ClientTimeout")
