"""HTTP/1.1 end to end: a real tricorn process serving tests.apps.basic, over real sockets.

Most tests run on both parser backends and once on the plain asyncio loop. Raw sockets are used
wherever the exact bytes matter (framing, pipelining, 100-continue, timeouts); httpx elsewhere.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TricornProcess, raw_request, rss_kib, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.basic:app"

SERVERS = [
    pytest.param(["--http", "httptools"], id="httptools"),
    pytest.param(["--http", "h11"], id="h11"),
    pytest.param(["--http", "h11", "--loop", "asyncio"], id="h11-asyncio"),
]

Start = Callable[..., TricornProcess]


@pytest.fixture(params=SERVERS)
def start(request: pytest.FixtureRequest, tricorn: type[TricornProcess]) -> Start:
    """``start(*options, env=...)``: a ready tricorn serving the basic app with this run's backend."""
    backend: list[str] = request.param

    def starter(*options: str, env: dict[str, str] | None = None) -> TricornProcess:
        return tricorn([*backend, *options, APP], env=env).wait_ready()

    return starter


@pytest.fixture
def server(start: Start) -> TricornProcess:
    return start()


# -- a small HTTP/1.1 response reader, independent of the server's code


class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name]
        return ", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class Reader:
    """Reads responses off a socket (or out of bytes already received, with ``sock=None``)."""

    def __init__(self, sock: socket.socket | None, data: bytes = b"") -> None:
        self.sock = sock
        self.buf = data

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20) if self.sock is not None else b""
        if not data:
            raise EOFError(f"connection closed; unread: {self.buf[:200]!r}")
        self.buf += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        out, _, self.buf = self.buf.partition(marker)
        return out

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while True:
            try:
                self._fill()
            except EOFError:
                out, self.buf = self.buf, b""
                return out

    def response(self, method: str = "GET") -> Response:
        head = self.until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")
        version, code, reason = ([*status_line.split(" ", 2), ""])[:3]
        assert version == "HTTP/1.1", status_line
        headers = [
            (name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)
        ]
        status = int(code)
        response = Response(status, reason, headers, b"")
        if method == "HEAD" or status in (204, 304) or status < 200:
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.until(b"\r\n")  # no trailers expected: the blank line
                    break
                parts.append(self.exact(size))
                assert self.exact(2) == b"\r\n"
            response.body = b"".join(parts)
        elif response.header("content-length") is not None:
            response.body = self.exact(int(response.header("content-length") or 0))
        else:
            response.body = self.rest()
        return response

    def at_eof(self) -> bool:
        """Wait (up to the socket's timeout) for the peer to close; True if it did with nothing more sent."""
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        self.buf += data
        return data == b""


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def parse(data: bytes, methods: list[str] | None = None) -> list[Response]:
    reader = Reader(None, data)
    out = []
    for method in methods or []:
        out.append(reader.response(method))
    while reader.buf:
        out.append(reader.response())
    return out


def log_lines(server: TricornProcess, count: int, containing: str) -> list[str]:
    """The log's lines containing ``containing``, once there are ``count`` of them (the server may write a
    log line just after the client has its response)."""
    wait_for(lambda: len([line for line in server.output().splitlines() if containing in line]) >= count)
    return [line for line in server.output().splitlines() if containing in line]


def app_events(server: TricornProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/events", headers={"connection": "close"}).json()


def get(path: str, extra: str = "", version: str = "1.1", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: test\r\n{extra}\r\n".encode()


# -- scope


def test_listening_line_names_backend_and_loop(server: TricornProcess) -> None:
    wait_for(lambda: "listening on" in server.output())  # the port may answer just before the line is written
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+) \(pid (\d+), (\w+), (\w+)\)", server.output())
    assert match is not None, server.output()
    assert int(match[1]) == server.port
    assert int(match[2]) == server.proc.pid
    argv = server.proc.args
    assert match[3] == argv[argv.index("--http") + 1]
    assert match[4] == ("asyncio" if "--loop" in argv else "uvloop")


def test_an_app_that_changes_its_scope_changes_no_other(server: TricornProcess) -> None:
    # The same bytes, again and again on one connection and on another: the fast lane takes them as the
    # request it remembers, whose fields each scope gets a list of its own of.
    raw = b"GET /meddle HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n"
    answers = []
    for _ in range(2):
        with connect(server.port) as sock:
            reader = Reader(sock)
            for _ in range(3):
                sock.sendall(raw)
                response = reader.response()
                assert response.status == 200
                answers.append(response.json())
    assert answers[0]["headers"] == [["host", "a.example"], ["accept", "*/*"]]
    assert answers[0]["trailers"] == {}
    assert "x.meddled" not in answers[0]["extensions"] and answers[0]["refused"] is True
    for answer in answers:
        assert answer.pop("client")[0] == "127.0.0.1"  # (each connection has a port of its own)
    assert all(answer == answers[0] for answer in answers[1:]), answers


def test_scope_is_complete(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"GET /echo/caf%C3%A9%20x%2Fy?x=1&y=%20&z=%C3%A9 HTTP/1.1\r\n"
            b"Host: test.example:8080\r\nX-Dup: one\r\nX-Other: a\r\nx-dup: two\r\nUser-Agent: raw\r\n"
            b"Connection: close\r\n\r\n"
        )
        client_port = sock.getsockname()[1]
        response = Reader(sock).response()
    assert response.status == 200
    scope = response.json()
    assert {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
        "root_path", "headers", "client", "server", "state",
    } <= set(scope["keys"])  # fmt: skip
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/echo/café x/y"  # percent-decoded as UTF-8, %2F included
    assert scope["raw_path"] == "/echo/caf%C3%A9%20x%2Fy"  # as sent, without the query
    assert scope["query_string"] == "x=1&y=%20&z=%C3%A9"  # never decoded
    assert scope["root_path"] == ""
    assert scope["headers"] == [
        ["host", "test.example:8080"],
        ["x-dup", "one"],
        ["x-other", "a"],
        ["x-dup", "two"],
        ["user-agent", "raw"],
        ["connection", "close"],
    ]
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["types"] == {
        "raw_path": "bytes",
        "query_string": "bytes",
        "client": "tuple",
        "server": "tuple",
    }
    assert scope["state"]["started"] is True


def test_invalid_utf8_in_path_is_replaced_not_refused(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/echo/%FF%FEok")
    assert response.status_code == 200
    assert response.json()["path"] == "/echo/\ufffd\ufffdok"
    assert response.json()["raw_path"] == "/echo/%FF%FEok"


def test_root_path(start: Start) -> None:
    server = start("--root-path", "/mount")
    scope = httpx.get(f"{server.url}/echo?a=b").json()
    assert scope["root_path"] == "/mount"
    assert scope["path"] == "/mount/echo"  # ASGI: path includes root_path
    assert scope["raw_path"] == "/echo"


def test_state_is_a_copy_per_request(server: TricornProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        first = client.get("/echo").json()["state"]
        second = client.get("/echo").json()["state"]
    # Each request wrote "mutated_by_request" into its own copy; the next one does not see it.
    assert "mutated_by_request" not in first
    assert "mutated_by_request" not in second
    assert first["started"] is second["started"] is True
    # The copy is shallow (as the spec says): objects in it are shared, so the counter counts.
    assert second["counter"]["requests"] == first["counter"]["requests"] + 1


def test_no_state_without_lifespan(start: Start) -> None:
    server = start("--lifespan", "off")
    scope = httpx.get(f"{server.url}/echo").json()
    assert scope["state"] is None
    assert "basic app: lifespan startup" not in server.output()


# -- request bodies


def test_large_body_is_streamed_in_parts(server: TricornProcess) -> None:
    size = 8 * 1024 * 1024

    def body() -> Iterator[bytes]:
        for _ in range(size // 65536):
            yield b"b" * 65536

    response = httpx.post(f"{server.url}/read-slowly", content=body(), timeout=30)
    assert response.status_code == 200
    assert response.json()["bytes"] == size
    assert response.json()["parts"] > 1  # delivered piecewise, not buffered whole


def test_body_with_content_length(server: TricornProcess) -> None:
    response = httpx.post(f"{server.url}/echo", content=b"x" * 100_000)
    assert response.json()["body"] == "x" * 100_000


def test_chunked_request_body(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    (response,) = parse(data)
    assert response.status == 200
    assert response.json()["body"] == "hello world"


def test_chunked_request_body_sent_in_pieces(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for piece in (b"3\r\n", b"abc\r", b"\n4\r\nde", b"fg\r\n", b"0\r\n", b"\r\n"):
            sock.sendall(piece)
        response = Reader(sock).response()
    assert response.json()["body"] == "abcdefg"


# -- connections


def test_half_closed_client_still_gets_its_response(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(get("/slow?delay=0.2"))
        sock.shutdown(socket.SHUT_WR)  # "nothing more from me", as `nc -N` does
        reader = Reader(sock)
        response = reader.response()
        assert reader.at_eof()
    assert response.body == b"slow done"


def test_keep_alive_reuses_the_connection(server: TricornProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        clients = [tuple(client.get("/echo").json()["client"]) for _ in range(4)]
    assert len(set(clients)) == 1


def test_pipelined_requests_are_answered_in_order(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        get("/echo?i=1")
        + b"POST /echo?i=2 HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody"
        + get("/echo?i=3", "Connection: close\r\n"),
    )
    responses = parse(data)
    assert [r.status for r in responses] == [200, 200, 200]
    assert [r.json()["query_string"] for r in responses] == ["i=1", "i=2", "i=3"]
    assert [r.json()["method"] for r in responses] == ["GET", "POST", "GET"]
    assert responses[1].json()["body"] == "body"


def test_pipelined_slow_request_does_not_let_the_next_overtake(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/slow?delay=0.2") + get("/", "Connection: close\r\n"))
    assert [r.body for r in parse(data)] == [b"slow done", b"hello, world"]


def test_a_higher_minor_http_version_is_served_as_1_1(server: TricornProcess) -> None:
    # RFC 9110 §6.2: HTTP/1.2 is processed as HTTP/1.1 (keep-alive by default), answered in HTTP/1.1.
    data = raw_request(
        server.port, get("/echo?i=1", version="1.2") + get("/echo?i=2", "Connection: close\r\n")
    )
    responses = parse(data)
    assert [r.status for r in responses] == [200, 200]
    assert data.startswith(b"HTTP/1.1 200 ")
    assert responses[0].json()["http_version"] == "1.1"


def test_bad_input_after_pipelined_requests_is_answered_after_them(server: TricornProcess) -> None:
    # One read: two good requests (the second with a body), then garbage. The good ones are answered in
    # order, then the garbage gets its 400, and the connection closes.
    data = raw_request(
        server.port,
        get("/echo?i=1")
        + b"POST /echo?i=2 HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody"
        + b"GARBAGE\x01 / HTTP/1.1\r\n\r\n",
    )
    responses = parse(data)
    assert [r.status for r in responses] == [200, 200, 400]
    assert [r.json()["query_string"] for r in responses[:2]] == ["i=1", "i=2"]
    assert responses[1].json()["body"] == "body"
    assert responses[2].header("connection") == "close"
    assert b"Traceback" not in data
    assert httpx.get(server.url).status_code == 200  # and the server goes on serving


def test_expect_100_continue_sent_when_the_app_reads(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\n"
        )
        reader = Reader(sock)
        interim = reader.response()
        assert interim.status == 100
        sock.sendall(b"hello")
        final = reader.response()
    assert final.status == 200
    assert final.json()["body"] == "hello"


def test_expect_100_continue_not_sent_when_the_app_rejects(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /reject HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        reader = Reader(sock)
        response = reader.response()
        assert response.status == 417
        assert response.body == b"not interested\n"
        # The body was never read: the connection cannot be reused and is closed.
        assert reader.at_eof()
    assert b"100 Continue" not in reader.buf


def test_head_has_no_body_but_the_length(server: TricornProcess) -> None:
    response = httpx.head(f"{server.url}/head-test")
    assert response.status_code == 200
    assert response.headers["content-length"] == "13"
    assert response.content == b""
    # On the wire: the next response follows the HEAD response's head immediately.
    data = raw_request(
        server.port,
        get("/head-test", method="HEAD")
        + get("/stream?n=2", method="HEAD")
        + get("/", "Connection: close\r\n"),
    )
    head, stream_head, hello = parse(data, ["HEAD", "HEAD"])
    assert head.header("content-length") == "13"
    assert head.header("x-method") == "HEAD"
    assert stream_head.header("transfer-encoding") is None
    assert hello.body == b"hello, world"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: TricornProcess, code: int) -> None:
    data = raw_request(server.port, get(f"/status/{code}") + get("/", "Connection: close\r\n"))
    first, second = parse(data)
    assert first.status == code
    assert first.body == b""
    assert first.header("transfer-encoding") is None
    if code == 204:
        assert first.header("content-length") is None
    assert b"a body the server must drop" not in data
    assert second.body == b"hello, world"


def test_http_10_closes_by_default(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        response = reader.response()
        assert reader.at_eof()
    assert response.body == b"hello, world"
    assert response.header("connection") == "close"


def test_http_10_keep_alive(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = reader.response()
        assert first.header("connection") == "keep-alive"
        sock.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        second = reader.response()
        assert second.json()["http_version"] == "1.0"
        # A streamed response cannot be chunked for HTTP/1.0: it is delimited by closing.
        sock.sendall(b"GET /stream?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        third = reader.response()
    assert third.header("connection") == "close"
    assert third.header("transfer-encoding") is None
    assert third.body == b"chunk 0\nchunk 1\n"


def test_connection_close(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(get("/", "Connection: close\r\n"))
        reader = Reader(sock)
        response = reader.response()
        assert reader.at_eof()
    assert response.header("connection") == "close"


def test_date_and_server_headers(server: TricornProcess) -> None:
    response = httpx.get(server.url)
    assert response.headers["server"] == "tricorn"
    date = parsedate_to_datetime(response.headers["date"])
    assert date.tzinfo is not None
    assert response.headers["date"].endswith(" GMT")
    assert len(response.headers.get_list("date")) == 1


def test_absolute_form_target(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        b"GET http://example.com/echo?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    (response,) = parse(data)
    scope = response.json()
    assert scope["path"] == "/echo"
    assert scope["raw_path"] == "/echo"
    assert scope["query_string"] == "x=1"


def test_streaming_response_is_chunked(server: TricornProcess) -> None:
    with httpx.stream("GET", f"{server.url}/stream?n=5") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert response.read() == b"".join(b"chunk %d\n" % i for i in range(5))
    data = raw_request(server.port, get("/stream?n=2", "Connection: close\r\n"))
    assert data.endswith(b"\r\n\r\n8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n0\r\n\r\n")


# -- application errors


def test_error_before_start_is_a_500_without_traceback(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/error")
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "boom" not in response.text
    assert response.headers["connection"] == "close"
    log = server.output()
    assert "Traceback (most recent call last)" in log
    assert "RuntimeError: boom before the response started" in log
    assert httpx.get(server.url).status_code == 200


def test_error_after_start_closes_the_connection(server: TricornProcess) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/error-after-start")
    assert "RuntimeError: boom after the response started" in server.output()
    assert httpx.get(server.url).text == "hello, world"
    data = raw_request(server.port, get("/error-after-start"))
    assert data.startswith(b"HTTP/1.1 200 ")
    assert not data.endswith(b"0\r\n\r\n")  # the chunked body was cut, not ended


def test_bad_response_header_is_a_500(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/bad-header"))
    (response,) = parse(data)
    assert response.status == 500
    assert b"injected" not in data
    assert "x-bad" in server.output()  # the error log names the header


def test_app_returning_without_response_is_a_500(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/no-response")
    assert response.status_code == 500
    assert "returned without completing the response" in server.output()


def test_client_disconnect_reaches_the_app(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(get("/wait-disconnect"))
        Reader(sock).until(b"waiting for you to leave\n")
    wait_for(lambda: "disconnect /wait-disconnect" in app_events(server)["events"])
    # A client going away is not an application error.
    assert "ERROR" not in server.output()
    assert httpx.get(server.url).status_code == 200


# -- limits


def test_limit_request_body(start: Start) -> None:
    server = start("--limit-request-body", "16")
    assert httpx.post(f"{server.url}/echo", content=b"x" * 16).status_code == 200
    response = httpx.post(f"{server.url}/echo", content=b"x" * 17)
    assert response.status_code == 413


def test_limit_request_body_chunked(start: Start) -> None:
    server = start("--limit-request-body", "16")
    data = raw_request(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"10\r\n"
        + b"x" * 16
        + b"\r\n"
        b"1\r\ny\r\n0\r\n\r\n",
    )
    (response,) = parse(data)
    assert response.status == 413


def test_limit_request_body_chunked_after_the_app_started(start: Start) -> None:
    server = start("--limit-request-body", "16")
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = Reader(sock)
        assert reader.response().status == 100  # the app is running and waits for the body
        sock.sendall(b"10\r\n" + b"x" * 16 + b"\r\n1\r\ny\r\n0\r\n\r\n")
        response = reader.response()
        assert response.status == 413
        assert reader.at_eof()


def test_limit_concurrency(start: Start) -> None:
    server = start("--limit-concurrency", "1")
    with connect(server.port) as busy:
        busy.sendall(get("/wait-disconnect"))
        Reader(busy).until(b"waiting for you to leave\n")  # the one allowed task is running
        response = httpx.get(server.url)
        assert response.status_code == 503
    wait_for(lambda: httpx.get(f"{server.url}/events").status_code == 200)


# -- timeouts


def test_keep_alive_timeout_closes_idle_connections(start: Start) -> None:
    server = start("--timeout-keep-alive", "0.3")
    with connect(server.port) as sock:
        reader = Reader(sock)
        sock.sendall(get("/"))
        assert reader.response().body == b"hello, world"
        assert reader.at_eof()
    assert reader.buf == b""


def test_request_header_timeout(start: Start) -> None:
    server = start("--timeout-request-header", "0.3")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.sendall(b"Host: test\r\nX-Slow: ")  # and then nothing more
        reader = Reader(sock)
        response = reader.response()
        assert response.status == 408
        assert reader.at_eof()


# -- flow control


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_client_that_does_not_read_does_not_fill_memory(server: TricornProcess) -> None:
    size = 256 * 1024 * 1024
    httpx.get(f"{server.url}/events")  # warm up the app's code paths before measuring
    before = rss_kib(server.proc.pid)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(get(f"/big?size={size}"))
        reader = Reader(sock)
        head = reader.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        # Stop reading; wait until the app is blocked in send (waiting for the socket to drain).
        wait_for(lambda: app_events(server)["big"]["in_send"], timeout=30)
        big = app_events(server)["big"]
        assert not big["done"]
        assert big["sent"] < size // 4
        grown = rss_kib(server.proc.pid) - before
        assert grown < 64 * 1024, f"server RSS grew by {grown} KiB while the client was not reading"
        received = len(reader.buf)
        while received < size:
            data = sock.recv(1 << 20)
            assert data, f"connection closed after {received} of {size} bytes"
            received += len(data)
    assert received == size
    wait_for(lambda: app_events(server)["big"]["done"])


# -- graceful shutdown


def test_graceful_shutdown_lets_a_request_finish(start: Start, tmp_path: Path) -> None:
    marker = tmp_path / "shutdown-ran"
    server = start(env={"TRICORN_TEST_SHUTDOWN_FILE": str(marker)})
    with connect(server.port) as sock:
        sock.sendall(get("/slow?delay=1.5"))
        wait_for(lambda: "slow started" in app_events(server)["events"])
        server.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused)
        assert server.proc.poll() is None  # still serving the slow request
        reader = Reader(sock)
        response = reader.response()
        assert response.status == 200
        assert response.body == b"slow done"
        assert response.header("connection") == "close"
        assert reader.at_eof()
    assert server.wait() == 0
    assert marker.read_text() == "shutdown complete\n"
    log = server.output()
    assert "received SIGTERM, shutting down gracefully" in log
    assert log.index("basic app: lifespan shutdown") > log.index("received SIGTERM")
    assert "stopped" in log


def test_shutdown_closes_idle_keep_alive_connections(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        reader = Reader(sock)
        sock.sendall(get("/"))
        assert reader.response().status == 200
        server.send_signal(signal.SIGTERM)
        assert reader.at_eof()
    assert server.wait() == 0


def test_graceful_timeout_disconnects_remaining_requests(start: Start) -> None:
    server = start("--timeout-graceful-shutdown", "0.3")
    with connect(server.port) as sock:
        sock.sendall(get("/wait-disconnect"))
        reader = Reader(sock)
        reader.until(b"waiting for you to leave\n")
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        tail = reader.rest()
    assert not tail.endswith(b"0\r\n\r\n")  # cut, not completed
    log = server.output()
    assert "graceful shutdown timed out" in log
    assert "basic app: got http.disconnect on /wait-disconnect" in log
    assert "basic app: lifespan shutdown" in log


def test_graceful_shutdown_waits_for_an_app_whose_client_has_gone(start: Start) -> None:
    """The client resets its connection while its app works: a stop lets the app finish (its work, a
    database write say, is part of the request), instead of tearing its coroutine down with the loop."""
    server = start()
    with connect(server.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        sock.sendall(get("/work?delay=1"))
        wait_for(lambda: "work started" in app_events(server)["events"])
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    log = server.output()
    assert "basic app: work finished" in log
    assert "Traceback" not in log and "GeneratorExit" not in log, log


def test_graceful_timeout_does_not_wait_for_an_app_ignoring_the_disconnect(start: Start) -> None:
    server = start("--timeout-graceful-shutdown", "0.3")
    with connect(server.port) as sock:
        sock.sendall(get("/slow?delay=60"))
        wait_for(lambda: "slow started" in app_events(server)["events"])
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        assert Reader(sock).rest() == b""
    assert "graceful shutdown timed out" in server.output()


# -- access log


def test_access_log_format_and_escaping(start: Start) -> None:
    server = start(
        "--access-log-format", '%(h)s "%(r)s" %(s)s %(B)s %(U)s %(q)s %({x-trace}i)s %({content-type}o)s'
    )
    raw_request(
        server.port,
        b"GET /a%0Ab%1B%5B31m%22?q=%0A HTTP/1.1\r\nHost: test\r\nX-Trace: t\tz\r\nConnection: close\r\n\r\n",
    )
    raw_request(server.port, get("/", "Connection: close\r\n"))
    lines = log_lines(server, 2, '127.0.0.1 "GET /')
    assert lines == [
        '127.0.0.1 "GET /a\\x0ab\\x1b[31m\\x22?q=%0A HTTP/1.1" 404 10 /a\\x0ab\\x1b[31m\\x22 q=%0A '
        "t\\x09z text/plain; charset=utf-8",
        '127.0.0.1 "GET / HTTP/1.1" 200 12 /  - text/plain; charset=utf-8',
    ]
    assert "\x1b" not in server.output()


def test_default_access_log_line(server: TricornProcess) -> None:
    httpx.get(f"{server.url}/echo?x=1", headers={"user-agent": "probe/1.0", "referer": "http://r/"})
    pattern = re.compile(
        r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /echo\?x=1 HTTP/1\.1" 200 \d+ '
        r'"http://r/" "probe/1\.0"$'
    )
    (line,) = log_lines(server, 1, '"GET /echo')
    assert pattern.match(line), line


def test_no_access_log(start: Start) -> None:
    server = start("--no-access-log")
    assert httpx.get(server.url).status_code == 200
    assert httpx.get(f"{server.url}/missing").status_code == 404
    # /error's traceback is logged before its response is written, so after it any access line of the
    # requests before would already be in the log.
    assert httpx.get(f"{server.url}/error").status_code == 500
    assert "boom before the response started" in server.output()
    assert "GET /" not in server.output()
    assert "listening on" in server.output()


def test_sigterm_as_soon_as_the_port_answers_is_graceful(start: Start, tmp_path: Path) -> None:
    # The socket accepts connections from the moment it listens: a signal sent then must already be
    # handled gracefully, not kill the process.
    marker = tmp_path / "shutdown-ran"
    server = start(env={"TRICORN_TEST_SHUTDOWN_FILE": str(marker)})
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0, server.output()
    assert marker.exists()
