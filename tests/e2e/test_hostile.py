"""Hostile input, end to end: a clear answer, and nothing else breaks.

Real ``python -m tricorn`` processes (one per parser backend, shared by the module) serve
tests.apps.hostile, which records every request the application is handed. Each hostile case is sent on
its own raw socket and must get:

* exactly one response, with the expected status line (400, or 408/413/414/431/501/505 where that fits),
  ``connection: close``, a body with no traceback and no Python file path;
* then EOF: the server closes the connection (nothing after a framing error is read, RFC 9112 §9.6);
* exactly one new line in the server's log, the error-log line naming the client's ``address:port`` (the
  client port is the marker), with no raw control bytes in it;
* nothing reaching the application (neither the request nor a request hidden in its body);
* while a background keep-alive client on its own connection keeps getting 200s, during and after.

The classes: request lines, methods, targets, versions; obs-fold; whitespace before the colon; field names
and control characters or bare CR/LF in fields; Host missing or duplicated; Content-Length with
Transfer-Encoding, duplicated or malformed; unknown or non-final transfer codings; chunk sizes, extensions
and terminators; request smuggling with a second request hidden in the body (CL.TE, TE.CL, TE.TE with
obfuscated Transfer-Encoding, chunk-size overflow, bare-LF terminators, ``0\\n\\n``: the classes behind
gunicorn CVE-2024-1135 and CVE-2024-6827, h11 CVE-2025-43859 and the llhttp CVEs); limits; and every
``invalid/*`` case of the corpus (tests/corpus/http1). Then heads trickled in (slowloris, 408), idle connections,
oversized heads streamed (refused early, without buffering), response splitting by the app (500) and
control bytes in logged paths (escaped).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, TricornProcess, rss_kib, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.hostile:app"
HEADER_TIMEOUT = 0.5  # --timeout-request-header
KEEP_ALIVE = 1.0  # --timeout-keep-alive
BODY_LIMIT = 65536  # --limit-request-body
# The request line is in every access line, so a test can tell its own requests from the probes'.
ACCESS_FORMAT = 'access %(h)s "%(r)s" %(s)s'
OPTIONS = [
    "--timeout-request-header", str(HEADER_TIMEOUT),
    "--timeout-keep-alive", str(KEEP_ALIVE),
    "--limit-request-body", str(BODY_LIMIT),
    "--access-log-format", ACCESS_FORMAT,
]  # fmt: skip
# The corpus's limit cases assume gunicorn's limits, some set very low: they go to a second server whose
# limits are at most each case's (gunicorn counts whole lines, tricorn the target and name + value: a
# request line is target + 10 at least, a field line name + value + 4).
TIGHT_OPTIONS = [
    "--limit-request-line", str(4094 - 10),
    "--limit-request-fields", "2",
    "--limit-request-field-size", str(10 - 4),
    "--access-log-format", ACCESS_FORMAT,
]  # fmt: skip

DEADLINE = 5.0  # for any one exchange; a server that neither answers nor closes by then fails the case

# ------------------------------------------------------------------------------------- the server side


def log_bytes(server: TricornProcess) -> bytes:
    return Path(server._log.name).read_bytes()


# Lines the probes add to the log while a case runs: the healthy client's and /__seen's access lines.
_PROBE_LINE = re.compile(rb'access 127\.0\.0\.1 "GET /__(healthy|seen)[ ?]')
_RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


def new_log_lines(server: TricornProcess, offset: int) -> list[bytes]:
    """The complete log lines written after ``offset``, without the probes' access lines."""
    data = log_bytes(server)[offset:]
    complete = data[: data.rfind(b"\n") + 1]
    return [line for line in complete.splitlines() if not _PROBE_LINE.match(line)]


def log_offset(server: TricornProcess) -> int:
    data = log_bytes(server)
    return data.rfind(b"\n") + 1


def error_lines_for(server: TricornProcess, offset: int, client_port: int) -> list[bytes]:
    marker = b" 127.0.0.1:%d " % client_port
    return [line for line in new_log_lines(server, offset) if marker in line]


def get(port: int, target: str) -> tuple[int, bytes]:
    """A plain request on its own connection: (status, body)."""
    # As small as the tight server's limits (fields of at most 6 bytes) allow.
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: p\r\n\r\n".encode())
        response, _ = read_response(sock, time.monotonic() + DEADLINE)
    return response.status, response.body


def seen_total(server: TricornProcess) -> int:
    status, body = get(server.port, "/__seen?since=1000000000")
    assert status == 200
    return int(json.loads(body)["total"])


def seen_since(server: TricornProcess, since: int) -> list[str]:
    status, body = get(server.port, f"/__seen?since={since}")
    assert status == 200
    return list(json.loads(body)["seen"])


# ------------------------------------------------------------------------ a small response parser


@dataclass
class Response:
    status_line: bytes
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name]
        return b", ".join(values) if values else None


def parse_response(data: bytes) -> tuple[Response, bytes]:
    """The first response in ``data`` (Content-Length or chunked framing) and the bytes after it."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    status_line, *lines = head.split(b"\r\n")
    match = re.fullmatch(rb"HTTP/1\.1 (\d{3}) [^\r\n]*", status_line)
    assert match, f"bad status line {status_line!r}"
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (line.partition(b":") for line in lines)]
    response = Response(status_line, int(match.group(1)), headers, b"")
    length = response.header(b"content-length")
    if response.header(b"transfer-encoding") == b"chunked":
        body = []
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                assert rest.startswith(b"\r\n"), rest[:50]
                rest = rest[2:]
                break
            body.append(rest[:size])
            assert rest[size : size + 2] == b"\r\n"
            rest = rest[size + 2 :]
        response.body = b"".join(body)
    elif length is not None:
        response.body, rest = rest[: int(length)], rest[int(length) :]
        assert len(response.body) == int(length), "response body cut short"
    return response, rest


def read_until_eof(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything until the server closes (FIN or RST); ``False`` if ``deadline`` passed first."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread: the kernel resets, and that is a close
            return b"".join(chunks), True
        except TimeoutError:
            return b"".join(chunks), False
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


@dataclass
class Exchange:
    data: bytes
    eof: bool
    client_port: int


def exchange(server: TricornProcess, data: bytes) -> Exchange:
    """Send ``data`` on a fresh connection (not half-closing it) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        deadline = time.monotonic() + DEADLINE
        # Refused before it read everything: the answer is still in our receive buffer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        received, eof = read_until_eof(sock, deadline)
    return Exchange(received, eof, client_port)


_PYTHON_PATH = re.compile(rb'\.py\b|File "|site-packages|/tricorn/')


def assert_clean_body(body: bytes) -> None:
    assert b"Traceback" not in body, body
    assert not _PYTHON_PATH.search(body), body


# ----------------------------------------------------------------------------- the healthy client

HEALTHY_REQUEST = b"GET /__healthy HTTP/1.1\r\nHost: h\r\n\r\n"


class HealthyClient(threading.Thread):
    """One keep-alive connection doing bounded requests in a loop; every failure is recorded."""

    def __init__(self, port: int) -> None:
        super().__init__(name=f"healthy-{port}", daemon=True)
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.connections = 0
        self.halt = threading.Event()

    def run(self) -> None:
        sock: socket.socket | None = None
        buf = b""
        while not self.halt.is_set():
            try:
                if sock is not None and select.select([sock], [], [], 0)[0]:
                    # Readable while idle: only the keep-alive timeout may close it (if this thread stalled).
                    stray = sock.recv(65536)
                    if stray:
                        self.failures.append(f"unexpected bytes on an idle connection: {stray[:80]!r}")
                    sock.close()
                    sock = None
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
                    self.connections += 1
                    buf = b""
                sock.sendall(HEALTHY_REQUEST)
                while b"\r\n\r\n" not in buf or len(buf) < buf.index(b"\r\n\r\n") + 4 + len(b"healthy"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError(f"closed mid-response after {buf[:80]!r}")
                    buf += chunk
                response, buf = parse_response(buf)
                if response.status != 200 or response.body != b"healthy":
                    raise AssertionError(f"{response.status_line!r} {response.body[:80]!r}")
                self.ok += 1
            except (OSError, AssertionError, ValueError) as exc:
                self.failures.append(repr(exc))
                if sock is not None:
                    sock.close()
                sock = None
            self.halt.wait(0.01)  # pacing, not synchronisation
        if sock is not None:
            sock.close()

    def assert_served_after(self, mark: int) -> None:
        """No failure so far, and at least one more request answered after ``mark`` was taken."""
        wait_for(lambda: self.ok > mark or self.failures, what="the healthy client's next response")
        assert self.failures == [], self.failures

    def stop(self) -> None:
        self.halt.set()
        self.join(DEADLINE)


@dataclass
class Served:
    server: TricornProcess
    healthy: HealthyClient
    backend: str


def start_served(backend: str, options: list[str]) -> Iterator[Served]:
    server = TricornProcess(["--http", backend, *options, APP])
    healthy = HealthyClient(server.port)
    try:
        server.wait_ready()
        healthy.start()
        yield Served(server, healthy, backend)
        healthy.stop()
        assert healthy.failures == [], healthy.failures
        assert healthy.ok > 0
        assert server.proc.poll() is None, "the server died"
    finally:
        if healthy.is_alive():
            healthy.stop()
        server.close()


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """One server per backend for the module, with the healthy client running against it throughout."""
    yield from start_served(request.param, OPTIONS)


@pytest.fixture(scope="module", params=BACKENDS)
def tight(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from start_served(request.param, TIGHT_OPTIONS)


# ------------------------------------------------------------------------------ one hostile exchange


def assert_refused(served: Served, data: bytes, status: int) -> Exchange:
    """``data`` gets exactly one ``status`` response, then EOF; one log line; the app saw nothing."""
    server, healthy = served.server, served.healthy
    seen_mark = seen_total(server)  # also a barrier: whatever earlier requests log is logged by now
    offset = log_offset(server)
    out = exchange(server, data)
    assert out.eof, f"the server did not close the connection within {DEADLINE}s; got {out.data[:300]!r}"
    response, rest = parse_response(out.data)
    assert response.status == status, (response.status_line, response.body)
    assert rest == b"", f"more than one response: {rest[:300]!r}"  # nothing hidden was answered
    assert response.header(b"connection") == b"close"
    assert_clean_body(response.body)
    ok_mark = healthy.ok
    # The error line is written before the response, so it is already there; the probes after it let
    # anything else the case might log arrive before the lines are counted.
    wait_for(lambda: error_lines_for(server, offset, out.client_port), what="the error log line")
    if status != 413:
        # A body over the limit can only be refused once its size is read; if the head arrived in an
        # earlier read, the app already started (and was told the client left). Every other refusal is
        # decided on the head.
        assert seen_since(server, seen_mark) == [], "the application was handed the request"
    healthy.assert_served_after(ok_mark)
    lines = new_log_lines(server, offset)
    # Its access line too (a pipeline counting 4xx sees it), with "- - -" for a request line that was not
    # understood; in the error log, its one line.
    access = [line for line in lines if line.startswith(b"access ")]
    assert len(access) == 1 and access[0].endswith(b" %d" % status), lines
    errors = [line for line in lines if not line.startswith(b"access ")]
    assert errors == error_lines_for(server, offset, out.client_port), lines
    assert len(errors) == 1, lines
    assert b" 127.0.0.1:%d %d " % (out.client_port, status) in errors[0], errors[0]
    assert not _RAW_CONTROL.search(b"".join(lines)), lines
    assert server.proc.poll() is None
    return out


# ---------------------------------------------------------------------------------------- the cases

H = b"Host: x\r\n"
HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"  # never to be answered nor handed to the app


def post(fields: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST /echo HTTP/" + version + b"\r\nHost: x\r\n" + fields + b"\r\n" + body


def chunked(body: bytes) -> bytes:
    return post(b"Transfer-Encoding: chunked\r\n", body)


def line(request_line: bytes) -> bytes:
    return request_line + b"\r\nHost: x\r\n\r\n"


def field(*fields: bytes) -> bytes:
    return b"GET /echo HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def trailer(*fields: bytes) -> bytes:
    return chunked(b"5\r\nhello\r\n0\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n")


# (class, id) -> (bytes, status). Statuses: 400 unless another fits (RFC 9110 §15, RFC 9112).
CASES: dict[tuple[str, str], tuple[bytes, int]] = {}


def cases(cls: str, **by_id: tuple[bytes, int]) -> None:
    for case_id, case in by_id.items():
        CASES[(cls, case_id)] = case


# RFC 9112 §3: request-line = method SP request-target SP HTTP-version, single spaces, ending in CRLF.
cases(
    "request-line",
    double_space=(line(b"GET  /echo HTTP/1.1"), 400),
    trailing_space=(line(b"GET /echo HTTP/1.1 "), 400),
    leading_space=(line(b" GET /echo HTTP/1.1"), 400),
    tabs=(line(b"GET\t/echo\tHTTP/1.1"), 400),
    extra_part=(line(b"GET /echo HTTP/1.1 extra"), 400),
    http09=(b"GET /echo\r\n\r\n", 400),
    no_method=(line(b"/echo HTTP/1.1"), 400),
    no_target=(line(b"GET HTTP/1.1"), 400),
    bare_lf=(b"GET /echo HTTP/1.1\nHost: x\r\n\r\n", 400),
    bare_cr=(b"GET /echo HTTP/1.1\rHost: x\r\n\r\n", 400),
    # PRI is no method an HTTP/1.1 server serves (the HTTP/2 preface itself switches to HTTP/2: test_http2)
    pri_method=(b"PRI * HTTP/1.1\r\nHost: x\r\n\r\n", 501),
)
# RFC 9110 §9.1: method = token, case-sensitive; a token method the server does not implement is 501.
cases(
    "method",
    not_a_token=(line(b"G(T /echo HTTP/1.1"), 400),
    nul=(line(b"GET\x00 /echo HTTP/1.1"), 400),
    non_ascii=(line(b"G\xc3\x89T /echo HTTP/1.1"), 400),
    colon=(line(b"GET: /echo HTTP/1.1"), 400),
    unknown=(line(b"FOO /echo HTTP/1.1"), 501),
    lowercase=(line(b"get /echo HTTP/1.1"), 501),
    connect=(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    too_long=(line(b"A" * 9000 + b" /echo HTTP/1.1"), 414),
)
# RFC 9112 §3.2: origin-form, absolute-form (http/https), authority-form (CONNECT only), asterisk-form
# (OPTIONS only), all visible ASCII.
cases(
    "target",
    relative=(line(b"GET echo HTTP/1.1"), 400),
    asterisk_not_options=(line(b"GET * HTTP/1.1"), 400),
    authority_not_connect=(line(b"GET example.com:80 HTTP/1.1"), 400),
    other_scheme=(line(b"GET ftp://x/echo HTTP/1.1"), 400),
    userinfo=(line(b"GET http://user@x/echo HTTP/1.1"), 400),
    esc=(line(b"GET /echo\x1b[31m HTTP/1.1"), 400),
    delete=(line(b"GET /echo\x7f HTTP/1.1"), 400),
    nul=(line(b"GET /echo\x00x HTTP/1.1"), 400),
    non_ascii=(line(b"GET /\xc3\xa9cho HTTP/1.1"), 400),
    tab=(line(b"GET /ec\tho HTTP/1.1"), 400),
    too_long=(line(b"GET /" + b"a" * 8190 + b" HTTP/1.1"), 414),
)
# RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive; RFC 9110 §15.6.6: 505 for a
# major version the server does not support. (HTTP/1.2 to 1.9 are served as 1.1, RFC 9110 §6.2: see
# tests/e2e/test_http.py.)
cases(
    "version",
    http2=(line(b"GET /echo HTTP/2.0"), 505),
    http3=(line(b"GET /echo HTTP/3.0"), 505),
    http09=(line(b"GET /echo HTTP/0.9"), 505),
    lowercase=(line(b"GET /echo http/1.1"), 400),
    two_digits=(line(b"GET /echo HTTP/1.10"), 400),
    no_dot=(line(b"GET /echo HTTP/11"), 400),
    space=(line(b"GET /echo HTTP/ 1.1"), 400),
    https=(line(b"GET /echo HTTPS/1.1"), 400),
    rtsp=(line(b"GET /echo RTSP/1.0"), 400),
    junk=(line(b"GET /echo HTTP/1.1x"), 400),
)
# RFC 9112 §5.2: a server MUST reject obs-fold (or replace it); tricorn rejects with 400.
cases(
    "obs-fold",
    space=(field(b"X-A: one", b" two"), 400),
    tab=(field(b"X-A: one", b"\ttwo"), 400),
    after_request_line=(b"GET /echo HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    blank=(field(b"X-A: one", b" "), 400),
)
# RFC 9112 §5.1: no whitespace between field name and colon; a server MUST reject it with 400.
cases(
    "space-before-colon",
    space=(b"GET /echo HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    tab=(post(b"Content-Length\t: 5\r\n", b"hello"), 400),
    transfer_encoding=(post(b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400),
)
# RFC 9110 §5.1 and §5.5: field-name = token; CR, LF and NUL in a value MUST be refused (or replaced
# with SP) and other CTLs are invalid; RFC 9112 §2.2: a bare CR MUST be refused (or replaced).
cases(
    "field",
    name_space=(field(b"X A: b"), 400),
    name_empty=(field(b": b"), 400),
    no_colon=(field(b"X-A b"), 400),
    name_not_token=(field(b"X(A): b"), 400),
    name_non_ascii=(field(b"X-\xc3\x89: b"), 400),
    name_nul=(field(b"X\x00A: b"), 400),
    value_nul=(field(b"X-A: a\x00b"), 400),
    value_bel=(field(b"X-A: a\x07b"), 400),
    value_esc=(field(b"X-A: a\x1b[31mb"), 400),
    value_del=(field(b"X-A: a\x7fb"), 400),
    value_vt=(field(b"X-A: a\x0bb"), 400),
    value_ff=(field(b"X-A: a\x0cb"), 400),
    value_bare_cr=(field(b"X-A: a\rb"), 400),
    value_bare_lf=(field(b"X-A: a\nContent-Length: 5"), 400),
    line_ends_cr_cr_lf=(field(b"X-A: a\r"), 400),
    head_ends_lf_lf=(b"GET /echo HTTP/1.1\r\nHost: x\n\n", 400),
    head_ends_crlf_lf=(b"GET /echo HTTP/1.1\r\nHost: x\r\n\n", 400),
)
# RFC 9112 §3.2: an HTTP/1.1 request without Host, or with more than one, MUST get 400; RFC 9110 §7.2:
# Host = uri-host [ ":" port ].
cases(
    "host",
    missing=(b"GET /echo HTTP/1.1\r\n\r\n", 400),
    duplicate_same=(b"GET /echo HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400),
    duplicate_different=(b"GET /echo HTTP/1.1\r\nHost: x\r\nHost: evil.example\r\n\r\n", 400),
    duplicate_absolute_form=(b"GET http://x/echo HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    space=(b"GET /echo HTTP/1.1\r\nHost: x y\r\n\r\n", 400),
    slash=(b"GET /echo HTTP/1.1\r\nHost: x/y\r\n\r\n", 400),
    userinfo=(b"GET /echo HTTP/1.1\r\nHost: u@x\r\n\r\n", 400),
)
# RFC 9112 §6.3: Content-Length with Transfer-Encoding, and an invalid Content-Length, are unrecoverable
# framing errors (400, then close); tricorn refuses any repeated Content-Length rather than merge it.
cases(
    "content-length",
    with_te=(post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    te_first=(post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n"), 400),
    duplicate_same=(post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"), 400),
    duplicate_different=(post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"), 400),
    list=(post(b"Content-Length: 5, 5\r\n", b"hello"), 400),
    negative=(post(b"Content-Length: -1\r\n", b"hello"), 400),
    plus=(post(b"Content-Length: +5\r\n", b"hello"), 400),
    hex=(post(b"Content-Length: 0x5\r\n", b"hello"), 400),
    decimal=(post(b"Content-Length: 5.0\r\n", b"hello"), 400),
    underscore=(post(b"Content-Length: 0_5\r\n", b"hello"), 400),
    empty=(post(b"Content-Length:\r\n", b"hello"), 400),
    inner_space=(post(b"Content-Length: 1 2\r\n", b"hello"), 400),
    overflow=(post(b"Content-Length: 99999999999999999999999\r\n", b"hello"), 400),
    over_the_limit=(post(b"Content-Length: %d\r\n" % (BODY_LIMIT + 1), b"hello"), 413),
)
# RFC 9112 §6.1/§6.3: chunked must be the final coding, applied once (else 400); a coding the server
# does not know: 501; Transfer-Encoding in HTTP/1.0 means faulty framing.
cases(
    "transfer-encoding",
    unknown_then_chunked=(post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"), 501),
    unknown_then_chunked_split=(
        post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        501,
    ),
    unknown_only=(post(b"Transfer-Encoding: gzip\r\n", b"hello"), 400),
    chunked_not_final=(post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"), 400),
    chunked_not_final_split=(
        post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", b"0\r\n\r\n"),
        400,
    ),
    chunked_twice=(post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), 400),
    identity=(post(b"Transfer-Encoding: identity\r\n", b"hello"), 400),
    xchunked=(post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400),
    quoted=(post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n"), 400),
    parameter=(post(b"Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"), 400),
    empty=(post(b"Transfer-Encoding:\r\n", b"0\r\n\r\n"), 400),
    http10=(post(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", version=b"1.0"), 400),
)
# RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; chunk-size = 1*HEXDIG;
# chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] ), read as strictly as llhttp does.
cases(
    "chunk-size",
    not_hex=(chunked(b"g\r\nhello\r\n0\r\n\r\n"), 400),
    prefix_0x=(chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), 400),
    minus=(chunked(b"-5\r\nhello\r\n0\r\n\r\n"), 400),
    plus=(chunked(b"+5\r\nhello\r\n0\r\n\r\n"), 400),
    underscore=(chunked(b"0_5\r\nhello\r\n0\r\n\r\n"), 400),
    leading_space=(chunked(b" 5\r\nhello\r\n0\r\n\r\n"), 400),
    trailing_space=(chunked(b"5 \r\nhello\r\n0\r\n\r\n"), 400),
    empty=(chunked(b"\r\nhello\r\n0\r\n\r\n"), 400),
    overflow=(chunked(b"1" + b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n"), 400),
    data_longer_than_size=(chunked(b"2\r\nhello\r\n0\r\n\r\n"), 400),
    over_the_limit=(chunked(b"%x\r\n" % (BODY_LIMIT + 1) + b"x" * (BODY_LIMIT + 1) + b"\r\n0\r\n\r\n"), 413),
)
cases(
    "chunk-extension",
    empty_name=(chunked(b"5;\r\nhello\r\n0\r\n\r\n"), 400),
    unterminated_quote=(chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'), 400),
    space_in_value=(chunked(b"5;a=b c\r\nhello\r\n0\r\n\r\n"), 400),
    space_before=(chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"), 400),
    space_around_equals=(chunked(b"5;a = b\r\nhello\r\n0\r\n\r\n"), 400),
    bare_cr=(chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), 400),
    bare_lf=(chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n"), 400),
    nul=(chunked(b"5;a\x00b\r\nhello\r\n0\r\n\r\n"), 400),
)
# RFC 9112 §7.1 and §7.1.2: CRLF after the size line, after the chunk data, after the last chunk and
# after each trailer; RFC 9110 §6.5.1: framing and routing fields are not allowed as trailers.
cases(
    "chunk-terminator",
    data_then_junk=(chunked(b"5\r\nhelloXX0\r\n\r\n"), 400),  # h11 CVE-2025-43859
    data_then_bare_lf=(chunked(b"5\r\nhello\n0\r\n\r\n"), 400),
    data_then_bare_cr=(chunked(b"5\r\nhello\r0\r\n\r\n"), 400),
    size_line_bare_lf=(chunked(b"5\nhello\r\n0\r\n\r\n"), 400),
    last_chunk_lf_lf=(chunked(b"5\r\nhello\r\n0\n\n"), 400),
    last_chunk_crlf_lf=(chunked(b"5\r\nhello\r\n0\r\n\n"), 400),
    last_chunk_lf_crlf=(chunked(b"5\r\nhello\r\n0\n\r\n"), 400),
    trailer_bare_lf=(trailer(b"X-T: a\nX-U: b"), 400),
    trailer_obs_fold=(trailer(b"X-T: a", b" b"), 400),
    trailer_space_before_colon=(trailer(b"X-T : a"), 400),
    trailer_nul=(trailer(b"X-T: a\x00b"), 400),
    trailer_content_length=(trailer(b"Content-Length: 5"), 400),
    trailer_transfer_encoding=(trailer(b"Transfer-Encoding: chunked"), 400),
    trailer_host=(trailer(b"Host: evil.example"), 400),
)
# A second request hidden in the body, for a server (or a proxy in front) that frames the body otherwise.
cases(
    "smuggling",
    cl_te=(
        post(
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % (5 + len(HIDDEN)), b"0\r\n\r\n" + HIDDEN
        ),
        400,
    ),
    te_cl=(
        post(
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n",
        ),
        400,
    ),
    te_te_second_unknown=(
        post(
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\nContent-Length: 5\r\n",
            b"0\r\n\r\n" + HIDDEN,
        ),
        400,
    ),
    te_te_second_unknown_no_cl=(
        post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_space_before_colon=(
        post(b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_obs_fold=(post(b"Transfer-Encoding: x\r\n chunked\r\n", b"0\r\n\r\n" + HIDDEN), 400),
    te_vertical_tab=(
        post(b"Transfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_nul=(post(b"Transfer-Encoding: chunked\x00\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN), 400),
    te_lf_before_colon=(post(b"Transfer-Encoding\n: chunked\r\n", b"0\r\n\r\n" + HIDDEN), 400),
    te_after_bare_lf=(
        post(b"X-A: b\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_uppercase_with_cl=(
        post(b"TRANSFER-ENCODING: CHUNKED\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_tab_with_cl=(
        post(b"Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_identity_with_cl=(
        post(b"Transfer-Encoding: identity\r\nContent-Length: %d\r\n" % len(HIDDEN), HIDDEN),
        400,
    ),
    te_chunked_identity_with_cl=(
        post(b"Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    te_trailing_comma=(
        post(b"Transfer-Encoding: chunked,\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    http10_te_cl=(
        post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN, version=b"1.0"),
        400,
    ),
    cl_zero_then_cl=(post(b"Content-Length: 0\r\nContent-Length: %d\r\n" % len(HIDDEN), HIDDEN), 400),
    cl_list=(post(b"Content-Length: 0, %d\r\n" % len(HIDDEN), HIDDEN), 400),
    chunk_size_overflow=(chunked(b"1" + b"0" * 16 + b"5\r\nhello\r\n0\r\n\r\n" + HIDDEN), 400),
    chunk_size_overflow_ff=(chunked(b"f" * 16 + b"5\r\nhello\r\n0\r\n\r\n" + HIDDEN), 400),
    chunk_data_bare_lf=(chunked(b"5\r\nhello\n0\r\n\r\n" + HIDDEN), 400),
    chunk_data_junk=(chunked(b"5\r\nhelloXX" + b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n"), 400),
    chunk_size_bare_lf=(chunked(b"5\nhello\r\n0\r\n\r\n" + HIDDEN), 400),
    last_chunk_lf_lf=(chunked(b"0\n\n" + HIDDEN), 400),
    last_chunk_crlf_lf=(chunked(b"0\r\n\n" + HIDDEN), 400),
    last_chunk_lf_crlf=(chunked(b"0\n\r\n" + HIDDEN), 400),
    chunk_extension_bare_lf=(chunked(b"5;x\nhello\r\n0\r\n\r\n" + HIDDEN), 400),
    chunk_data_longer_than_size=(chunked(b"2\r\nhe" + b"llo\r\n0\r\n\r\n" + HIDDEN), 400),
    header_bare_cr=(
        post(b"X-A: b\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + HIDDEN),
        400,
    ),
)
# Limits: each refused with its own status, from the head alone.
cases(
    "limits",
    field_too_large=(field(b"X-A: " + b"a" * 8190), 431),
    too_many_fields=(field(*(b"X-%d: a" % i for i in range(101))), 431),
    # Refused once the line is surely over the limit, not held to its end (or to the largest legal head).
    field_line_1mb=(field(b"X-A: " + b"a" * 1024 * 1024), 431),
)


@pytest.mark.parametrize(("cls", "case_id"), list(CASES), ids=[f"{cls}-{case_id}" for cls, case_id in CASES])
def test_hostile_request(served: Served, cls: str, case_id: str) -> None:
    data, status = CASES[(cls, case_id)]
    assert_refused(served, data, status)


def test_tls_client_hello_on_plain_port_is_named_and_closed(served: Served) -> None:
    """A TLS client on a cleartext port is told apart from a bad request: the connection is closed with
    nothing written (a 400 in plain text means nothing to a TLS client) and the log line says what it was."""
    server = served.server
    offset = log_offset(server)
    out = exchange(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32)))
    assert out.eof and out.data == b""
    wait_for(lambda: error_lines_for(server, offset, out.client_port), what="the error log line")
    (line,) = error_lines_for(server, offset, out.client_port)
    assert b"TLS handshake on a plain-HTTP port" in line, line
    assert server.proc.poll() is None


# ------------------------------------------------------------------------------------------ the corpus

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "http1"
CORPUS_CASES: dict[str, bytes] = {
    case["name"]: base64.b64decode(case["raw_b64"])
    for case in json.loads((CORPUS / "cases.json").read_text())
    if case["name"].startswith("invalid/")
}
# The deviations from gunicorn's expectations, with their reasons, live with the core's corpus test.
from tests.unit.test_corpus import CASES as CORPUS_INFO  # noqa: E402
from tests.unit.test_corpus import EXCEPTIONS, Accepted, Incomplete, decode_escapes  # noqa: E402

# Refused with 400 unless listed here (the reason after each).
CORPUS_STATUS = {
    "invalid/003c": 501,  # "-bl" is a token: a method tricorn does not implement (RFC 9110 §9.1)
    "invalid/pp_01": 501,  # a PROXY protocol line reads as the unknown method PROXY
    "invalid/pp_02": 501,
    "invalid/pp_03": 501,
    "invalid/version_02": 505,  # HTTP/2.0 on an HTTP/1.1 connection (RFC 9110 §15.6.6)
    "invalid/006": 414,  # a request-target over the limit
}
# Cases whose expectation rests on gunicorn's limits: sent to the server with tight limits (431 unless
# CORPUS_STATUS says otherwise; invalid/013 is refused for its obs-fold before any limit).
CORPUS_LIMITED = sorted(n for n in CORPUS_CASES if CORPUS_INFO[n]["gunicorn_error"].startswith("Limit"))
CORPUS_DEFAULT = sorted(n for n in CORPUS_CASES if n not in CORPUS_LIMITED)


@pytest.mark.parametrize("name", CORPUS_DEFAULT)
def test_corpus_invalid(served: Served, name: str) -> None:
    raw = CORPUS_CASES[name]
    deviation = EXCEPTIONS.get(name)
    if isinstance(deviation, Accepted) and deviation.decoded:
        # The corpus holds the offending byte as a literal escape; the byte itself must be refused.
        assert_refused(served, decode_escapes(raw), 400)
    elif isinstance(deviation, Accepted):
        assert_served(served, raw)  # tricorn's reading of the RFC accepts it: deviation.reason
    elif name == "invalid/001":
        assert isinstance(deviation, Incomplete)
        assert_refused(served, raw, 408)  # the head never ends: cut at --timeout-request-header
    elif name == "invalid/rfc9112_chunked_missing_final_crlf_01":
        assert isinstance(deviation, Incomplete)
        # The body never ends: the app answers without reading it (a 404) and the connection is closed.
        assert_served(served, raw, eof=True)
    else:
        assert deviation is None
        assert_refused(served, raw, CORPUS_STATUS.get(name, 400))


@pytest.mark.parametrize("name", CORPUS_LIMITED)
def test_corpus_invalid_limits(tight: Served, name: str) -> None:
    default = 400 if name == "invalid/013" else 431
    assert_refused(tight, CORPUS_CASES[name], CORPUS_STATUS.get(name, default))


def read_response(sock: socket.socket, deadline: float) -> tuple[Response, bytes]:
    data = b""
    while True:
        try:
            return parse_response(data)
        except (AssertionError, ValueError):
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            assert chunk, f"closed before a complete response: {data[:300]!r}"
            data += chunk


def assert_served(served: Served, data: bytes, eof: bool = False) -> Response:
    """``data`` is handed to the app once and answered once, with no protocol error logged."""
    server = served.server
    seen_mark = seen_total(server)
    offset = log_offset(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        deadline = time.monotonic() + DEADLINE
        sock.sendall(data)
        if eof:
            received, closed = read_until_eof(sock, deadline)
            assert closed, f"the server did not close the connection; got {received[:300]!r}"
            response, rest = parse_response(received)
        else:
            response, rest = read_response(sock, deadline)
    assert rest == b""
    assert_clean_body(response.body)
    assert len(seen_since(server, seen_mark)) == 1
    assert error_lines_for(server, offset, client_port) == []
    served.healthy.assert_served_after(served.healthy.ok)
    return response


# ------------------------------------------------------------ requests in a body are just body bytes

BODY_CASES = {
    "content_length_body": (
        post(b"Content-Length: %d\r\nConnection: close\r\n" % len(HIDDEN), HIDDEN),
        "POST /echo",
    ),
    "chunked_body": (
        post(
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
            b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n",
        ),
        "POST /echo",
    ),
    # RFC 9112 §9.6: after a request with "close" the server MUST NOT process further requests.
    "after_connection_close": (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + HIDDEN,
        "GET /echo",
    ),
    "after_http10": (b"GET /echo HTTP/1.0\r\n\r\n" + HIDDEN, "GET /echo"),
    # llhttp takes any "Connection: upgrade" request for a protocol switch and skips its body; an upgrade
    # tricorn does not perform (or one with a body) is plain HTTP, and the body stays body.
    "upgrade_unknown_content_length": (
        post(b"Connection: upgrade, close\r\nUpgrade: foo\r\nContent-Length: %d\r\n" % len(HIDDEN), HIDDEN),
        "POST /echo",
    ),
    "upgrade_unknown_chunked": (
        post(
            b"Connection: upgrade, close\r\nUpgrade: foo\r\nTransfer-Encoding: chunked\r\n",
            b"%x\r\n" % len(HIDDEN) + HIDDEN + b"\r\n0\r\n\r\n",
        ),
        "POST /echo",
    ),
}


@pytest.mark.parametrize("case_id", list(BODY_CASES))
def test_request_in_a_body_is_not_a_request(served: Served, case_id: str) -> None:
    data, seen = BODY_CASES[case_id]
    server = served.server
    seen_mark = seen_total(server)
    offset = log_offset(server)
    out = exchange(server, data)
    assert out.eof
    response, rest = parse_response(out.data)
    assert response.status == 200
    assert rest == b"", "the hidden request was answered"
    assert seen_since(server, seen_mark) == [seen]
    if seen.startswith("POST"):
        assert json.loads(response.body)["body"] == HIDDEN.decode()
    lines = new_log_lines(server, offset)
    assert len(lines) == 1 and lines[0].startswith(b'access 127.0.0.1 "' + seen.encode()), lines


def test_websocket_handshake_with_a_body_hides_nothing(served: Served) -> None:
    # Not a valid handshake (RFC 6455 §4.1: a GET); whether it is refused or served as plain HTTP, the
    # body is never read as a request.
    server = served.server
    seen_mark = seen_total(server)
    head = b"Connection: upgrade, close\r\nUpgrade: websocket\r\nContent-Length: %d\r\n" % len(HIDDEN)
    out = exchange(server, post(head, HIDDEN))
    assert out.eof
    response, rest = parse_response(out.data)
    assert rest == b"", "the hidden request was answered"
    assert response.status in (200, 400), response.status_line
    assert seen_since(server, seen_mark) == ([] if response.status == 400 else ["POST /echo"])
    assert_clean_body(response.body)


# Bad chunked framing arriving after the app has started on the request: the app is told the client is
# gone, the client gets the 400 the framing deserves, and nothing after it is read.
SPLIT_TAILS = {
    "last_chunk_lf_lf": b"0\n\n" + HIDDEN,
    "data_then_junk": b"5\r\nworldXX0\r\n\r\n" + HIDDEN,
    "bad_size": b"zz\r\n" + HIDDEN,
    "forbidden_trailer": b"0\r\nContent-Length: 5\r\n\r\n" + HIDDEN,
}


@pytest.mark.parametrize("case_id", list(SPLIT_TAILS))
def test_bad_chunk_after_the_app_started(served: Served, case_id: str) -> None:
    server = served.server
    seen_mark = seen_total(server)
    offset = log_offset(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(
            b"POST /read-slowly HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        wait_for(lambda: seen_since(server, seen_mark) == ["POST /read-slowly"], what="the app to start")
        sock.sendall(SPLIT_TAILS[case_id])
        data, eof = read_until_eof(sock, time.monotonic() + DEADLINE)
    assert eof
    response, rest = parse_response(data)
    assert response.status == 400
    assert rest == b""
    assert_clean_body(response.body)
    assert seen_since(server, seen_mark) == ["POST /read-slowly"]
    wait_for(lambda: len(new_log_lines(server, offset)) >= 2, what="the error and access lines")
    lines = new_log_lines(server, offset)
    assert len(error_lines_for(server, offset, client_port)) == 1, lines
    assert [x for x in lines if x.startswith(b"access")] == [
        b'access 127.0.0.1 "POST /read-slowly HTTP/1.1" 400'
    ]
    assert len(lines) == 2, lines
    served.healthy.assert_served_after(served.healthy.ok)


# Valid requests, the first one's app running, then a malformed one behind them on the same connection.
RUNNING_CASES = {
    "one": (b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: x\r\n\r\n", ["GET /slow?delay=0.3"]),
    "two": (
        b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: x\r\n\r\nGET /?second HTTP/1.1\r\nHost: x\r\n\r\n",
        ["GET /slow?delay=0.3", "GET /?second"],
    ),
}


@pytest.mark.parametrize("case_id", list(RUNNING_CASES))
def test_hostile_request_behind_running_ones_does_not_touch_them(served: Served, case_id: str) -> None:
    """The requests before a framing error are answered as their apps answer them, then the connection
    closes: the error is not blamed on them (nor their apps told the client left), and nothing after it
    is read or answered."""
    first, expected = RUNNING_CASES[case_id]
    server = served.server
    seen_mark = seen_total(server)
    offset = log_offset(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(first)
        wait_for(lambda: seen_since(server, seen_mark)[:1] == expected[:1], what="the app to start")
        sock.sendall(b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n" + HIDDEN)
        data, eof = read_until_eof(sock, time.monotonic() + DEADLINE)
    assert eof
    slow, rest = parse_response(data)
    assert (slow.status, slow.body) == (200, b"slow done"), (slow.status_line, slow.body)
    if len(expected) == 2:
        second, rest = parse_response(rest)
        assert (second.status, second.body) == (200, b"hello, world"), (second.status_line, second.body)
        assert second.header(b"connection") == b"close"
    else:
        assert slow.header(b"connection") == b"close"
    assert rest == b""
    assert seen_since(server, seen_mark) == expected
    wait_for(lambda: len(new_log_lines(server, offset)) >= 1 + len(expected), what="the log lines")
    lines = new_log_lines(server, offset)
    assert len(error_lines_for(server, offset, client_port)) == 1, lines
    assert [x for x in lines if x.startswith(b"access")] == [
        b'access 127.0.0.1 "%s HTTP/1.1" 200' % x.encode() for x in expected
    ]
    assert len(lines) == 1 + len(expected), lines
    served.healthy.assert_served_after(served.healthy.ok)


def test_hostile_request_on_a_used_keep_alive_connection(served: Served) -> None:
    server = served.server
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first, rest = read_response(sock, time.monotonic() + DEADLINE)
        assert first.status == 200 and rest == b""
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab" + HIDDEN
        )
        data, eof = read_until_eof(sock, time.monotonic() + DEADLINE)
    assert eof
    second, rest = parse_response(data)
    assert second.status == 400
    assert rest == b""
    served.healthy.assert_served_after(served.healthy.ok)


# --------------------------------------------------------------------------- slow and idle clients


def test_slowloris_is_cut_with_408(served: Served) -> None:
    """Heads sent a byte per 100 ms get 408 at --timeout-request-header, then EOF; others are served."""
    server, healthy = served.server, served.healthy
    seen_mark = seen_total(server)
    offset = log_offset(server)
    head = b"GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) for _ in range(3)]
    try:
        ports = [s.getsockname()[1] for s in socks]
        ok_mark = healthy.ok
        start = time.monotonic()
        answered: dict[socket.socket, float] = {}
        sent = 0
        while len(answered) < len(socks) and sent < len(head):
            waiting = [s for s in socks if s not in answered]
            for s in waiting:
                s.send(head[sent : sent + 1])
            sent += 1
            # A byte per 100 ms to each; the wait ends early when the server answers.
            readable, _, _ = select.select(waiting, [], [], 0.1)
            for s in readable:
                answered[s] = time.monotonic() - start
        assert len(answered) == len(socks), f"no answer after {sent} bytes"
        assert healthy.ok > ok_mark, "the healthy client was not served while the heads trickled in"
        for s in socks:
            data, eof = read_until_eof(s, time.monotonic() + DEADLINE)
            assert eof
            response, rest = parse_response(data)
            assert response.status == 408
            assert rest == b""
            assert_clean_body(response.body)
            # Cut at the timeout (the server's tick adds up to a quarter of it), not at a byte count.
            assert HEADER_TIMEOUT * 0.9 <= answered[s] < HEADER_TIMEOUT + 1.5, answered[s]
        assert sent < len(head)
    finally:
        for s in socks:
            s.close()
    for port in ports:
        (line,) = error_lines_for(server, offset, port)
        assert b" 408 " in line
    assert seen_since(server, seen_mark) == []
    healthy.assert_served_after(healthy.ok)


def test_idle_connection_is_closed_without_a_response(served: Served) -> None:
    server = served.server
    offset = log_offset(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        start = time.monotonic()
        data, eof = read_until_eof(sock, start + KEEP_ALIVE + 3)
        elapsed = time.monotonic() - start
    assert eof and data == b""
    assert KEEP_ALIVE * 0.9 <= elapsed < KEEP_ALIVE + 1.5, elapsed
    assert error_lines_for(server, offset, client_port) == []
    served.healthy.assert_served_after(served.healthy.ok)


# --------------------------------------------------------------------------------- oversized heads

TEN_MB = 10 * 1024 * 1024
PIECE = 64 * 1024
SLOW_READER = b"POST /read-slowly HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
# id -> (what is sent first, the piece then sent over and over, status, what the app is handed)
OVERSIZED: dict[str, tuple[bytes, bytes, int, list[str]]] = {
    "header_line": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", b"a" * PIECE, 431, []),
    "many_fields": (
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        b"X-Field: aaaaaaaaaaaaaaaaaaaaaaaa\r\n" * (PIECE // 35),
        431,
        [],
    ),
    "target": (b"GET /", b"a" * PIECE, 414, []),
    # The same for the lines of a chunked body, whose head the app has already been handed (llhttp
    # CVE-2024-22019: an unbounded chunk extension; httptools would also buffer a trailer field whole).
    "chunk_extension": (SLOW_READER + b"5;a=", b"b" * PIECE, 400, ["POST /read-slowly"]),
    "chunk_size": (SLOW_READER, b"0" * PIECE, 400, ["POST /read-slowly"]),
    "trailer_field": (SLOW_READER + b"5\r\nhello\r\n0\r\nX-T: ", b"v" * PIECE, 400, ["POST /read-slowly"]),
}


def bytes_read(pid: int) -> int:
    """Bytes the process has read from files and sockets (``rchar`` in /proc/<pid>/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc")
@pytest.mark.parametrize("case_id", list(OVERSIZED))
def test_oversized_head_is_refused_early(served: Served, case_id: str) -> None:
    """10 MB of head (or chunk line) streamed in 64 KB pieces: refused long before the end, without
    buffering it."""
    server = served.server
    prefix, piece, status, seen = OVERSIZED[case_id]
    seen_mark = seen_total(server)
    offset = log_offset(server)
    before = peak = rss_kib(server.proc.pid)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        client_port = sock.getsockname()[1]
        # A small send buffer, so that "sent" is close to what left the client (loopback buffers grow to MBs).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)
        read_before = bytes_read(server.proc.pid)
        sock.sendall(prefix)
        sent = len(prefix)
        if seen:  # the head is valid: let the app have it before the body's lines run on
            wait_for(lambda: seen_since(server, seen_mark) == seen, what="the app to start")
        sock.setblocking(False)
        deadline = time.monotonic() + DEADLINE
        pending = b""
        while sent < TEN_MB and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 0.5)
            if readable:
                break  # the answer (or EOF) is here
            if writable:
                if not pending:
                    pending = piece
                try:
                    n = sock.send(pending)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending = pending[n:]
                sent += n
                peak = max(peak, rss_kib(server.proc.pid))
        sock.setblocking(True)
        data, eof = read_until_eof(sock, time.monotonic() + DEADLINE)
    assert sent < TEN_MB // 2, f"the server let the client send {sent} bytes of head"
    # What the server itself read: at most the largest legal head (H1Limits.head, ~800 KiB by default)
    # and a read buffer, not the 10 MB.
    consumed = bytes_read(server.proc.pid) - read_before
    assert consumed < 2 * 1024 * 1024, f"the server read {consumed} bytes before refusing"
    assert eof
    response, rest = parse_response(data)
    assert response.status == status
    assert rest == b""
    assert_clean_body(response.body)
    grown = peak - before
    assert grown < 4 * 1024, f"server RSS grew by {grown} KiB while refusing an oversized head"
    assert len(error_lines_for(server, offset, client_port)) == 1
    assert seen_since(server, seen_mark) == seen
    served.healthy.assert_served_after(served.healthy.ok)


# ------------------------------------------------------------------------------- response splitting

# The app's header bytes that would split the response (or inject a header) if written as given.
BAD_HEADER_PATHS = [
    "/bad-header",  # tests.apps.basic's own: "value\r\ninjected: yes"
    "/bad-header-crlf",
    "/bad-header-lf",
    "/bad-header-cr",
    "/bad-header-nul",
    "/bad-header-name-crlf",
    "/bad-header-name-colon",
]


@pytest.mark.parametrize("path", BAD_HEADER_PATHS)
def test_response_splitting_is_refused(served: Served, path: str) -> None:
    server = served.server
    offset = log_offset(server)
    out = exchange(server, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    assert out.eof
    response, rest = parse_response(out.data)
    assert response.status == 500
    assert rest == b""
    assert b"injected" not in out.data and b"x-bad" not in out.data and b"\x00" not in out.data
    assert_clean_body(response.body)
    wait_for(lambda: b"exception in asgi application" in b"".join(new_log_lines(server, offset)))
    wait_for(lambda: any(x.startswith(b"access") for x in new_log_lines(server, offset)))
    lines = new_log_lines(server, offset)
    assert b'access 127.0.0.1 "GET %s HTTP/1.1" 500' % path.encode() in lines
    assert not any(_RAW_CONTROL.search(x) for x in lines), lines
    served.healthy.assert_served_after(served.healthy.ok)


# ------------------------------------------------------------------------------------ log escaping


def test_control_bytes_in_logged_paths_are_escaped(served: Served) -> None:
    server = served.server
    offset = log_offset(server)
    target = b"/esc%1b[31m%0aFORGED%20[INFO]%20line%0d%00%7f%c2%85%e2%80%ae?q=%1b%0a"
    out = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert parse_response(out.data)[0].status == 404
    # And a refused request whose error line quotes what the client sent.
    refused = assert_refused(served, b"GET /x HTTP/1.1\r\nHost: \xe2\x80\xae\xc2\x85x\r\n\r\n", 400)
    lines = new_log_lines(server, offset)
    (access,) = [x for x in lines if x.startswith(b"access") and x.endswith(b" 404")]
    assert access == (
        b'access 127.0.0.1 "GET /esc\\x1b[31m\\x0aFORGED [INFO] line\\x0d\\x00\\x7f\\x85\\u202e'
        b'?q=%1b%0a HTTP/1.1" 404'
    )
    (error,) = error_lines_for(server, offset, refused.client_port)
    assert b"\xe2\x80\xae" not in error and b"\xc2\x85" not in error, error
    log = log_bytes(server)
    assert not _RAW_CONTROL.search(log.replace(b"\n", b"")), "a raw control byte in the log"
    assert not re.search(rb"^FORGED", log, re.M)
    assert "\u202e".encode() not in log and "\x85".encode() not in log
