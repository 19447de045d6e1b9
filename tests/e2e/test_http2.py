"""HTTP/2 over cleartext (h2c) end to end: real tricorn processes, real sockets.

Three independent peers: the h2 library in client mode over a plain socket (:class:`H2Client`, where
frames, streams and windows matter), httpx with ``http2=True, http1=False`` (prior knowledge) and curl
(``--http2-prior-knowledge``, and ``--http2`` for ``Upgrade: h2c``). Most tests share one server serving
tests.apps.h2_apps (module scope: a process per test would dominate the run); tests that need other
settings start their own. What the app saw that a client cannot (an ``http.disconnect``, a request that
must never have reached it) comes from the app's ``/events`` and ``/__seen``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    DataReceived,
    InformationalResponseReceived,
    PingAckReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)

from tests.conftest import BACKENDS, TricornProcess, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.h2_apps:app"
WSGI_APP = "tests.apps.wsgi_basic:app"
DEADLINE = 10.0  # for any one exchange: generous, the suite shares two cores
MB5 = 5 * 1024 * 1024
MB2 = 2 * 1024 * 1024

# ------------------------------------------------------------------------------------------ the client


class H2Response:
    """What one stream received: the response head, 1xx heads, body, and how it ended."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.informational: list[list[tuple[bytes, bytes]]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.body = bytearray()
        self.ended = False  # END_STREAM received
        self.reset: int | None = None  # the error code of a RST_STREAM received

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None

    @property
    def status(self) -> int:
        value = self.header(":status")
        assert value is not None, f"no response head (reset: {self.reset})"
        return int(value)

    def header(self, name: str) -> str | None:
        values = [v.decode("latin-1") for k, v in self.headers if k == name.encode()]
        return ", ".join(values) if values else None

    def names(self) -> list[str]:
        return [k.decode("latin-1") for k, _ in self.headers]

    def json(self) -> Any:
        return json.loads(bytes(self.body))


def client_config() -> H2Configuration:
    # No inbound validation: a test sees exactly what the server sent, a forbidden field included.
    return H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)


class H2Client:
    """An HTTP/2 client connection: the h2 library's core over a blocking socket.

    Received DATA is acknowledged at once, except on the streams in ``held`` (their window stays shut
    until ``release``). GOAWAY frames are taken off the byte stream before the core sees them and kept in
    ``goaways`` as ``(last_stream_id, error_code)``: the h2 core refuses every frame after a GOAWAY, and a
    graceful GOAWAY is followed by the responses still in flight.
    """

    def __init__(
        self,
        port: int,
        *,
        settings: dict[int, int] | None = None,
        window: int = 0,
        sock: socket.socket | None = None,
        conn: H2Connection | None = None,
    ) -> None:
        self.port = port
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        if conn is None:
            conn = H2Connection(config=client_config())
            conn.initiate_connection()
        self.conn = conn
        if settings:
            conn.update_settings(settings)
        if window:
            conn.increment_flow_control_window(window)
        self.streams: dict[int, H2Response] = {}
        self.finished: list[int] = []  # stream ids, in the order they ended or were reset
        self.goaways: list[tuple[int, int]] = []
        self.log: list[str] = []  # "goaway", "end 1", "reset 3": the order things arrived in
        self.pings: list[bytes] = []
        self.held: set[int] = set()
        self.unacked: dict[int, int] = {}
        self.eof = False
        self.inbuf = b""
        self.flush()

    # -- sending
    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_headers(
        self,
        path: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        end_stream: bool = True,
        authority: str | None = None,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", (authority or f"127.0.0.1:{self.port}").encode()),
            (b":path", path.encode("latin-1")),
            *((k.encode(), v.encode("latin-1")) for k, v in headers),
        ]
        self.streams[stream_id] = H2Response()
        self.conn.send_headers(stream_id, fields, end_stream=end_stream)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end_stream: bool = True) -> None:
        """Send ``data`` as the windows allow, reading (WINDOW_UPDATE) while they are shut."""
        view = memoryview(data)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump()
                assert not self.eof, "connection closed while sending a body"
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def reset(self, stream_id: int, code: ErrorCodes = ErrorCodes.CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    def ping(self, data: bytes) -> None:
        self.conn.ping(data)
        self.flush()

    def release(self, stream_id: int) -> None:
        """Open a held stream's window: acknowledge what it received and all that follows."""
        self.held.discard(stream_id)
        unacked = self.unacked.pop(stream_id, 0)
        if unacked:
            self.conn.acknowledge_received_data(unacked, stream_id)
            self.flush()

    # -- receiving
    def pump(self, timeout: float = DEADLINE) -> None:
        """One read (up to ``timeout``): its frames handled, the answers (ACKs, windows) sent."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return
        self.feed(data)

    def feed(self, data: bytes) -> None:
        self.inbuf += data
        while len(self.inbuf) >= 9:
            length = int.from_bytes(self.inbuf[:3], "big")
            if len(self.inbuf) < 9 + length:
                break
            frame, self.inbuf = self.inbuf[: 9 + length], self.inbuf[9 + length :]
            if frame[3] == 0x7:  # GOAWAY
                last, code = struct.unpack("!LL", frame[9:17])
                self.goaways.append((last & 0x7FFFFFFF, code))
                self.log.append("goaway")
                continue
            for event in self.conn.receive_data(frame):
                self._event(event)
        self.flush()

    def _event(self, event: object) -> None:
        stream_id = getattr(event, "stream_id", 0)
        response = self.streams.setdefault(stream_id, H2Response()) if stream_id else None
        if isinstance(event, ResponseReceived):
            response.headers = list(event.headers)  # type: ignore[union-attr]
        elif isinstance(event, InformationalResponseReceived):
            response.informational.append(list(event.headers))  # type: ignore[union-attr]
        elif isinstance(event, TrailersReceived):
            response.trailers = list(event.headers)  # type: ignore[union-attr]
        elif isinstance(event, DataReceived):
            response.body += event.data  # type: ignore[union-attr]
            size = event.flow_controlled_length
            if stream_id in self.held:
                self.unacked[stream_id] = self.unacked.get(stream_id, 0) + size
            elif size:
                self.conn.acknowledge_received_data(size, stream_id)
        elif isinstance(event, StreamEnded | StreamReset):
            assert response is not None
            if isinstance(event, StreamReset):
                response.reset = int(event.error_code)
                self.log.append(f"reset {stream_id}")
            else:
                response.ended = True
                self.log.append(f"end {stream_id}")
            if stream_id not in self.finished:
                self.finished.append(stream_id)
        elif isinstance(event, PingAckReceived):
            self.pings.append(event.ping_data)

    def until(self, predicate: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.eof:
                raise AssertionError(f"connection closed before {what} (goaways: {self.goaways})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{what} not reached within {timeout}s")
            self.pump(remaining)

    def response(self, stream_id: int, timeout: float = DEADLINE) -> H2Response:
        response = self.streams[stream_id]
        self.until(lambda: response.done, f"the end of stream {stream_id}", timeout)
        return response

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> H2Response:
        stream_id = self.send_headers(path, method, headers, end_stream=body is None)
        if body is not None:
            self.send_body(stream_id, body)
        return self.response(stream_id)

    def wait_closed(self, timeout: float = DEADLINE) -> None:
        self.until(lambda: self.eof, "the server closing", timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def upgrade(cls, port: int, path: str = "/echo") -> tuple[H2Client, bytes]:
        """``Upgrade: h2c`` from HTTP/1.1 (RFC 7540 §3.2): the HTTP/1.1 head the server answered, and the
        HTTP/2 connection after it, whose stream 1 is the upgraded request."""
        conn = H2Connection(config=client_config())
        token = conn.initiate_upgrade_connection()
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: ".encode()
            + token
            + b"\r\n\r\n"
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response head: {buf!r}"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        client = cls(port, sock=sock, conn=conn)
        client.streams[1] = H2Response()
        client.feed(rest)
        return client, head


# ------------------------------------------------------------------------------------------ the servers


Start = Callable[..., TricornProcess]


@pytest.fixture
def start(tricorn: type[TricornProcess]) -> Start:
    """``start(*args)``: a ready tricorn of this test's own, stopped after the test."""

    def starter(*args: str) -> TricornProcess:
        return tricorn(list(args)).wait_ready()

    return starter


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    process = TricornProcess([APP])
    try:
        yield process.wait_ready()
    finally:
        process.close()


@pytest.fixture(scope="module", params=[pytest.param(b, id=b) for b in BACKENDS])
def h1_server(request: pytest.FixtureRequest) -> Iterator[TricornProcess]:
    """The h2_apps server on each HTTP/1.1 parser (what reads an ``Upgrade: h2c`` request)."""
    process = TricornProcess(["--http", request.param, APP])
    try:
        yield process.wait_ready()
    finally:
        process.close()


LIMIT_FIELDS = 10
LIMIT_BODY = 1000
LIMIT_CONCURRENCY = 2


@pytest.fixture(scope="module")
def limits_server() -> Iterator[TricornProcess]:
    options = ["--limit-request-fields", str(LIMIT_FIELDS), "--limit-request-body", str(LIMIT_BODY)]
    process = TricornProcess([*options, APP])
    try:
        yield process.wait_ready()
    finally:
        process.close()


@pytest.fixture(scope="module")
def wsgi_server() -> Iterator[TricornProcess]:
    process = TricornProcess(["--threads", "4", WSGI_APP])
    try:
        yield process.wait_ready()
    finally:
        process.close()


def app_events(server: TricornProcess) -> list[str]:
    """The app's /events over HTTP/1.1 (an empty list while the server answers 503)."""
    response = httpx.get(f"{server.url}/events", headers={"connection": "close"}, timeout=DEADLINE)
    return response.json()["events"] if response.status_code == 200 else []  # type: ignore[no-any-return]


def seen(server: TricornProcess) -> list[str]:
    """Every request the app was handed (tests.apps.h2_apps)."""
    return httpx.get(f"{server.url}/__seen", timeout=DEADLINE).json()["seen"]  # type: ignore[no-any-return]


def never_seen(server: TricornProcess, marker: str) -> None:
    reached = [line for line in seen(server) if marker in line]
    assert not reached, f"the app was handed a request it must never see: {reached}"


def marker() -> str:
    return uuid.uuid4().hex


def h2_client(server: TricornProcess) -> httpx.Client:
    """httpx speaking HTTP/2 by prior knowledge (no HTTP/1.1 allowed)."""
    return httpx.Client(base_url=server.url, http1=False, http2=True, timeout=DEADLINE)


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-S", "--max-time", "20", *args], capture_output=True, timeout=30)


# ---------------------------------------------------------------------------------- ASGI: scope, heads


def test_scope_over_prior_knowledge(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request(
            "/echo/caf%C3%A9%20x%2Fy?x=1&y=%20&z=%C3%A9", headers=[("x-dup", "one"), ("x-dup", "two")]
        )
        client_port = client.sock.getsockname()[1]
    assert response.status == 200
    scope = response.json()
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "http"
    assert scope["method"] == "GET"
    assert scope["path"] == "/echo/café x/y"
    assert scope["raw_path"] == "/echo/caf%C3%A9%20x%2Fy"
    assert scope["query_string"] == "x=1&y=%20&z=%C3%A9"
    assert scope["root_path"] == ""
    headers = scope["headers"]
    assert ["host", f"127.0.0.1:{server.port}"] in headers  # from :authority
    assert [h for h in headers if h[0] == "x-dup"] == [["x-dup", "one"], ["x-dup", "two"]]
    assert not [h for h in headers if h[0].startswith(":")]  # pseudo-headers are not fields
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"]["started"] is True


def test_httpx_prior_knowledge(server: TricornProcess) -> None:
    with h2_client(server) as client:
        response = client.post("/echo?a=b", content=b"hello")
        again = client.get("/echo")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    scope = response.json()
    assert (scope["http_version"], scope["method"], scope["body"]) == ("2", "POST", "hello")
    assert scope["query_string"] == "a=b"
    assert again.json()["client"] == scope["client"]  # the same connection


def test_curl_prior_knowledge(server: TricornProcess) -> None:
    result = curl("-i", "--http2-prior-knowledge", f"{server.url}/echo?via=curl")
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert json.loads(body)["http_version"] == "2"
    assert json.loads(body)["query_string"] == "via=curl"


@pytest.mark.parametrize("cuts", [(5,), (14,), (16, 24)], ids=["PRI", "PRI-line", "magic-then-settings"])
def test_prior_knowledge_preface_in_pieces(server: TricornProcess, cuts: tuple[int, ...]) -> None:
    # TCP may cut the client's preface anywhere (RFC 9113 §3.4 defines it as bytes, not a segment):
    # the server must recognise it however it arrives.
    conn = H2Connection(config=client_config())
    conn.initiate_connection()
    data = conn.data_to_send()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for start, end in zip((0, *cuts), (*cuts, len(data)), strict=True):
        try:
            sock.sendall(data[start:end])
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
            with contextlib.suppress(OSError):
                answer = sock.recv(65536)
            sock.close()
            pytest.fail(f"the server closed on a preface cut at byte {start}; it sent {answer[:120]!r}")
        time.sleep(0.05)  # pacing, so the pieces arrive in separate reads (not a wait for readiness)
    first = sock.recv(65536)
    assert first[3:4] == b"\x04", f"the server's first bytes are not a SETTINGS frame: {first[:120]!r}"
    with H2Client(server.port, sock=sock, conn=conn) as client:
        client.feed(first)
        response = client.request("/echo")
    assert response.status == 200
    assert response.json()["http_version"] == "2"


def test_response_head_gets_server_and_date(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/")
    assert response.names()[0] == ":status"
    assert response.status == 200
    assert response.header("server") == "tricorn"
    assert response.header("date") is not None and response.header("date").endswith(" GMT")  # type: ignore[union-attr]
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-length") == "12"
    assert bytes(response.body) == b"hello, world"
    assert response.ended


@pytest.mark.parametrize("date", [True, False], ids=["default", "no-date-header"])
def test_date_header_setting(start: Start, date: bool) -> None:
    # --no-date-header reaches HTTP/2 responses as it does HTTP/1.1 ones (proto/h2.py takes the date from
    # the same place): the app's, the server's own (a 501) and httpx's view of them, on h2c.
    server = start(APP) if date else start(APP, "--no-date-header")
    with H2Client(server.port) as client:
        answered = client.request("/")
        refused = client.request("/", method="BREW")
    with h2_client(server) as httpx_client:
        response = httpx_client.get("/")
    assert (answered.status, refused.status, response.status_code) == (200, 501, 200)
    assert response.http_version == "HTTP/2"
    for got in (answered.header("date"), refused.header("date"), response.headers.get("date")):
        if date:
            assert got is not None and got.endswith(" GMT"), got
        else:
            assert got is None, got
    assert answered.header("server") == refused.header("server") == "tricorn"  # the other default header


def test_head_has_no_body(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/head-test", method="HEAD")
        after = client.request("/")  # and the connection serves on
    assert response.status == 200
    assert response.header("content-length") == "13"
    assert response.header("x-method") == "HEAD"
    assert bytes(response.body) == b""
    assert bytes(after.body) == b"hello, world"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: TricornProcess, code: int) -> None:
    with H2Client(server.port) as client:
        response = client.request(f"/status/{code}")
        after = client.request("/")
    assert response.status == code
    assert response.ended
    assert bytes(response.body) == b""
    assert bytes(after.body) == b"hello, world"


def test_streamed_response_arrives_whole(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/stream?n=20")
    assert response.status == 200
    assert response.header("transfer-encoding") is None
    assert bytes(response.body) == b"".join(b"chunk %d\n" % i for i in range(20))


def test_connection_specific_response_headers_are_dropped(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/conn-headers")
    assert response.status == 200
    names = response.names()
    for name in ("connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"):
        assert name not in names
    assert response.header("x-kept") == "yes"
    assert bytes(response.body) == b"no connection fields"


def test_cookie_crumbs_are_joined(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/echo", headers=[("cookie", "a=1"), ("x-between", "x"), ("cookie", "b=2")])
    cookies = [h for h in response.json()["headers"] if h[0] == "cookie"]
    assert cookies == [["cookie", "a=1; b=2"]]


def test_expect_100_continue_when_the_app_reads(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        stream_id = client.send_headers(
            "/echo", "POST", [("expect", "100-continue"), ("content-length", "5")], end_stream=False
        )
        response = client.streams[stream_id]
        # The client waits for the 100 (generous: a server that never sends it fails here, not hangs).
        client.until(lambda: response.informational or response.done, "an interim response", timeout=3)
        assert [dict(h)[b":status"] for h in response.informational] == [b"100"]
        assert not response.headers
        client.send_body(stream_id, b"hello")
        client.response(stream_id)
    assert response.status == 200
    assert response.json()["body"] == "hello"


# ------------------------------------------------------------------------- bodies, flow control, streams


def test_large_request_body_with_a_concurrent_stream(server: TricornProcess) -> None:
    body = os.urandom(MB5)
    with H2Client(server.port) as client:
        upload = client.send_headers("/upload", "POST", end_stream=False)
        client.send_body(upload, body[: MB5 // 2], end_stream=False)
        # Half-way through the upload, the same connection serves another stream.
        other = client.request("/")
        assert bytes(other.body) == b"hello, world"
        assert not client.streams[upload].done
        client.send_body(upload, body[MB5 // 2 :])
        response = client.response(upload, timeout=30)
    assert response.status == 200
    result = response.json()
    assert result["bytes"] == MB5
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["parts"] > 1  # handed to the app as it came, not buffered whole


def test_large_response_with_a_concurrent_stream(server: TricornProcess) -> None:
    # The connection window is opened wide, the big stream's own window is held shut: its response
    # stalls at one window while another stream on the connection is answered.
    with H2Client(server.port, window=4 * MB5) as client:
        big = client.send_headers(f"/big?size={MB5}")
        client.held.add(big)
        response = client.streams[big]
        client.until(lambda: len(response.body) >= 65535, "the big stream's first window")
        other = client.request("/")
        assert bytes(other.body) == b"hello, world"
        assert not response.done
        assert len(response.body) == 65535  # the server kept to the stream's window
        client.release(big)
        client.response(big, timeout=30)
    assert response.status == 200
    assert response.ended
    assert len(response.body) == MB5
    assert response.body.count(b"x") == MB5


def test_slow_stream_does_not_hold_a_fast_one(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        slow = client.send_headers("/slow?delay=1")
        fast = client.send_headers("/")
        client.response(slow)
        client.response(fast)
        assert client.finished == [fast, slow]
        assert bytes(client.streams[fast].body) == b"hello, world"
        assert bytes(client.streams[slow].body) == b"slow done"


def test_many_concurrent_streams_on_one_connection(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        ids = [client.send_headers(f"/echo?i={i}") for i in range(50)]
        responses = [client.response(i) for i in ids]
    assert [r.json()["query_string"] for r in responses] == [f"i={i}" for i in range(50)]


def test_rst_stream_reaches_the_app_as_disconnect(server: TricornProcess) -> None:
    name = marker()
    log_start = len(server.output())
    with H2Client(server.port) as client:
        stream_id = client.send_headers(f"/hold?id={name}")
        wait_for(lambda: f"hold started {name}" in app_events(server), what="the app to start")
        client.reset(stream_id)
        wait_for(lambda: f"disconnect {name}" in app_events(server), what="http.disconnect in the app")
        after = client.request("/")  # the connection serves on
    assert bytes(after.body) == b"hello, world"
    assert "Traceback" not in server.output()[log_start:]  # a client going away is not an app error


# -------------------------------------------------------------------------------------------------- WSGI


def test_wsgi_environ(wsgi_server: TricornProcess) -> None:
    with H2Client(wsgi_server.port) as client:
        response = client.request(
            "/echo/x?y=1",
            "POST",
            [("cookie", "a=1"), ("cookie", "b=2"), ("content-type", "text/plain")],
            b"hi",
        )
    assert response.status == 200
    environ = response.json()
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/echo/x"
    assert environ["QUERY_STRING"] == "y=1"
    assert environ["HTTP_HOST"] == f"127.0.0.1:{wsgi_server.port}"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["body"] == "hi"


def test_wsgi_input_streams_a_large_body(wsgi_server: TricornProcess) -> None:
    body = os.urandom(MB2)
    with H2Client(wsgi_server.port) as client:
        response = client.request("/read?mode=read_n&n=65536", "POST", body=body)
    assert response.status == 200
    result = response.json()
    assert result["bytes"] == MB2
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert len(result["lengths"]) > 1
    assert result["eof"] == ""


def test_wsgi_streamed_iterable_and_write(wsgi_server: TricornProcess) -> None:
    with H2Client(wsgi_server.port) as client:
        streamed = client.request("/stream?n=10")
        written = client.request("/write")
        big = client.request(f"/big?size={MB2}")
    assert bytes(streamed.body) == b"".join(b"chunk %d\n" % i for i in range(10))
    assert streamed.header("transfer-encoding") is None
    assert bytes(written.body) == b"written and returned"
    assert len(big.body) == MB2


def test_wsgi_over_httpx(wsgi_server: TricornProcess) -> None:
    with h2_client(wsgi_server) as client:
        response = client.get("/echo")
    assert response.http_version == "HTTP/2"
    assert response.json()["SERVER_PROTOCOL"] == "HTTP/2"


# ------------------------------------------------------------------------------------------ Upgrade: h2c


def test_upgrade_h2c_raw(h1_server: TricornProcess) -> None:
    client, head = H2Client.upgrade(h1_server.port, "/echo?up=1")
    with client:
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"upgrade: h2c" in head.lower()
        response = client.response(1)
        assert response.status == 200
        scope = response.json()
        assert scope["http_version"] == "2"
        assert scope["query_string"] == "up=1"
        assert scope["method"] == "GET"
        # The connection goes on in HTTP/2: the next request is stream 3.
        after = client.request("/echo?next=1")
        assert client.finished[-1] == 3
        assert after.json()["http_version"] == "2"


def test_upgrade_h2c_curl(h1_server: TricornProcess) -> None:
    result = curl("-i", "--http2", f"{h1_server.url}/echo?via=curl")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(b"HTTP/1.1 101 "), out[:200]
    _, _, rest = out.partition(b"\r\n\r\n")
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 200"), head
    assert json.loads(body)["http_version"] == "2"


def test_upgrade_without_http2_settings_is_served_over_http11(h1_server: TricornProcess) -> None:
    with socket.create_connection(("127.0.0.1", h1_server.port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert b" 101 " not in data
    _, _, body = data.partition(b"\r\n\r\n")
    assert json.loads(body)["http_version"] == "1.1"


# ------------------------------------------------------------------------------------------------ errors


def test_app_error_before_the_response_is_a_500(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/error")
        after = client.request("/")
    assert response.status == 500
    assert b"Traceback" not in response.body and b"boom" not in response.body
    assert bytes(after.body) == b"hello, world"
    assert "RuntimeError: boom before the response started" in server.output()


def test_app_error_after_the_response_started_resets_the_stream(server: TricornProcess) -> None:
    with H2Client(server.port) as client:
        response = client.request("/error-after-start")
        after = client.request("/")
    assert response.status == 200
    assert not response.ended
    assert response.reset == ErrorCodes.INTERNAL_ERROR
    assert bytes(after.body) == b"hello, world"  # a stream error, not a connection error


def test_unknown_method_is_501(server: TricornProcess) -> None:
    name = marker()
    with H2Client(server.port) as client:
        response = client.request(f"/echo?{name}", method="BREW")
        after = client.request("/")
    assert response.status == 501
    assert bytes(after.body) == b"hello, world"
    never_seen(server, name)


@pytest.mark.parametrize("path", ["/a b?{m}", "relative?{m}", "/a\x7f?{m}"], ids=["space", "relative", "del"])
def test_invalid_path_is_400(server: TricornProcess, path: str) -> None:
    name = marker()
    with H2Client(server.port) as client:
        response = client.request(path.format(m=name))
        after = client.request("/")
    assert response.status == 400
    assert bytes(after.body) == b"hello, world"
    never_seen(server, name)


def test_too_many_header_fields_is_431(limits_server: TricornProcess) -> None:
    name = marker()
    with H2Client(limits_server.port) as client:
        ok = client.request("/echo", headers=[(f"x-f{i}", name) for i in range(LIMIT_FIELDS)])
        response = client.request("/echo", headers=[(f"x-f{i}", name) for i in range(LIMIT_FIELDS + 1)])
        after = client.request("/")
    assert ok.status == 200
    assert response.status == 431
    assert bytes(after.body) == b"hello, world"
    assert len([line for line in seen(limits_server) if name in line]) == 1  # only the first


def test_body_over_the_limit_is_413(limits_server: TricornProcess) -> None:
    name = marker()
    with H2Client(limits_server.port) as client:
        ok = client.request("/upload", "POST", body=b"x" * LIMIT_BODY)
        declared = client.request(
            f"/upload?{name}", "POST", [("content-length", str(LIMIT_BODY + 1))], b"x" * (LIMIT_BODY + 1)
        )
        streamed = client.request("/upload", "POST", body=b"x" * (LIMIT_BODY + 1))
        after = client.request("/")
    assert ok.json()["bytes"] == LIMIT_BODY
    assert declared.status == 413
    assert streamed.status == 413
    assert bytes(after.body) == b"hello, world"
    never_seen(limits_server, name)  # a declared length over the limit is refused before the app


def test_limit_concurrency_is_503(start: Start) -> None:
    server = start("--limit-concurrency", str(LIMIT_CONCURRENCY), APP)
    names = [marker() for _ in range(LIMIT_CONCURRENCY)]
    with H2Client(server.port) as client:
        holds = [client.send_headers(f"/hold?id={name}") for name in names]
        over = client.request("/")  # after the holds on the same connection: they are admitted first
        assert over.status == 503
        assert not [client.streams[s].status for s in holds if client.streams[s].done]
        for stream_id in holds:
            client.reset(stream_id)
        wait_for(lambda: all(f"disconnect {n}" in app_events(server) for n in names))
        after = client.request("/")
    assert bytes(after.body) == b"hello, world"


@pytest.mark.parametrize(("app", "path"), [(APP, "/upload"), (WSGI_APP, "/read")], ids=["asgi", "wsgi"])
def test_body_over_the_limit_releases_its_concurrency_slot(start: Start, app: str, path: str) -> None:
    # A 413 sent while the app is running (the body grew past the limit after the app started) ends the
    # request: its --limit-concurrency slot is given back, so the next request is served, not refused.
    server = start("--limit-concurrency", "1", "--limit-request-body", str(LIMIT_BODY), app)
    with H2Client(server.port) as client:
        streamed = client.request(path, "POST", body=b"x" * (LIMIT_BODY + 1))
        assert streamed.status == 413
        statuses: list[int] = []

        def served() -> bool:
            statuses.append(client.request("/").status)
            return statuses[-1] == 200

        wait_for(served, timeout=3, what=lambda: f"a request served after the 413 (got {statuses[-5:]})")


def test_access_log_line(server: TricornProcess) -> None:
    name = marker()
    with H2Client(server.port) as client:
        assert client.request(f"/echo?log={name}").status == 200
    wait_for(lambda: f'"GET /echo?log={name} HTTP/2" 200 ' in server.output(), what="the access line")


# ----------------------------------------------------------------------------- shutdown and keep-alive


def test_graceful_shutdown_finishes_the_stream_in_flight(start: Start) -> None:
    server = start(APP)
    with H2Client(server.port) as client:
        slow = client.send_headers("/slow?delay=1.5")
        wait_for(lambda: "slow started" in app_events(server), what="the slow app to start")
        server.send_signal(signal.SIGTERM)
        # Two GOAWAY frames (RFC 9113 §6.8): the first says no new streams, the second, a round trip
        # later, names the last stream taken.
        client.until(lambda: len(client.goaways) == 2, "the final GOAWAY")
        assert client.goaways == [(0x7FFFFFFF, ErrorCodes.NO_ERROR), (slow, ErrorCodes.NO_ERROR)]
        # A stream opened after the GOAWAY is refused, so the client may retry it elsewhere (RFC 9113 §6.8).
        name = marker()
        late = client.send_headers(f"/echo?{name}")
        assert client.response(late).reset == ErrorCodes.REFUSED_STREAM
        assert not client.streams[late].headers
        response = client.response(slow)
        assert response.ended
        assert bytes(response.body) == b"slow done"
        assert client.log.index("goaway") < client.log.index(f"end {slow}")
        client.wait_closed()
    assert server.wait() == 0


def test_idle_connection_closed_after_keep_alive_timeout(start: Start) -> None:
    server = start("--timeout-keep-alive", "0.5", APP)
    with H2Client(server.port) as client:
        client.ping(b"12345678")
        client.until(lambda: client.pings, "a PING ACK")
        assert client.pings == [b"12345678"]
        # A stream longer than the keep-alive timeout is not cut: the timeout is for idle connections.
        slow = client.request("/slow?delay=1")
        assert bytes(slow.body) == b"slow done"
        started = time.monotonic()
        client.wait_closed()
        assert time.monotonic() - started < DEADLINE
        assert client.goaways == [(0x7FFFFFFF, ErrorCodes.NO_ERROR), (1, ErrorCodes.NO_ERROR)]


# --------------------------------------------------------------------------------------------- --no-http2


def test_no_http2_refuses_prior_knowledge_and_ignores_upgrade(start: Start) -> None:
    server = start("--no-http2", APP)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5"), data[:100]
    client_h1 = httpx.get(f"{server.url}/echo", headers={"upgrade": "h2c", "connection": "upgrade"})
    assert client_h1.status_code == 200
    assert client_h1.http_version == "HTTP/1.1"
    assert client_h1.json()["http_version"] == "1.1"
    result = curl("-i", "--http2", f"{server.url}/echo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 200 "), result.stdout[:200]
