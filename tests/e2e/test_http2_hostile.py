"""Hostile HTTP/2 peers, end to end: a stream or connection error, nothing for the app, and the server
serves on.

One real ``python -m tricorn`` process (shared by the module) serves tests.apps.h2_apps, which records
every request it is handed. Each case speaks raw frames on its own connection (hyperframe frames, an hpack
encoder of its own: nothing of the h2 library the server is built on decides what is sent) and must get:

* the error the RFC asks for: RST_STREAM or GOAWAY with the expected code (PROTOCOL_ERROR for a malformed
  request, FRAME_SIZE_ERROR, ENHANCE_YOUR_CALM for floods), or a connection closed;
* never a response head on the offending stream, and no request reaching the app (each case carries a
  unique marker, in its path and a header value, that must never show up in the app's records);
* then a fresh connection to the same server is served, over HTTP/2 and HTTP/1.1.

The classes: invalid prefaces; malformed request heads (RFC 9113 §8.2: uppercase names,
connection-specific fields, ``te`` other than trailers, CR/LF/NUL or surrounding whitespace in values;
§8.3: missing, duplicated, unknown or misplaced pseudo-headers); frames on idle and closed streams; frames
over SETTINGS_MAX_FRAME_SIZE; CONTINUATION floods (CVE-2024-27316 class); HPACK bombs and header lists over
SETTINGS_MAX_HEADER_LIST_SIZE; more streams than SETTINGS_MAX_CONCURRENT_STREAMS; rapid reset
(CVE-2023-44487); control frame floods (CVE-2019-9512/9515/9518); and a client that shuts its window.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from h2.errors import ErrorCodes
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from tests.conftest import TricornProcess, rss_kib, wait_for
from tests.e2e.test_http2 import H2Client, never_seen, seen

pytestmark = pytest.mark.e2e

APP = "tests.apps.h2_apps:app"
DEADLINE = 10.0  # for any one exchange: a server that neither answers nor closes by then fails the case
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME_SIZE = 16384  # the server's SETTINGS_MAX_FRAME_SIZE (the RFC's initial value)
MAX_STREAMS = 100  # the server's SETTINGS_MAX_CONCURRENT_STREAMS
HEADER_LIST_LIMIT = 65536  # the server's SETTINGS_MAX_HEADER_LIST_SIZE
HAS_PROC = Path("/proc/self/status").exists()


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    process = TricornProcess([APP])
    try:
        yield process.wait_ready()
    finally:
        process.close()


@pytest.fixture
def case(server: TricornProcess) -> Iterator[str]:
    """A unique marker for one case; after the case, a fresh connection must still be served."""
    yield uuid.uuid4().hex
    assert server.proc.poll() is None, f"the server died:\n{server.output()[-3000:]}"
    with H2Client(server.port) as client:
        response = client.request("/__healthy")
    assert response.status == 200
    assert bytes(response.body) == b"healthy"
    assert httpx.get(f"{server.url}/__healthy", timeout=DEADLINE).text == "healthy"


# ------------------------------------------------------------------------------------------ raw frames


@dataclass
class Outcome:
    """How the server ended a case, as far as one stream and the connection go."""

    heads: list[list[tuple[bytes, bytes]]] = field(default_factory=list)  # response heads on the stream
    rst: int | None = None  # the RST_STREAM code on the stream
    goaway: int | None = None  # the GOAWAY code
    eof: bool = False

    def describe(self) -> str:
        def name(code: int | None) -> str:
            if code is None:
                return "-"
            try:
                return ErrorCodes(code).name
            except ValueError:
                return str(code)

        return f"rst={name(self.rst)} goaway={name(self.goaway)} eof={self.eof} heads={self.heads}"


class RawClient:
    """A client that sends whatever frames it is told to, and reads the server's frame by frame."""

    def __init__(
        self,
        port: int,
        settings: dict[int, int] | None = None,
        preface: bytes | None = PREFACE,
        sock: socket.socket | None = None,
    ) -> None:
        self.port = port
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.buf = b""
        self.frames: list[Frame] = []
        self.goaway: GoAwayFrame | None = None
        self.eof = False
        if preface is not None:
            self.send(preface + SettingsFrame(0, settings=settings or {}).serialize())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *frames: bytes | Frame) -> bool:
        """False if the server has closed the connection (what a flood is meant to get)."""
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def fields(self, path: str, marker: str, method: str = "GET") -> list[tuple[str, str]]:
        return [
            (":method", method),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{self.port}"),
            (":path", path),
            ("x-case", marker),
        ]

    def headers(
        self, stream_id: int, fields: list[tuple[str, str]], end_stream: bool = True
    ) -> list[HeadersFrame | ContinuationFrame]:
        """A header block as HEADERS (+ CONTINUATION) frames, each within the frame size limit."""
        block = self.encoder.encode(fields)
        chunks = [block[i : i + MAX_FRAME_SIZE] for i in range(0, len(block), MAX_FRAME_SIZE)] or [b""]
        frames: list[HeadersFrame | ContinuationFrame] = [HeadersFrame(stream_id, chunks[0])]
        frames += [ContinuationFrame(stream_id, chunk) for chunk in chunks[1:]]
        if end_stream:
            frames[0].flags.add("END_STREAM")
        frames[-1].flags.add("END_HEADERS")
        return frames

    def read(self, timeout: float = DEADLINE) -> Frame | None:
        """The next frame (SETTINGS acknowledged, heads decoded), or None once the server has closed."""
        while True:
            if len(self.buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
                if len(self.buf) >= 9 + length:
                    frame.parse_body(memoryview(self.buf[9 : 9 + length]))
                    self.buf = self.buf[9 + length :]
                    self._received(frame)
                    return frame
            if self.eof:
                return None
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.eof = True
            self.buf += data

    def _received(self, frame: Frame) -> None:
        self.frames.append(frame)
        if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
            self.send(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, GoAwayFrame):
            self.goaway = frame
        elif isinstance(frame, HeadersFrame):
            frame.decoded = self.decoder.decode(frame.data, raw=True)  # type: ignore[attr-defined]

    def outcome(self, stream_id: int, timeout: float = DEADLINE) -> Outcome:
        """Read until the stream is reset or the server has closed the connection (after a GOAWAY, the
        connection must close); response heads on the stream are collected on the way."""
        out = Outcome()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"the server neither reset stream {stream_id} nor closed: {out.describe()}"
                )
            frame = self.read(remaining)
            if frame is None:
                out.eof = True
                return out
            if isinstance(frame, GoAwayFrame):
                out.goaway = frame.error_code
            elif frame.stream_id == stream_id and isinstance(frame, HeadersFrame):
                out.heads.append(frame.decoded)  # type: ignore[attr-defined]
            elif frame.stream_id == stream_id and isinstance(frame, RstStreamFrame):
                out.rst = frame.error_code
                if out.goaway is None:
                    return out

    def stream_frames(self, stream_id: int) -> list[Frame]:
        return [f for f in self.frames if f.stream_id == stream_id]


def assert_refused(out: Outcome, *codes: ErrorCodes) -> None:
    """A stream error or a connection error with one of ``codes``, and no response on the stream."""
    assert not out.heads, f"the server answered a request it must refuse: {out.describe()}"
    assert out.rst in codes or out.goaway in codes, out.describe()
    if out.goaway is not None:
        assert out.eof, f"the connection stayed open after GOAWAY: {out.describe()}"


def assert_calm(out: Outcome) -> None:
    assert out.goaway == ErrorCodes.ENHANCE_YOUR_CALM, out.describe()
    assert out.eof, out.describe()


# ------------------------------------------------------------------------------------------- prefaces


@pytest.mark.parametrize(
    "preface",
    [
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize(), id="bad-magic"),
        pytest.param(PREFACE + PingFrame(0, b"12345678").serialize(), id="ping-before-settings"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http11-after-pri"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 5, id="truncated-frame-then-eof"),
    ],
)
def test_invalid_preface(server: TricornProcess, case: str, preface: bytes) -> None:
    # RFC 9113 §3.4: the preface is the magic string followed by a SETTINGS frame; anything else is a
    # connection error of type PROTOCOL_ERROR.
    with RawClient(server.port, preface=None) as client:
        client.send(preface)
        client.sock.shutdown(socket.SHUT_WR)  # nothing more: the server must not wait for the rest
        out = client.outcome(0, timeout=5)
    assert out.eof, out.describe()
    assert out.goaway in (None, ErrorCodes.PROTOCOL_ERROR), out.describe()
    assert not any(isinstance(f, HeadersFrame) for f in client.frames)
    assert not any(isinstance(f, PingFrame) and "ACK" in f.flags for f in client.frames), (
        "a PING before the client's SETTINGS was answered"
    )


# ------------------------------------------------------------------------------ malformed request heads


def _with(extra: list[tuple[str, str]]) -> object:
    return lambda base: base + extra


MALFORMED: dict[str, object] = {
    "uppercase-name": _with([("X-Upper", "1")]),
    "uppercase-content-type": _with([("Content-Type", "text/plain")]),
    "connection": _with([("connection", "keep-alive")]),
    "keep-alive": _with([("keep-alive", "timeout=5")]),
    "proxy-connection": _with([("proxy-connection", "keep-alive")]),
    "transfer-encoding": _with([("transfer-encoding", "chunked")]),
    "upgrade": _with([("upgrade", "websocket")]),
    "te-gzip": _with([("te", "gzip")]),
    "cr-in-value": _with([("x-v", "a\rb")]),
    "lf-in-value": _with([("x-v", "a\nb")]),
    "nul-in-value": _with([("x-v", "a\x00b")]),
    "crlf-injection": _with([("x-v", "a\r\nx-injected: yes")]),
    "leading-space": _with([("x-v", " a")]),
    "trailing-space": _with([("x-v", "a ")]),
    "leading-tab": _with([("x-v", "\ta")]),
    "space-in-name": _with([("x v", "a")]),
    "colon-in-name": _with([("x:v", "a")]),
    "empty-name": _with([("", "a")]),
    "missing-path": lambda base: [f for f in base if f[0] != ":path"],
    "missing-method": lambda base: [f for f in base if f[0] != ":method"],
    "missing-scheme": lambda base: [f for f in base if f[0] != ":scheme"],
    "empty-path": lambda base: [(k, "" if k == ":path" else v) for k, v in base],
    "duplicate-method": lambda base: [base[0], (":method", "POST"), *base[1:]],
    "duplicate-path": lambda base: [*base[:4], (":path", "/other"), *base[4:]],
    "pseudo-after-regular": lambda base: [*base[:3], base[4], base[3]],
    "unknown-pseudo": lambda base: [*base[:4], (":foo", "bar"), *base[4:]],
    "status-in-request": lambda base: [*base[:4], (":status", "200"), *base[4:]],
    "protocol-without-connect": lambda base: [*base[:4], (":protocol", "websocket"), *base[4:]],
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request_head(server: TricornProcess, case: str, name: str) -> None:
    # RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR (or, h2's choice, a
    # connection error); it never reaches the application.
    with RawClient(server.port) as client:
        fields = MALFORMED[name](client.fields(f"/echo?case={case}", case))  # type: ignore[operator]
        client.send(*client.headers(1, fields))
        out = client.outcome(1)
    assert_refused(out, ErrorCodes.PROTOCOL_ERROR)
    never_seen(server, case)


# --------------------------------------------------------------------------------- streams and frames


def test_data_on_an_idle_stream(server: TricornProcess, case: str) -> None:
    # RFC 9113 §5.1: anything but HEADERS or PRIORITY on an idle stream is a connection error of type
    # PROTOCOL_ERROR.
    with RawClient(server.port) as client:
        client.send(DataFrame(5, b"data on a stream never opened", flags=["END_STREAM"]))
        out = client.outcome(5)
    assert out.goaway == ErrorCodes.PROTOCOL_ERROR and out.eof, out.describe()


def test_data_on_a_closed_stream(server: TricornProcess, case: str) -> None:
    # RFC 9113 §5.1: DATA on a stream closed by END_STREAM both ways is a connection error of type
    # STREAM_CLOSED (a stream error, if the server no longer tells it from an idle one it reset).
    with RawClient(server.port) as client:
        client.send(*client.headers(1, client.fields("/__healthy", case)))
        while not any(isinstance(f, DataFrame) and "END_STREAM" in f.flags for f in client.stream_frames(1)):
            assert client.read() is not None, "closed before the response"
        client.send(DataFrame(1, b"late", flags=["END_STREAM"]))
        out = client.outcome(1)
    assert out.rst in (ErrorCodes.STREAM_CLOSED,) or out.goaway in (
        ErrorCodes.STREAM_CLOSED,
        ErrorCodes.PROTOCOL_ERROR,
    ), out.describe()


def test_data_in_flight_after_the_server_reset_the_stream(server: TricornProcess, case: str) -> None:
    # The app answers before the request body is in: RST_STREAM NO_ERROR (RFC 9113 §8.1). Body the client
    # had in flight then arrives on a stream the server reset: RFC 9113 §5.1 and §6.9 ask the server to take
    # it without a connection error and to count it against the connection window, which it must give
    # back. More than the whole connection window of such data, then an upload on the same connection.
    window = 65535
    with RawClient(server.port) as client:
        rounds = 110  # x 64 KB: more than the connection window the server opens (100 streams' worth)
        for i in range(rounds):
            stream_id = 2 * i + 1
            client.send(
                *client.headers(stream_id, client.fields("/__healthy", case, "POST"), end_stream=False)
            )
            while not [f for f in client.stream_frames(stream_id) if isinstance(f, RstStreamFrame)]:
                assert client.read() is not None, f"closed: {client.goaway and client.goaway.error_code}"
            (reset,) = [f for f in client.stream_frames(stream_id) if isinstance(f, RstStreamFrame)]
            assert reset.error_code == ErrorCodes.NO_ERROR
            pieces = [MAX_FRAME_SIZE] * (window // MAX_FRAME_SIZE) + [window % MAX_FRAME_SIZE]
            client.send(*(DataFrame(stream_id, b"x" * n) for n in pieces))
        stream_id = 2 * rounds + 1
        client.send(
            *client.headers(stream_id, client.fields(f"/upload?{case}", case, "POST"), end_stream=False)
        )
        client.send(DataFrame(stream_id, b"y" * 10_000, flags=["END_STREAM"]))
        deadline = time.monotonic() + DEADLINE
        while not [f for f in client.stream_frames(stream_id) if isinstance(f, DataFrame) and f.data]:
            assert time.monotonic() < deadline, "the upload stalled: the connection window was not given back"
            assert client.read(max(0.01, deadline - time.monotonic())) is not None, "closed"
        assert client.goaway is None


def _events(server: TricornProcess) -> list[str]:
    return httpx.get(f"{server.url}/events", timeout=DEADLINE).json()["events"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["data", "headers", "ping"])
def test_frame_over_max_frame_size(server: TricornProcess, case: str, kind: str) -> None:
    # RFC 9113 §4.2: a frame over SETTINGS_MAX_FRAME_SIZE (or a fixed-size frame of the wrong size) is a
    # FRAME_SIZE_ERROR; for one that can change the connection's state, a connection error.
    with RawClient(server.port) as client:
        if kind == "data":
            client.send(*client.headers(1, client.fields(f"/upload?{case}", case, "POST"), end_stream=False))
            frame: Frame = DataFrame(1, b"x" * (MAX_FRAME_SIZE + 1), flags=["END_STREAM"])
        elif kind == "headers":
            fields = [*client.fields(f"/echo?{case}", case), ("x-big", "v" * (MAX_FRAME_SIZE + 100))]
            frame = HeadersFrame(
                1, client.encoder.encode(fields, huffman=False), flags=["END_HEADERS", "END_STREAM"]
            )
            assert len(frame.data) > MAX_FRAME_SIZE
        else:
            frame = PingFrame(0, b"12345678")
            body = b"123456789"
            raw = len(body).to_bytes(3, "big") + b"\x06\x00\x00\x00\x00\x00" + body
            client.send(raw)
            out = client.outcome(1)
            assert out.goaway == ErrorCodes.FRAME_SIZE_ERROR and out.eof, out.describe()
            return
        client.send(frame)
        out = client.outcome(1)
    assert out.goaway == ErrorCodes.FRAME_SIZE_ERROR and out.eof, out.describe()
    if kind == "headers":
        never_seen(server, case)


@pytest.mark.parametrize("size", [0, MAX_FRAME_SIZE], ids=["empty", "full"])
def test_continuation_flood(server: TricornProcess, case: str, size: int) -> None:
    # CONTINUATION frames without END_HEADERS, without end (CVE-2024-27316 class): the server must stop
    # the connection with a bounded buffer, not decode or hold without limit.
    before = rss_kib(server.proc.pid) if HAS_PROC else 0
    # More than the socket buffers on both sides can hold (a few MB), so a server that stops reading is
    # seen to: 64 MB of frames.
    per_piece = 64 if size else 4096  # frames a send
    piece = ContinuationFrame(1, b"\x00" * size).serialize() * per_piece
    total = 64 * 1024 * 1024
    sent = 0
    with RawClient(server.port) as client:
        head = HeadersFrame(
            1, client.encoder.encode(client.fields(f"/echo?{case}", case)), flags=["END_STREAM"]
        )
        client.send(head)
        while sent < total and client.send(piece):
            sent += len(piece)
        out = client.outcome(1)
    assert out.eof, out.describe()
    assert not out.heads
    assert out.goaway in (None, ErrorCodes.PROTOCOL_ERROR, ErrorCodes.ENHANCE_YOUR_CALM), out.describe()
    assert sent < total, "the server read the whole flood without closing"
    if HAS_PROC:
        grown = rss_kib(server.proc.pid) - before
        assert grown < 32 * 1024, f"server RSS grew by {grown} KiB during a CONTINUATION flood"
    never_seen(server, case)


def test_hpack_bomb(server: TricornProcess, case: str) -> None:
    # One 4 KB field put in the dynamic table, then referenced by its 1-byte index 16000 times: 16 KB on
    # the wire, 64 MB decoded. The header list limit stops the decoder early.
    before = rss_kib(server.proc.pid) if HAS_PROC else 0
    with RawClient(server.port) as client:
        block = client.encoder.encode([*client.fields(f"/echo?{case}", case), ("x-bomb", "a" * 4000)])
        # The newest dynamic-table entry is index 62 (RFC 7541 §2.3.3): x-bomb.
        refs = bytes([0x80 | 62]) * (MAX_FRAME_SIZE - len(block))
        client.send(HeadersFrame(1, block + refs, flags=["END_HEADERS", "END_STREAM"]))
        out = client.outcome(1)
    assert_list_refused(out)
    if HAS_PROC:
        grown = rss_kib(server.proc.pid) - before
        assert grown < 32 * 1024, f"server RSS grew by {grown} KiB decoding an HPACK bomb"
    never_seen(server, case)


def assert_list_refused(out: Outcome) -> None:
    """A header list over the limit: 431 (RFC 9113 §10.5.1), or a stream or connection error."""
    statuses = [dict(h).get(b":status") for h in out.heads]
    if statuses:
        assert statuses == [b"431"], out.describe()
        return
    errors = (ErrorCodes.ENHANCE_YOUR_CALM, ErrorCodes.PROTOCOL_ERROR, ErrorCodes.COMPRESSION_ERROR)
    assert out.rst in (*errors, ErrorCodes.REFUSED_STREAM) or out.goaway in errors, out.describe()


def test_header_list_over_the_limit(server: TricornProcess, case: str) -> None:
    # 20 fields of 4 KB: each within --limit-request-field-size and their count within
    # --limit-request-fields, but 80 KB in all, over SETTINGS_MAX_HEADER_LIST_SIZE (64 KB).
    with RawClient(server.port) as client:
        fields = client.fields(f"/echo?{case}", case)
        fields += [(f"x-f{i}", os.urandom(2000).hex()) for i in range(20)]
        frames = client.headers(1, fields)
        assert len(frames) > 1  # HEADERS and CONTINUATION
        client.send(*frames)
        out = client.outcome(1)
    assert_list_refused(out)
    never_seen(server, case)


# --------------------------------------------------------------------------------------------- floods


def test_more_streams_than_max_concurrent_streams(server: TricornProcess, case: str) -> None:
    # RFC 9113 §5.1.2: a stream over SETTINGS_MAX_CONCURRENT_STREAMS is refused (REFUSED_STREAM, so the
    # client may retry it) or a connection error of type PROTOCOL_ERROR.
    with RawClient(server.port) as client:
        frames: list[Frame] = []
        for i in range(MAX_STREAMS):
            frames += client.headers(2 * i + 1, client.fields(f"/hold?id={case}-{i}", f"{case}-{i}"))
        client.send(*frames)
        wait_for(
            lambda: len([e for e in _events(server) if e.startswith(f"hold started {case}-")]) == MAX_STREAMS
        )
        extra = 2 * MAX_STREAMS + 1
        client.send(*client.headers(extra, client.fields(f"/hold?id={case}-over", f"{case}-over")))
        out = client.outcome(extra)
    assert not out.heads, out.describe()
    assert out.rst == ErrorCodes.REFUSED_STREAM or out.goaway == ErrorCodes.PROTOCOL_ERROR, out.describe()
    never_seen(server, f"{case}-over")


def test_rapid_reset(server: TricornProcess, case: str) -> None:
    # CVE-2023-44487: streams opened and reset at once, thousands of them; each reset stream cost the
    # server an app call. The server stops the connection with ENHANCE_YOUR_CALM.
    count = 5000
    with RawClient(server.port) as client:
        frames: list[Frame] = []
        for i in range(count):
            stream_id = 2 * i + 1
            frames += client.headers(stream_id, client.fields(f"/hold?id={case}", case))
            frames.append(RstStreamFrame(stream_id, error_code=ErrorCodes.CANCEL))
        client.send(*frames)
        out = client.outcome(0, timeout=30)
    assert_calm(out)
    started = len([line for line in seen(server) if case in line])
    assert started < count // 2, f"{started} of {count} reset streams were handed to the app"


def _flood(kind: str, count: int, client: RawClient, case: str) -> list[Frame]:
    if kind == "ping":
        return [PingFrame(0, i.to_bytes(8, "big")) for i in range(count)]
    if kind == "settings":
        return [SettingsFrame(0, settings={0x4: 65535}) for _ in range(count)]
    if kind == "priority":
        return [PriorityFrame(2 * i + 1, depends_on=0, stream_weight=16) for i in range(count)]
    if kind == "empty-data":
        return [
            *client.headers(1, client.fields(f"/hold?id={case}", case), end_stream=False),
            *(DataFrame(1, b"") for _ in range(count)),
        ]
    raise AssertionError(kind)


# Over the server's budget of control frames a second, and small enough (about 25 KB) that the server reads
# it whole before it stops: what it closes with is then never cut by a reset (see the test after).
FLOOD = 1500


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "empty-data"])
def test_control_frame_flood(server: TricornProcess, case: str, kind: str) -> None:
    # CVE-2019-9512 (PING), -9515 (SETTINGS), -9516/9518 (empty frames), PRIORITY: frames that cost the
    # server work (and answers queued for a client that does not read) and the client nothing.
    with RawClient(server.port) as client:
        client.send(*_flood(kind, FLOOD, client, case))
        out = client.outcome(0, timeout=30)
    assert_calm(out)


def test_goaway_reaches_a_flooding_client_that_reads_late(server: TricornProcess, case: str) -> None:
    # A client that floods before it reads (its receive buffer small, full of PING ACKs): the server stops
    # reading it mid-flood. Closing a socket with unread input makes the kernel send RST and drop what is
    # still queued for the client, the GOAWAY with it, unless the server half-closes and drains its input
    # for a while first (nginx's lingering close). RFC 9113 §6.8: a GOAWAY SHOULD precede the close.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(DEADLINE)
    sock.connect(("127.0.0.1", server.port))
    client = RawClient(server.port, sock=sock)
    with client:
        client.send(*_flood("ping", 20_000, client, case))
        out = client.outcome(0, timeout=30)
    assert_calm(out)
    assert client.buf == b"", f"the server's output was cut mid-frame: {len(client.buf)} bytes left over"


def test_zero_window_stall_does_not_hold_other_connections(server: TricornProcess, case: str) -> None:
    # A client that shuts its window (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for a big response: the
    # head goes out, no DATA does, and the stalled stream holds only itself.
    with RawClient(server.port, settings={0x4: 0}) as stalled:
        stalled.send(*stalled.headers(1, stalled.fields(f"/big?size={4 * 1024 * 1024}", case)))
        while not stalled.stream_frames(1):
            assert stalled.read() is not None, "closed before the response head"
        assert isinstance(stalled.stream_frames(1)[0], HeadersFrame)
        for _ in range(3):
            with H2Client(server.port) as other:
                assert bytes(other.request("/").body) == b"hello, world"
            assert httpx.get(server.url, timeout=DEADLINE).text == "hello, world"
        # And the stalled connection itself still answers (a PING), and another stream on it is served
        # once the connection window allows: the stream window of 0 holds the big stream only.
        stalled.send(PingFrame(0, b"stalled!"))
        stalled.send(WindowUpdateFrame(0, window_increment=1 << 20))
        stalled.send(*stalled.headers(3, stalled.fields("/__healthy", case)))
        stalled.send(WindowUpdateFrame(3, window_increment=1 << 16))
        while not any(isinstance(f, PingFrame) and "ACK" in f.flags for f in stalled.frames) or not any(
            isinstance(f, DataFrame) and "END_STREAM" in f.flags for f in stalled.stream_frames(3)
        ):
            assert stalled.read() is not None, "closed"
        assert b"".join(f.data for f in stalled.stream_frames(3) if isinstance(f, DataFrame)) == b"healthy"
        assert not [f for f in stalled.stream_frames(1) if isinstance(f, DataFrame) and f.data]
