"""ASGI extensions on HTTP/1.1 and HTTP/2: http.response.early_hint (103) and http.response.trailers."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from tests.conftest import TricornProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    proc = TricornProcess(["tests.apps.extension_apps:app"]).wait_ready()
    yield proc
    proc.close()


def h1(port: int, target: str, version: str = "1.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def h2_get(port: int, target: str) -> list[h2.events.Event]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(
            1,
            [(":method", "GET"), (":path", target), (":scheme", "http"), (":authority", "x")],
            end_stream=True,
        )
        sock.sendall(conn.data_to_send())
        events: list[h2.events.Event] = []
        while not any(isinstance(e, h2.events.StreamEnded) for e in events):
            chunk = sock.recv(65536)
            assert chunk, "closed before the stream ended"
            events += conn.receive_data(chunk)
            sock.sendall(conn.data_to_send())
    return events


def test_early_hints_over_http11(server: TricornProcess) -> None:
    data = h1(server.port, "/hints")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert b"link: </a.css>; rel=preload; as=style\r\n" in data.split(b"\r\n\r\n", 1)[0]
    assert b"HTTP/1.1 200 OK\r\n" in data and data.endswith(b"\r\n6\r\nhinted\r\n0\r\n\r\n")


def test_no_early_hints_to_http10(server: TricornProcess) -> None:
    data = h1(server.port, "/hints", "1.0")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"103" not in data.split(b"\r\n", 1)[0]


def test_early_hints_over_h2(server: TricornProcess) -> None:
    events = h2_get(server.port, "/hints")
    informational = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
    assert len(informational) == 1
    assert (b":status", b"103") in informational[0].headers
    assert (b"link", b"</a.css>; rel=preload; as=style") in informational[0].headers
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert (b":status", b"200") in response.headers


def test_trailers_over_http11_chunked(server: TricornProcess) -> None:
    data = h1(server.port, "/trailers")
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding: chunked" in head
    assert body == b"6\r\npart1 \r\n5\r\npart2\r\n0\r\nx-checksum: abc123\r\n\r\n"


def test_trailers_dropped_with_content_length(server: TricornProcess) -> None:
    data = h1(server.port, "/trailers?length")
    head, body = data.split(b"\r\n\r\n", 1)
    assert b"content-length: 11" in head and body == b"part1 part2"


def test_trailers_over_h2(server: TricornProcess) -> None:
    events = h2_get(server.port, "/trailers")
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert body == b"part1 part2"
    trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
    assert len(trailers) == 1 and trailers[0].headers == [(b"x-checksum", b"abc123")]
