"""HTTP/1.1 server-side protocol core (sans-io).

Theory of operation
-------------------
:class:`H1Connection` turns the bytes a client sends into events, and the application's response into bytes.
It never touches a socket, a clock or a logger, so it is tested with plain function calls.

Receiving: ``receive_data(data)`` returns a list of events: :class:`Request` (a validated request head),
:class:`Data` (a piece of the body) and :class:`EndOfMessage` (with trailers). Pipelined requests simply
produce several ``Request ... EndOfMessage`` runs in one list; the shell answers them in order. Two parser
backends split the bytes: httptools (llhttp, the fast path) and a pure-Python one (configured as "h11").
Both collect each head whole through one shared front (request line, limits, forbidden bytes), parse
fields and chunks to the same strict grammar and feed the same validation (:func:`check_head`), so both
accept and refuse exactly the same requests, with the same status, however the bytes are split. After a
request that closes the connection nothing more is read (RFC 9112 §9.6). A violation raises
:class:`~tricorn.errors.RemoteProtocolError` carrying the status to answer (400, 413, 414, 431, 501, 505);
after it the connection is unusable and the shell answers and closes.

Sending: ``response_head(...)`` validates the application's status and headers (no CR, LF or NUL: no
response splitting), chooses the framing (Content-Length, chunked, or close-delimited for HTTP/1.0) and the
connection's fate (keep-alive or close), and returns the bytes to write. ``response_body(data, more)``
frames body bytes. ``keep_alive`` tells the shell, once the response is complete, whether the connection
may carry another request.

An upgrade request (``Connection: upgrade`` + ``Upgrade: <proto>`` with ``<proto>`` in ``upgrades``) stops
parsing after its head: the bytes after it are kept in ``trailing_data`` for the next protocol's core.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum
from typing import Final, Literal

from tricorn.errors import LocalProtocolError, RemoteProtocolError

try:  # the fast path; the pure-Python backend is the fallback
    import httptools
except ImportError:  # pragma: no cover - exercised on interpreters without the wheel
    httptools = None  # type: ignore[assignment]  # optional: the pure-Python backend serves alone


Headers = list[tuple[bytes, bytes]]
Backend = Literal["httptools", "h11"]

# Precedents for the defaults: gunicorn limit_request_line 4094, limit_request_fields 100,
# limit_request_field_size 8190; nginx large_client_header_buffers 4 8k (a request line of 8 KiB).
DEFAULT_LIMIT_REQUEST_LINE: Final = 8190
DEFAULT_LIMIT_REQUEST_FIELDS: Final = 100
DEFAULT_LIMIT_REQUEST_FIELD_SIZE: Final = 8190


def available_backends() -> tuple[Backend, ...]:
    return ("httptools", "h11") if httptools is not None else ("h11",)


class H1Limits:
    """Request limits; ``body`` is None for no limit. Each bound is enforced without buffering past it."""

    __slots__ = ("body", "field_size", "fields", "head", "request_line")

    def __init__(
        self,
        request_line: int = DEFAULT_LIMIT_REQUEST_LINE,
        fields: int = DEFAULT_LIMIT_REQUEST_FIELDS,
        field_size: int = DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
        body: int | None = None,
    ) -> None:
        self.request_line = request_line
        self.fields = fields
        self.field_size = field_size
        self.body = body
        # The largest head the per-line limits allow: the bound on what is ever buffered for one head.
        self.head = request_line + 2 + fields * (field_size + 2) + 2


# ---------------------------------------------------------------------------------------------- events


class Request:
    """A request head that passed validation.

    ``path`` is the raw path bytes of the target (before ``?``), ``query`` the raw query; for an
    absolute-form target ``authority`` is its host[:port], which replaces Host (RFC 9112 §3.2.2).
    """

    __slots__ = (
        "authority",
        "expect_continue",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        http_version: str,
        headers: Headers,
        path: bytes,
        query: bytes,
        authority: bytes | None,
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.path = path
        self.query = query
        self.authority = authority
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.http_version!r}, {self.headers!r})"


class Data:
    """A piece of the request body, in arrival order."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    """The request body is complete; ``trailers`` holds the chunked trailer fields, if any."""

    __slots__ = ("trailers",)

    def __init__(self, trailers: Headers | None = None) -> None:
        self.trailers = trailers or []

    def __repr__(self) -> str:
        return f"EndOfMessage({self.trailers!r})"


Event = Request | Data | EndOfMessage

# ------------------------------------------------------------------------------------- head validation

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
# RFC 9112 §3.2: request-target is visible ASCII; anything else (controls, space, DEL, non-ASCII) is refused.
_BAD_TARGET = re.compile(rb"[^\x21-\x7e]").search
# RFC 9110 §5.5: field-value = *field-content; CTLs other than HTAB are invalid, CR/LF/NUL MUST be refused.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
# RFC 9112 §2.2 / §5.2: bare CR, bare LF and obs-fold in a head are refused; RFC 9110 §5.5: so are CTLs
# other than HTAB in field values. The shared head front checks every head with this one expression.
_BAD_HEAD_BYTES = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n[ \t]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?\Z")
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.S)
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}\Z")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version; §2.3: HTTP-version =
# "HTTP/" DIGIT "." DIGIT, case-sensitive (llhttp would also take RTSP/1.0 and ICE/1.0 for 1.0).
_REQUEST_LINE = re.compile(rb"[^ \x00-\x1f\x7f]+ [^ \x00-\x1f\x7f]+ HTTP/([0-9])\.([0-9])\Z").match
_TOKEN_PREFIX = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]*").match
_COMMON_LINE = re.compile(rb"([A-Z-]+) ([^ \r\n]+) HTTP/1\.[01]\r\n").match
_HEAD_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]").search
# RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS, and no whitespace before the colon.
_FIELD_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*\Z", re.S).match
# RFC 9112 §7.1.1: chunk-size [ chunk-ext ] CRLF, read exactly as strict llhttp reads it (checked against
# it on every extension of up to 5 bytes over: a ; = DQUOTE backslash SP HTAB 0x80): no whitespace, a name
# of tchars that may be empty unless the line ends there, a value of tchars then maybe a quoted-string.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:;(?=[^ \r])[!#$%&'*+.^_`|~0-9A-Za-z-]*(?:=[!#$%&'*+.^_`|~0-9A-Za-z-]*"
    rb"(?:\"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*\")?)?)*\Z"
).match
# The chunked framing as _HttptoolsParser._chunk_stop follows it: a size line, its data, the CRLF after
# the data, and after the last chunk the trailer lines up to an empty one (RFC 9112 §7.1).
_CK_SIZE, _CK_DATA, _CK_DATA_END, _CK_TRAILERS = range(4)
_CHUNK_HEX = re.compile(rb"[0-9A-Fa-f]+").match
# RFC 9110 §6.5.1: fields that frame or route a message cannot be trailers; llhttp refuses some of them.
_FORBIDDEN_TRAILERS: Final = frozenset((b"content-length", b"transfer-encoding", b"host"))

# The methods tricorn serves. Any other token method is answered 501 (RFC 9110 §9.1) by both backends
# alike: llhttp also knows CONNECT, SOURCE, PRI and RTSP methods, which the shared head front refuses first.
KNOWN_METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND "
    b"REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE "
    b"MKCALENDAR LINK UNLINK QUERY".split()
)


_FRAMING_NAMES: Final = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect")
)


def check_head(
    method: bytes,
    target: bytes,
    version: str,
    headers: Headers,
    limits: H1Limits,
    upgrades: frozenset[bytes],
) -> tuple[Request, int | None, bool]:
    """Validate a parsed request head; return the event, its Content-Length (or None) and chunkedness.

    ``headers`` have lowercased names. Raises RemoteProtocolError with the status to answer.
    """
    if version != "1.1" and version != "1.0":
        if len(version) != 3 or not version.startswith("1.") or not version[2].isdigit():
            # RFC 9110 §15.6.6: 505 for a major version the server does not support.
            raise RemoteProtocolError(f"unsupported http version {version!r}", status=505)
        # RFC 9110 §6.2: a higher minor version than the recipient's SHOULD be processed as the highest
        # minor version it conforms to: HTTP/1.2 to 1.9 are served as HTTP/1.1.
        version = "1.1"
    if method not in KNOWN_METHODS:
        if not _TOKEN.match(method):
            raise RemoteProtocolError(f"invalid method {method[:32]!r}")
        raise RemoteProtocolError(f"method {method.decode('latin-1')!r} not implemented", status=501)
    if len(target) > limits.request_line:
        raise RemoteProtocolError("request target too long", status=414)
    if not target or _BAD_TARGET(target):
        raise RemoteProtocolError(f"invalid request target {target[:64]!r}")
    if len(headers) > limits.fields:
        raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)

    host: bytes | None = None
    host_count = 0
    content_length: bytes | None = None
    transfer_encoding: list[bytes] | None = None
    connection: bytes = b""
    upgrade: bytes | None = None
    expect = False
    field_size = limits.field_size
    for name, value in headers:
        if len(name) + len(value) > field_size:
            raise RemoteProtocolError(f"header field {name[:64]!r} too large", status=431)
        if name not in _FRAMING_NAMES:
            continue
        if name == b"host":
            host = value
            host_count += 1
        elif name == b"content-length":
            if content_length is not None:
                # RFC 9112 §6.3: duplicate Content-Length values are refused rather than merged.
                raise RemoteProtocolError("duplicate content-length")
            content_length = value
        elif name == b"transfer-encoding":
            if not value:  # a framing field with no coding at all is refused (llhttp does so too)
                raise RemoteProtocolError("empty transfer-encoding")
            if transfer_encoding is None:
                transfer_encoding = []
            transfer_encoding.extend(v.strip().lower() for v in value.split(b","))
        elif name == b"connection":
            connection = value.lower() if not connection else connection + b"," + value.lower()
        elif name == b"upgrade":
            upgrade = value.strip().lower()
        elif name == b"expect":
            expect = value.strip().lower() == b"100-continue"

    # RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request lacking Host, or with more than one.
    if host_count > 1 or (host_count == 0 and version == "1.1"):
        raise RemoteProtocolError("missing host header" if host_count == 0 else "duplicate host header")
    if host is not None and not _HOST.match(host):
        raise RemoteProtocolError(f"invalid host header {host[:64]!r}")

    # Request-target forms, RFC 9112 §3.2.1-3.2.4.
    authority = None
    first = target[0]
    if first == 0x2F:  # "/": origin-form, the common case
        path, _, query = target.partition(b"?")
        path = path.partition(b"#")[0]
    elif method == b"OPTIONS" and target == b"*":
        path, query = b"*", b""
    else:
        m = _ABSOLUTE.match(target)
        if m is None or m.group(1).lower() not in (b"http", b"https") or not _HOST.match(m.group(2)):
            raise RemoteProtocolError(f"invalid request target {target[:64]!r}")
        authority = m.group(2)
        # RFC 9112 §3.2.2: the origin server MUST ignore the received Host and use the target's authority.
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.append((b"host", authority))
        rest = m.group(3).partition(b"#")[0] or b"/"
        if rest[0] == 0x3F:  # "?": empty path with a query
            rest = b"/" + rest
        path, _, query = rest.partition(b"?")

    chunked = False
    length: int | None = None
    if transfer_encoding is not None:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing; with Content-Length it is
        # the classic smuggling vector: refuse both.
        if version == "1.0":
            raise RemoteProtocolError("transfer-encoding in an http/1.0 request")
        if content_length is not None:
            raise RemoteProtocolError("both content-length and transfer-encoding")
        if transfer_encoding != [b"chunked"]:
            if transfer_encoding[-1] != b"chunked" or transfer_encoding.count(b"chunked") != 1:
                # RFC 9112 §6.3: chunked not final (or applied twice): 400 and close.
                raise RemoteProtocolError(f"invalid transfer-encoding {b', '.join(transfer_encoding)!r}")
            # RFC 9112 §6.1: a transfer coding the server does not understand: 501.
            raise RemoteProtocolError(
                f"transfer-encoding {b', '.join(transfer_encoding)!r} not implemented", status=501
            )
        chunked = True
    elif content_length is not None:
        # RFC 9112 §6.3 item 5: an invalid Content-Length is an unrecoverable framing error.
        if not _CONTENT_LENGTH.match(content_length):
            raise RemoteProtocolError(f"invalid content-length {content_length[:32]!r}")
        length = int(content_length)
        if limits.body is not None and length > limits.body:
            raise RemoteProtocolError("request body too large", status=413)

    if version == "1.1":
        # bytes.find, not `in`: on 3.11 `bytes in bytes` first tries the needle as an int and formats a
        # TypeError before searching (callgrind, bench "hello").
        keep_alive = connection.find(b"close") < 0 or not _has_token(connection, b"close")
    else:
        # RFC 9112 §9.3: "close" wins over "keep-alive".
        keep_alive = (
            connection.find(b"keep-alive") >= 0
            and _has_token(connection, b"keep-alive")
            and (connection.find(b"close") < 0 or not _has_token(connection, b"close"))
        )
    # RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request, and MAY ignore it otherwise: it
    # does for a request with a body (the switch would have to wait for the body's end).
    if upgrade is not None and (
        upgrade not in upgrades
        or version != "1.1"
        or chunked
        or length
        or not _has_token(connection, b"upgrade")
    ):
        if version == "1.1" and b"websocket" in upgrades and _has_token(upgrade, b"websocket"):
            # RFC 6455 §4.2.1: a WebSocket handshake that does not qualify (no "Connection: upgrade",
            # Upgrade not exactly "websocket", a body) is refused with 400, not served as plain HTTP.
            # Only requests that carry an Upgrade header get here.
            raise RemoteProtocolError(
                f"invalid websocket handshake (upgrade {upgrade[:32]!r}, connection {connection[:32]!r})"
            )
        upgrade = None
    if method == b"CONNECT":
        raise RemoteProtocolError("method 'CONNECT' not implemented", status=501)
    request = Request(
        method,
        target,
        version,
        headers,
        path,
        query,
        authority,
        keep_alive,
        expect and version == "1.1",
        upgrade,
    )
    return request, length, chunked


def _has_token(value: bytes, token: bytes) -> bool:
    return any(part.strip() == token for part in value.split(b","))


# ---------------------------------------------------------------------------------- the shared head front
#
# Both backends collect a request head whole before parsing it, and judge it with the functions below
# while it grows and once it is complete. So each limit and each request-line verdict (400, 414, 501, 505)
# is reached the same way by both backends, whatever the split of the input. A head is refused as soon as
# it is sure to be: a field line once it is surely over ``limits.field_size`` (so at most about that much
# of it is held), a head once it holds more than ``limits.fields`` field lines, and none is buffered past
# ``limits.head``. The verdict is the one its first offending byte brings, as if the head had arrived byte
# by byte: ``_HeadBuffer.add`` judges each piece's bytes in order, and a complete head is judged in the
# same order (``_check_head_in_order``) wherever a size limit might refuse it.


def _check_head_start(head: bytes | bytearray, limits: H1Limits) -> None:
    """Judge the request line at the start of ``head`` as far as it has arrived.

    llhttp refuses a method it does not know at its first odd byte, before the space that tells a token
    (501, RFC 9110 §9.1) from garbage (400); the verdict here waits for that space, so it is the same on
    every split of the input.
    """
    method_end = _TOKEN_PREFIX(head).end()  # type: ignore[union-attr]  # '*' always matches
    if method_end > limits.request_line:
        raise RemoteProtocolError("request line too long", status=414)
    if method_end == len(head):
        return
    if head[method_end] != 0x20 or not method_end:
        raise RemoteProtocolError(f"invalid method {bytes(head[: method_end + 1])[:32]!r}")
    method = bytes(head[:method_end])
    if method not in KNOWN_METHODS:
        raise RemoteProtocolError(f"method {method[:32].decode('latin-1')!r} not implemented", status=501)
    line_end = head.find(b"\r\n", method_end)
    if line_end < 0:
        # The target ends at a space; a CR or LF ends it too (bare ones are refused by the caller).
        target_end = len(head)
        for stop in (b" ", b"\r", b"\n"):
            found = head.find(stop, method_end + 1)
            if 0 <= found < target_end:
                target_end = found
        if target_end - method_end - 1 > limits.request_line:
            raise RemoteProtocolError("request target too long", status=414)
        if len(head) - target_end > 10:  # more than " HTTP/1.1\r" before the line ends
            raise RemoteProtocolError(f"invalid request line {bytes(head[:64])!r}")
        return
    target_end = head.find(b" ", method_end + 1, line_end)
    if (line_end if target_end < 0 else target_end) - method_end - 1 > limits.request_line:
        raise RemoteProtocolError("request target too long", status=414)
    m = _REQUEST_LINE(head, 0, line_end)
    if m is None:
        raise RemoteProtocolError(f"invalid request line {bytes(head[: min(line_end, 64)])!r}")
    if m.group(1) != b"1":
        # RFC 9110 §15.6.6: 505 for a major version the server does not support. (A higher minor
        # version of HTTP/1 is served as 1.1: see check_head.)
        version = bytes(head[line_end - 3 : line_end])
        raise RemoteProtocolError(f"unsupported http version {version!r}", status=505)


def _check_full_head(head: bytes, limits: H1Limits, scan_bytes: bool) -> None:
    """Refuse a complete head (ending in CRLFCRLF) for what both backends must refuse alike.

    ``scan_bytes`` False skips the search for bare CR/LF, obs-fold and CTLs, for a parser that refuses
    them itself with the same status (llhttp, strict).
    """
    # Fast path for the common request line; anything else gets the full verdict (bench: 1.6 us -> 0.4 us).
    m = _COMMON_LINE(head)
    if (
        m is None
        or m.group(1) not in KNOWN_METHODS
        or m.end(2) - m.start(2) > limits.request_line
        or m.end(1) > limits.request_line
    ):
        _check_head_start(head, limits)
    size = len(head)
    # A field line can be over field_size only in a head longer than that, and more than `fields` field
    # lines (of 3 bytes at least) only in one longer than 3 * fields: a short head skips the count.
    if (
        size > limits.field_size + 5
        or size > limits.head
        or (size > 3 * limits.fields and head.count(b"\n") > limits.fields + 2)
    ):
        _check_head_in_order(head, limits)
        return
    if not scan_bytes:
        return
    # The same bytes as _BAD_HEAD_BYTES, counted with C scans instead of a regex with lookarounds,
    # which costs 5 us on a 130-byte head (bench "hello").
    crlf = head.count(b"\r\n")
    if (
        head.count(b"\r") != crlf
        or head.count(b"\n") != crlf
        or head.find(b"\r\n ") >= 0
        or head.find(b"\r\n\t") >= 0
        or _HEAD_CTL(head) is not None
    ):
        raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")


def _bad_byte_at(head: bytes | bytearray, pos: int) -> int:
    """Where the first byte _BAD_HEAD_BYTES refuses in ``head[pos:]`` is known to be bad (an obs-fold at
    its SP or HTAB, a bare CR at the byte after it); ``len(head)`` if none is yet."""
    m = _BAD_HEAD_BYTES(head, pos)
    if m is None:
        return len(head)
    return m.end() - 1 + (m.group() == b"\r")  # a CR at the very end may still get its LF


def _check_field_lines(
    head: bytes | bytearray,
    pos: int,
    stop: int,
    line_start: int,
    line_size: int,
    lines: int,
    limits: H1Limits,
) -> tuple[int, int, int]:
    """Refuse (431) the field lines of ``head[pos:stop]`` at the first byte that makes one of the size
    limits sure to refuse the head; ``head[:stop]`` holds no bad byte, so every LF there ends a line.

    The state resumes and is returned as ``(line_start, line_size, lines)``: where the open line starts,
    its bytes counted so far and the field lines complete before it. Only the bytes of ``head[pos:stop]``
    are read, so a head judged piece by piece costs linear time.
    """
    field_size = limits.field_size
    while True:
        line_end = head.find(b"\n", pos, stop)
        end = stop if line_end < 0 else line_end
        # RFC 9112 §5.1: field-line = field-name ":" OWS field-value OWS; the OWS is in neither name nor
        # value. A line's bytes other than SP, HTAB and CR, less its colon, are a lower bound of the name
        # + value check_head weighs, so no line it would accept is refused here, however padded.
        line_size += (
            end - pos - head.count(b" ", pos, end) - head.count(b"\t", pos, end) - head.count(b"\r", pos, end)
        )
        # A line padded with OWS is bounded too, at twice the field size: its name and value may fill one
        # field size, its padding as much again (gunicorn bounds the whole line by the field size; nginx
        # by its header buffer, 8 KiB). Without it, spaces held a line up to the whole head's bound.
        if line_size > field_size + 1 or end - line_start > 2 * field_size + 2:
            # RFC 6585 §5: 431. The name is read from bytes every split has by now (the line holds at
            # least field_size + 2), so the reason is the same on every split.
            name = bytes(head[line_start : line_start + min(65, field_size + 2)]).partition(b":")[0]
            raise RemoteProtocolError(f"header field {name[:64].lower()!r} too large", status=431)
        if line_end < 0:
            return line_start, line_size, lines
        lines += 1
        if lines > limits.fields:
            # RFC 6585 §5: 431, at the end of the first field line over the limit.
            raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)
        pos = line_start = line_end + 1
        line_size = 0


def _check_head_in_order(head: bytes, limits: H1Limits) -> None:
    """Judge a complete head whose request line passed for bad bytes and every size limit, with the
    refusal its first offending byte brings: the verdict ``_HeadBuffer.add`` reaches on any split."""
    start = head.find(b"\r\n") + 2  # the request line passed: it holds no CR or LF
    bad = _bad_byte_at(head, 0)  # _COMMON_LINE lets a CTL through in a target
    stop = min(bad, limits.head, len(head) - 2)  # the last CRLF ends the head, not a field line
    if stop > start:
        _check_field_lines(head, start, stop, start, 0, 0, limits)
    if bad < len(head) and bad < limits.head:
        raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")
    if len(head) > limits.head:
        raise RemoteProtocolError("request head too large", status=431)


class _HeadBuffer:
    """Collects one request head; refuses it as soon as it is sure to be refused.

    Bytes are appended and only new ones scanned, so a head trickled in byte by byte costs linear time.
    """

    __slots__ = (
        "data",
        "field_lines",
        "limits",
        "line_done",
        "line_size",
        "line_start",
        "scan_bytes",
        "scanned",
    )

    def __init__(self, limits: H1Limits, scan_bytes: bool) -> None:
        self.limits = limits
        self.scan_bytes = scan_bytes
        self.data = bytearray()
        self.line_done = False
        # _check_field_lines' state: the field lines are counted up to `scanned`.
        self.scanned = self.line_start = self.line_size = self.field_lines = 0

    def __len__(self) -> int:
        return len(self.data)

    def add(self, chunk: bytes, pos: int) -> tuple[bytes, int] | None:
        """Take ``chunk[pos:]``; once the head is complete return it and where the rest of ``chunk`` starts."""
        data = self.data
        if not data:
            while chunk.startswith(b"\r\n", pos):  # RFC 9112 §2.2: empty lines before a request-line
                pos += 2
            end = chunk.find(b"\r\n\r\n", pos)
            if end >= 0:  # the common case: a whole head in one piece, nothing buffered
                head = chunk[pos : end + 4]
                _check_full_head(head, self.limits, self.scan_bytes)
                return head, end + 4
            held = 0
        else:
            held = len(data)
        data += memoryview(chunk)[pos:]
        if held == 1 and data.startswith(b"\r\n"):  # a CRLF split before a request-line
            del data[:2]
            held = 0
            while data.startswith(b"\r\n"):
                del data[:2]
        end = data.find(b"\r\n\r\n", max(0, held - 3))
        if end >= 0:
            head = bytes(data[: end + 4])
            rest = len(chunk) - (len(data) - end - 4)
            data.clear()
            self.line_done = False
            self.line_size = self.field_lines = 0
            _check_full_head(head, self.limits, self.scan_bytes)
            return head, rest
        if data == b"\r":
            return None
        limits = self.limits
        if not self.line_done:
            _check_head_start(data, limits)
            line_end = data.find(b"\r\n")
            if line_end >= 0:
                self.line_done = True
                self.scanned = self.line_start = line_end + 2
        # The new bytes in order, as if they had come one by one, so that every split gets one verdict (the
        # one _check_head_in_order gives the whole head): the field lines up to the first bad byte and up
        # to limits.head, then that byte, then limits.head.
        bad = _bad_byte_at(data, max(0, held - 2))
        stop = min(bad, limits.head)
        if self.line_done and stop > self.scanned:
            self.line_start, self.line_size, self.field_lines = _check_field_lines(
                data, self.scanned, stop, self.line_start, self.line_size, self.field_lines, limits
            )
            self.scanned = stop
        if bad < len(data) and bad < limits.head:
            raise RemoteProtocolError("bare cr, bare lf, obs-fold or control character in request head")
        if len(data) > limits.head:
            raise RemoteProtocolError("request head too large", status=431)
        return None


def _check_trailer(name: bytes, value: bytes, count: int, limits: H1Limits) -> None:
    if _BAD_VALUE(value):
        raise RemoteProtocolError(f"invalid character in trailer field {name[:64]!r}")
    if name in _FORBIDDEN_TRAILERS:
        raise RemoteProtocolError(f"{name.decode('latin-1')} is not allowed in trailers")
    if len(name) + len(value) > limits.field_size:
        raise RemoteProtocolError(f"trailer field {name[:64]!r} too large")
    if count >= limits.fields:
        raise RemoteProtocolError("too many trailer fields", status=431)


# ------------------------------------------------------------------------------------- parser backends


def _llhttp(callbacks: object) -> httptools.HttpRequestParser:
    """llhttp for the general path. Its version check is left to the shared head front, which has judged
    every request line before llhttp sees it: so HTTP/1.2 to 1.9 reach check_head (served as 1.1)."""
    parser = httptools.HttpRequestParser(callbacks)
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


class _HttptoolsParser:
    """Drives llhttp through httptools' callbacks; events go to ``events``.

    llhttp reports no error offsets, so this driver keeps each message's first byte where it knows it:
    the head is collected by the shared front, then llhttp is fed one message at a time, a Content-Length
    body cut at its length and a chunked one at its end, which the driver finds by following the chunk
    sizes itself (``_chunk_stop``).
    """

    __slots__ = (
        "body_piece",
        "body_seen",
        "chunked",
        "ck_line",
        "ck_remaining",
        "ck_state",
        "closed",
        "events",
        "fresh",
        "head",
        "headers",
        "headers_done",
        "in_message",
        "limits",
        "parser",
        "paused_upgrade",
        "remaining",
        "request",
        "synthetic",
        "trailers",
        "upgrades",
        "url",
    )

    def __init__(self, limits: H1Limits, upgrades: frozenset[bytes]) -> None:
        assert httptools is not None
        self.limits = limits
        self.upgrades = upgrades
        self.events: list[Event] = []
        self.parser = _llhttp(self)
        self.head = _HeadBuffer(limits, scan_bytes=False)  # llhttp refuses those bytes itself
        self.url = b""
        self.headers: Headers = []
        self.trailers: Headers | None = None
        self.request: Request | None = None
        self.headers_done = False
        self.in_message = False  # llhttp is inside a message (its head has been fed)
        self.remaining = 0  # Content-Length body bytes still due; -1 while in a chunked body
        # Where a chunked body ends, followed by the driver itself (see _chunk_stop).
        self.ck_state = _CK_SIZE
        self.ck_remaining = 0
        self.ck_line = b""
        self.body_piece = False  # llhttp is being fed body bytes: no message may begin in them
        self.body_seen = 0
        self.chunked = False
        self.closed = False  # a request said "close": nothing after it is read
        self.fresh = False  # llhttp took a keep-alive request for the last one: replace it
        self.synthetic = False  # feeding llhttp a head of our own (see _upgrade)
        self.paused_upgrade = False

    @property
    def in_head(self) -> bool:
        return len(self.head) > 0

    # -- callbacks (called from inside feed_data)
    def on_message_begin(self) -> None:
        if self.synthetic:
            return
        if self.body_piece:
            # A message began inside a piece cut as body: the next request would have skipped the shared
            # head front. _chunk_stop cuts at the real end of every body llhttp accepts, so this is a bug.
            raise RemoteProtocolError("invalid request: a request inside a request body")
        self.url = b""
        self.headers = []
        self.trailers = None
        self.headers_done = False
        self.in_message = True
        self.body_seen = 0

    def on_url(self, url: bytes) -> None:
        if not self.synthetic:
            self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.synthetic:
            return
        # llhttp strips the OWS before a value but keeps the OWS after it (RFC 9112 §5.1: neither is in it).
        value = value.rstrip(b" \t")
        if not self.headers_done:
            self.headers.append((name.lower(), value))
            if len(self.headers) > self.limits.fields:
                raise RemoteProtocolError(f"more than {self.limits.fields} header fields", status=431)
        else:
            if self.trailers is None:
                self.trailers = []
            name = name.lower()
            _check_trailer(name, value, len(self.trailers), self.limits)
            self.trailers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.synthetic:
            return
        self.headers_done = True
        parser = self.parser
        request, length, self.chunked = check_head(
            parser.get_method(),
            self.url,
            parser.get_http_version(),
            self.headers,
            self.limits,
            self.upgrades,
        )
        self.remaining = -1 if self.chunked else length or 0
        self.request = request
        self.events.append(request)
        self.ck_state = _CK_SIZE
        self.ck_line = b""

    def on_body(self, body: bytes) -> None:
        if self.remaining > 0:
            self.remaining -= len(body)
        elif self.limits.body is not None:
            self.body_seen += len(body)
            if self.body_seen > self.limits.body:
                raise RemoteProtocolError("request body too large", status=413)
        self.events.append(Data(body))

    def on_message_complete(self) -> None:
        if self.remaining and self.parser.should_upgrade():
            return  # llhttp skipped the body of an upgrade request; _upgrade has it read
        self.in_message = False
        self.remaining = 0
        self.events.append(EndOfMessage(self.trailers))
        request = self.request
        if request is not None and request.upgrade is None:
            if not request.keep_alive:
                self.closed = True
            elif not self.parser.should_keep_alive():
                # llhttp also reads "Proxy-Connection: close" as the end of the connection and would
                # refuse the next request; tricorn ignores that field (the response said keep-alive), so
                # the next request gets a fresh llhttp.
                self.fresh = True

    # -- driving
    def feed(self, data: bytes) -> bytes | None:
        """Parse ``data``; return the bytes after an accepted upgrade request, else None."""
        if self.closed:
            return None  # RFC 9112 §9.6: a server MUST NOT process further requests after "close"
        pos = 0
        end = len(data)
        while pos < end:
            if not self.in_message:
                got = self.head.add(data, pos)
                if got is None:
                    return None
                piece: bytes | memoryview
                piece, pos = got
            else:
                if self.remaining > 0:
                    stop = min(end, pos + self.remaining)
                else:  # chunked
                    stop = self._chunk_stop(data, pos, end)
                piece = memoryview(data)[pos:stop]
                pos = stop
                self.body_piece = True
            try:
                upgraded = self._execute(piece)
            finally:
                self.body_piece = False
            if upgraded:
                return data[pos:]  # llhttp pauses right after an upgrade's head, which ends its piece
            if self.fresh:
                self.fresh = False
                self.parser = _llhttp(self)
            if self.closed:
                return None
        return None

    def _chunk_stop(self, data: bytes, pos: int, end: int) -> int:
        """Follow the chunked framing over ``data[pos:end]``; return just past the body's end if it is
        there, else ``end``.

        llhttp reports no offsets, and a piece fed to it must end where the message does (the next head
        belongs to the shared head front). The framing is followed as llhttp reads a valid body: chunk
        data is skipped by its size, so a body is one llhttp call per read however many CRLFCRLF its data
        holds. A size line it cannot read ends the piece there, and llhttp refuses that line.
        """
        state = self.ck_state
        while pos < end:
            if state in (_CK_DATA, _CK_DATA_END):
                step = min(self.ck_remaining, end - pos)
                pos += step
                self.ck_remaining -= step
                if not self.ck_remaining:
                    if state == _CK_DATA:
                        state = _CK_DATA_END
                        self.ck_remaining = 2  # the CRLF after chunk data
                    else:
                        state = _CK_SIZE
                continue
            # A chunk-size line or a trailer line, up to its LF (llhttp refuses a bare one).
            lf = data.find(b"\n", pos, end)
            if lf < 0:
                self.ck_line += data[pos:end]
                if len(self.ck_line) > self.limits.field_size + 2:
                    # llhttp streams a chunk extension without limit and httptools buffers a trailer
                    # field whole: the line is bounded here, as the pure-Python backend bounds its
                    # buffer, at the end of the same read (llhttp CVE-2024-22019).
                    raise RemoteProtocolError("chunk line too long")
                pos = end
                break
            line = self.ck_line + data[pos:lf]
            self.ck_line = b""
            pos = lf + 1
            if state == _CK_SIZE:
                m = _CHUNK_HEX(line)
                if m is None:  # llhttp refuses it
                    break
                size = int(m.group(), 16)
                if size > 0xFFFF_FFFF_FFFF_FFFF:  # llhttp refuses a size over 64 bits (leading zeros pass)
                    break
                if size:
                    state = _CK_DATA
                    self.ck_remaining = size
                else:
                    state = _CK_TRAILERS
            elif line == b"\r" or not line:  # the empty line after the trailers: the body's end
                state = _CK_SIZE
                break
        self.ck_state = state
        return pos

    def _execute(self, piece: bytes | memoryview) -> bool:
        """Feed one piece to llhttp; return True when an accepted upgrade pauses parsing."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            return self._upgrade()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            raise RemoteProtocolError(f"invalid request: {exc}") from None  # pragma: no cover
        except httptools.HttpParserInvalidURLError:
            raise RemoteProtocolError("invalid request target") from None
        except httptools.HttpParserError as exc:
            raise RemoteProtocolError(f"invalid request: {str(exc).lower()}") from None
        return False

    def _upgrade(self) -> bool:
        request = self.request
        self.parser = _llhttp(self)
        if request is not None and request.upgrade is not None:
            self.paused_upgrade = True
            return True
        # llhttp takes any "Connection: upgrade" request for a switch and skips its body; we serve it as
        # plain HTTP, so a fresh parser reads that body behind a head of our own.
        if self.remaining:
            self.synthetic = True
            try:
                if self.remaining < 0:
                    self.parser.feed_data(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                else:
                    self.parser.feed_data(b"PUT / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % self.remaining)
            finally:
                self.synthetic = False
        return False


# The fields the fast lane leaves to the general path: framing and connection fields, and Proxy-Connection,
# which llhttp reads as Connection (its "close" makes llhttp refuse any later request on the connection).
_SCOUT_NAMES: Final = _FRAMING_NAMES | {b"proxy-connection"}


# Request lines the fast lane leaves to the general path before parsing them (see receive_simple).
_BODY_METHODS: Final = (b"POST ", b"PUT ", b"PATCH ")


class _Scout:
    """A second llhttp parser that reads one whole, bodyless request head for the fast lane.

    It only collects the target and the fields; :meth:`H1Connection.receive_simple` decides from them
    whether the head is one the general path would accept as it is. Any error, and any head it declines,
    leaves llhttp in a state of its own, so the parser is then replaced (the general path reads the bytes
    afresh).
    """

    __slots__ = ("fields", "host", "odd", "parser", "url")

    def __init__(self) -> None:
        assert httptools is not None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.fields: Headers = []
        self.host: bytes | None = None
        self.odd = False  # a framing or connection field other than one Host: not for the fast lane

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp strips the OWS before a value but keeps the OWS after it (RFC 9112 §5.1).
        value = value.rstrip(b" \t")
        if name in _SCOUT_NAMES:
            if name != b"host" or self.host is not None:
                self.odd = True
            self.host = value
        self.fields.append((name, value))

    def reset(self) -> None:
        self.parser = httptools.HttpRequestParser(self)


# States of the pure-Python backend.
_IDLE, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = range(6)


class _PythonParser:
    """The pure-Python backend: the shared head front, then llhttp's strict grammar by hand.

    It once drove h11, whose leniencies (``Content-Length: 5, 5`` merged, OWS after a chunk size, a bare
    CR in a chunk extension, its own 501s for Transfer-Encoding) made the two backends disagree on
    smuggling-relevant input; the configuration keeps the name "h11".
    """

    __slots__ = (
        "body_seen",
        "buffer",
        "closed",
        "events",
        "head",
        "limits",
        "paused_upgrade",
        "remaining",
        "request",
        "state",
        "trailers",
        "upgrades",
    )

    def __init__(self, limits: H1Limits, upgrades: frozenset[bytes]) -> None:
        self.limits = limits
        self.upgrades = upgrades
        self.events: list[Event] = []
        self.head = _HeadBuffer(limits, scan_bytes=True)
        self.buffer = b""  # an unfinished chunk line (bounded by limits.field_size)
        self.state = _IDLE
        self.remaining = 0  # bytes left in the Content-Length body or the current chunk
        self.body_seen = 0
        self.request: Request | None = None
        self.trailers: Headers | None = None
        self.closed = False
        self.paused_upgrade = False

    @property
    def in_head(self) -> bool:
        return len(self.head) > 0

    def feed(self, data: bytes) -> bytes | None:
        """Parse ``data``; return the bytes after an accepted upgrade request, else None."""
        if self.closed:
            return None  # RFC 9112 §9.6: a server MUST NOT process further requests after "close"
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        pos = 0
        end = len(data)
        while pos < end:
            state = self.state
            if state == _IDLE:
                got = self.head.add(data, pos)
                if got is None:
                    return None
                head, pos = got
                self._start(head)
            elif state in (_BODY, _CHUNK_DATA):
                take = data[pos : pos + self.remaining]
                pos += len(take)
                self.remaining -= len(take)
                if state == _CHUNK_DATA and self.limits.body is not None:
                    self.body_seen += len(take)
                    if self.body_seen > self.limits.body:
                        raise RemoteProtocolError("request body too large", status=413)
                self.events.append(Data(take))
                if not self.remaining:
                    if state == _BODY:
                        self._end(None)
                    else:
                        self.state = _CHUNK_END
            elif state == _CHUNK_END:
                # RFC 9112 §7.1: chunk-data is followed by CRLF, nothing else (h11 CVE-2025-43859).
                if data[pos : pos + 2] != b"\r\n":
                    if end - pos == 1 and data[pos] == 0x0D:
                        self.buffer = data[pos:]
                        return None
                    raise RemoteProtocolError("missing crlf after chunk data")
                pos += 2
                self.state = _CHUNK_SIZE
            else:
                line_end = data.find(b"\r\n", pos)
                if line_end < 0:
                    rest = data[pos:]
                    m = _BAD_HEAD_BYTES(rest)
                    if m is not None and not (m.start() == len(rest) - 1 and rest[-1] == 0x0D):
                        raise RemoteProtocolError("bare cr, bare lf or control character in a chunk line")
                    if len(rest) > self.limits.field_size + 2:
                        raise RemoteProtocolError("chunk line too long")
                    self.buffer = rest
                    return None
                line = data[pos:line_end]
                pos = line_end + 2
                if state == _CHUNK_SIZE:
                    self._chunk_size(line)
                elif line:
                    self._trailer(line)
                else:
                    self._end(self.trailers)
            if self.paused_upgrade:
                return data[pos:]
            if self.closed:
                return None
        return None

    def _start(self, head: bytes) -> None:
        method, target, version, headers = _split_head(head, self.limits)
        request, length, chunked = check_head(method, target, version, headers, self.limits, self.upgrades)
        self.request = request
        self.events.append(request)
        self.body_seen = 0
        if chunked:
            self.state = _CHUNK_SIZE
        elif length:
            self.state = _BODY
            self.remaining = length
        else:
            self._end(None)

    def _chunk_size(self, line: bytes) -> None:
        m = _CHUNK_LINE(line)
        if m is None:
            raise RemoteProtocolError(f"invalid chunk size line {line[:32]!r}")
        size = int(m.group(1), 16)
        if size > 0xFFFF_FFFF_FFFF_FFFF:  # llhttp's bound: a chunk size fits in 64 bits
            raise RemoteProtocolError("chunk size overflow")
        if size:
            self.state = _CHUNK_DATA
            self.remaining = size
        else:
            self.state = _TRAILERS

    def _trailer(self, line: bytes) -> None:
        m = _FIELD_LINE(line)
        if m is None:
            raise RemoteProtocolError(f"invalid trailer field line {line[:64]!r}")
        if self.trailers is None:
            self.trailers = []
        name = m.group(1).lower()
        _check_trailer(name, m.group(2), len(self.trailers), self.limits)
        self.trailers.append((name, m.group(2)))

    def _end(self, trailers: Headers | None) -> None:
        self.events.append(EndOfMessage(trailers))
        self.state = _IDLE
        self.trailers = None
        request = self.request
        assert request is not None
        if request.upgrade is not None:
            self.paused_upgrade = True
        elif not request.keep_alive:
            self.closed = True


def _split_head(head: bytes, limits: H1Limits) -> tuple[bytes, bytes, str, Headers]:
    """Split a head that passed _check_full_head into method, target, version and fields."""
    lines = head[:-4].split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    headers: Headers = []
    for line in lines[1:]:
        m = _FIELD_LINE(line)
        if m is None:
            raise RemoteProtocolError(f"invalid header field line {line[:64]!r}")
        headers.append((m.group(1).lower(), m.group(2)))
        if len(headers) > limits.fields:
            raise RemoteProtocolError(f"more than {limits.fields} header fields", status=431)
    return method, target, version[5:].decode("ascii"), headers


# ------------------------------------------------------------------------------------------ responses

_REASONS: Final = {
    100: b"Continue", 101: b"Switching Protocols", 102: b"Processing", 103: b"Early Hints",
    200: b"OK", 201: b"Created", 202: b"Accepted", 203: b"Non-Authoritative Information",
    204: b"No Content", 205: b"Reset Content", 206: b"Partial Content", 207: b"Multi-Status",
    208: b"Already Reported", 226: b"IM Used", 300: b"Multiple Choices", 301: b"Moved Permanently",
    302: b"Found", 303: b"See Other", 304: b"Not Modified", 305: b"Use Proxy", 307: b"Temporary Redirect",
    308: b"Permanent Redirect", 400: b"Bad Request", 401: b"Unauthorized", 402: b"Payment Required",
    403: b"Forbidden", 404: b"Not Found", 405: b"Method Not Allowed", 406: b"Not Acceptable",
    407: b"Proxy Authentication Required", 408: b"Request Timeout", 409: b"Conflict", 410: b"Gone",
    411: b"Length Required", 412: b"Precondition Failed", 413: b"Content Too Large",
    414: b"URI Too Long", 415: b"Unsupported Media Type", 416: b"Range Not Satisfiable",
    417: b"Expectation Failed", 418: b"I'm a teapot", 421: b"Misdirected Request",
    422: b"Unprocessable Content", 423: b"Locked", 424: b"Failed Dependency", 425: b"Too Early",
    426: b"Upgrade Required", 428: b"Precondition Required", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large", 451: b"Unavailable For Legal Reasons",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
    506: b"Variant Also Negotiates", 507: b"Insufficient Storage", 508: b"Loop Detected",
    510: b"Not Extended", 511: b"Network Authentication Required",
}  # fmt: skip

# Status lines are built once (hot path: bench "hello").
_STATUS_LINES: Final = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z-]").search
_SPECIAL: Final = {b"content-length": 1, b"transfer-encoding": 2, b"connection": 3, b"server": 4, b"date": 5}
# Response header names already validated, with their kind (0: ordinary, else a _SPECIAL value). Apps
# repeat a handful of names, so one dict lookup replaces a regex and a lower() per header (bench "hello").
_NAME_KINDS: dict[bytes, int] = {}


def _name_kind(name: bytes) -> int:
    if not name or _BAD_NAME(name):
        raise LocalProtocolError(f"invalid response header name {name[:64]!r}")
    kind = _SPECIAL.get(name.lower(), 0)
    if type(name) is bytes and len(_NAME_KINDS) < 1024:
        _NAME_KINDS[name] = kind
    return kind


_BAD_RESPONSE_VALUE = re.compile(rb"[\x00\r\n]").search

# Response header pairs already checked and serialised: (name, value) -> (kind, line). Apps send the same
# few pairs response after response (bench "hello": one lookup instead of a check and a join per pair).
# Emptied when full, as values vary (Set-Cookie, Content-Length).
_PAIR_LINES: dict[tuple[bytes, bytes], tuple[int, bytes]] = {}
_MAX_CACHED_PAIRS: Final = 4096


def _pair_line(pair: tuple[bytes, bytes]) -> tuple[int, bytes]:
    """Check one response header pair; return its kind and its line. TypeError/ValueError for what is
    not a pair of bytes, LocalProtocolError for a bad name or a CR, LF or NUL in the value (no response
    splitting)."""
    name, value = pair
    kind = _NAME_KINDS.get(name)
    if kind is None:
        kind = _name_kind(name)
    if _BAD_RESPONSE_VALUE(value):
        raise LocalProtocolError(f"invalid byte (cr, lf or nul) in response header {name!r}")
    if kind == 1:  # content-length: a valid value, written in a line of our own
        value = value.strip()
        if not _CONTENT_LENGTH.match(value):
            raise LocalProtocolError(f"invalid content-length {value[:32]!r}")
        entry = (1, b"content-length: %s\r\n" % value)
    else:
        entry = (kind, b"".join((name, b": ", value, b"\r\n")))
    if type(pair) is tuple and type(name) is bytes and type(value) is bytes:
        if len(_PAIR_LINES) >= _MAX_CACHED_PAIRS:
            _PAIR_LINES.clear()
        _PAIR_LINES[pair] = entry
    return entry


CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise LocalProtocolError(f"invalid status code {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class BodyFraming(Enum):
    NONE = 0  # HEAD, 1xx, 204, 304: no body bytes go out
    LENGTH = 1  # Content-Length given by the application
    CHUNKED = 2  # HTTP/1.1 without Content-Length
    CLOSE = 3  # HTTP/1.0 without Content-Length: the body ends when the connection closes


# Members as module constants: on Python 3.11 `Enum.MEMBER` goes through EnumType.__getattr__, which
# costs about as much as parsing a request head (bench "hello", counted with callgrind).
FRAMING_NONE, FRAMING_LENGTH, FRAMING_CHUNKED, FRAMING_CLOSE = BodyFraming


class ResponseState(Enum):
    IDLE = 0  # no request waiting for a response
    HEAD = 1  # a request is waiting; the response head has not been sent
    BODY = 2  # head sent, body in progress
    DONE = 3  # response complete


RS_IDLE, RS_HEAD, RS_BODY, RS_DONE = ResponseState


class H1Connection:
    """One client connection's HTTP/1.1 state; see the module docstring for the protocol of use."""

    __slots__ = (
        "_backend",
        "_framing",
        "_parser",
        "_remaining",
        "_request",
        "_scout",
        "_scout_host",
        "_simple_max",
        "keep_alive",
        "limits",
        "response_state",
        "their_error",
        "trailing_data",
    )

    def __init__(
        self,
        limits: H1Limits | None = None,
        backend: Backend = "httptools",
        upgrades: frozenset[bytes] = frozenset(),
    ) -> None:
        self.limits = limits or H1Limits()
        if backend == "httptools" and httptools is None:  # pragma: no cover
            backend = "h11"
        self._backend = backend
        self._parser: _HttptoolsParser | _PythonParser = (
            _HttptoolsParser(self.limits, upgrades)
            if backend == "httptools"
            else _PythonParser(self.limits, upgrades)
        )
        self._request: Request | None = None
        # The fast lane (receive_simple): llhttp only, for heads no single limit can refuse.
        self._scout = _Scout() if backend == "httptools" else None
        self._scout_host = b""  # the last Host value the fast lane validated (a connection repeats it)
        self._simple_max = min(self.limits.request_line, self.limits.field_size)
        self._framing = FRAMING_NONE
        self._remaining = 0
        self.keep_alive = True
        self.response_state = RS_IDLE
        self.trailing_data = b""
        self.their_error: RemoteProtocolError | None = None

    # -- receiving
    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes. Raises RemoteProtocolError on bad input.

        When ``data`` holds whole requests before the bad input (pipelining), their events are returned
        and the error is kept in ``their_error`` for the caller to answer once those requests are
        answered; the events of a request the error cut short are dropped. After an error every later
        call raises it. While an accepted upgrade is pending (``trailing_data`` set by a Request with
        ``upgrade``), further bytes are appended to it.
        """
        if self.their_error is not None:
            raise self.their_error
        parser = self._parser
        if parser.paused_upgrade:
            self.trailing_data += data
            return []
        try:
            rest = parser.feed(data)
        except RemoteProtocolError as exc:
            self.their_error = exc
            events = parser.events
            parser.events = []
            complete = len(events)
            while complete and type(events[complete - 1]) is not EndOfMessage:
                complete -= 1
            if not complete:
                raise
            return events[:complete]
        if rest is not None:
            self.trailing_data = rest
        events = parser.events
        parser.events = []
        return events

    def receive_simple(self, data: bytes) -> Request | None:
        """The fast lane of :meth:`receive_data` for the commonest read: one whole request head without
        body or connection fields (and not POST, PUT or PATCH), arriving while the connection waits for a
        request.

        Returns the Request exactly as ``receive_data(data)`` would have returned it, complete: no body
        follows (the caller takes it as ``Request`` then ``EndOfMessage``). Returns None, having changed
        nothing, for anything else (a body, ``Connection``, ``Expect`` or ``Upgrade`` fields, HTTP/1.0, a
        target that is not origin-form, an error, ...); the caller then passes ``data`` to
        ``receive_data``, which decides. The pure-Python backend has no fast lane (always None).

        Bench wsgi/asgi "hello": the general path's layers (the shared head front, per-callback state,
        events, the full ``check_head``) cost about four times this lane for a plain GET.
        """
        scout = self._scout
        if scout is None:
            return None
        parser: _HttptoolsParser = self._parser  # type: ignore[assignment]  # the scout implies httptools
        if parser.in_message or parser.head.data or parser.closed or parser.paused_upgrade:
            return None
        end = len(data) - 4
        # Within min(request_line, field_size) bytes no request line or field can be over its limit, nor
        # the head over its own.
        if end > self._simple_max or data.find(b"\r\n\r\n") != end or self.their_error is not None:
            return None
        # HTTP/1.1 only, told before parsing (an HTTP/1.0 client, ab say, sends nothing else). Methods
        # that carry a body go to the general path unparsed too: their head usually comes alone, its body
        # in the next read, and the lane would only parse it to decline it.
        line_end = data.find(b"\r\n")
        if line_end < 14 or not data.startswith(b" HTTP/1.1", line_end - 9) or data.startswith(_BODY_METHODS):
            return None
        fields: Headers = []
        scout.fields = fields
        scout.host = None
        scout.odd = False
        try:
            scout.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # the general path judges it
            scout.reset()
            return None
        method = scout.parser.get_method()
        url = scout.url
        host = scout.host
        # The request line is exactly METHOD SP target SP "HTTP/1.1" (no leading CRLF).
        start = len(method) + 1
        if (
            scout.odd
            or host is None
            or method not in KNOWN_METHODS
            or len(fields) > self.limits.fields
            or not data.startswith(method)
            or start + len(url) != line_end - 9
            or not data.startswith(url, start)
            or url[0] != 0x2F  # origin-form
            or _BAD_TARGET(url) is not None
            or (host != self._scout_host and _HOST.match(host) is None)
        ):
            scout.reset()
            return None
        self._scout_host = host
        path, _, query = url.partition(b"?")
        if path.find(b"#") >= 0:
            path = path.partition(b"#")[0]
        return Request(method, url, "1.1", fields, path, query, None, True, False, None)

    @property
    def in_head(self) -> bool:
        """True while part of a request head has been received but not all of it."""
        return self._parser.in_head

    def decline_upgrade(self) -> list[Event]:
        """Go on as plain HTTP after a paused upgrade request; returns events from the held bytes."""
        parser = self._parser
        parser.paused_upgrade = False
        if isinstance(parser, _HttptoolsParser) and httptools is not None:
            parser.parser = _llhttp(parser)
        rest, self.trailing_data = self.trailing_data, b""
        return self.receive_data(rest) if rest else []

    # -- sending
    def start_request(self, request: Request) -> None:
        """Make ``request`` the one the next response answers (requests are answered in order)."""
        self._request = request
        self.response_state = RS_HEAD
        if not request.keep_alive:
            self.keep_alive = False

    def response_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """Validate and serialise the response head for the current request.

        Adds ``server`` and ``date`` when the application did not (``date`` comes from the shell, which
        refreshes it once a second). Raises LocalProtocolError for a bad status, bad header bytes, or
        anything that is not a pair of bytes.
        """
        request = self._request
        if request is None or self.response_state is not RS_HEAD:
            raise LocalProtocolError(f"response head in state {self.response_state.name}")
        out = [_STATUS_LINES.get(status) or status_line(status)]
        length: bytes | None = None
        length_line = b""
        close = not self.keep_alive
        has_server = has_date = False
        try:
            for pair in headers:
                try:
                    entry = _PAIR_LINES.get(pair)
                except TypeError:  # a list, not a tuple (ASGI allows any two-item iterable)
                    entry = None
                if entry is None:
                    entry = _pair_line(pair)
                kind, line = entry
                if kind:
                    if kind == 1:  # content-length (its value checked, its line ours)
                        if length is not None:
                            raise LocalProtocolError("duplicate content-length in response")
                        length = pair[1]
                        length_line = line
                        continue
                    if kind == 2:  # transfer-encoding: framing is ours to choose
                        continue
                    if kind == 3:  # connection
                        if _has_token(pair[1].lower(), b"close"):
                            close = True
                        continue
                    if kind == 4:
                        has_server = True
                    else:
                        has_date = True
                out.append(line)
        except (TypeError, ValueError, AttributeError):
            raise LocalProtocolError(
                f"response headers must be pairs of bytes, got {headers!r:.80}"
            ) from None
        if not has_server:
            out.append(b"server: tricorn\r\n")
        if not has_date:
            out.append(_date_header[0])

        if status < 200:
            # 1xx carries no body and does not end the exchange; 101 belongs to upgrades, not apps.
            if status == 101:
                raise LocalProtocolError("101 is not a response an application may send")
            out.append(b"\r\n")
            return b"".join(out)
        if status == 204 or status == 304 or request.method == b"HEAD":
            framing = FRAMING_NONE
            if length is not None and status != 204:
                out.append(length_line)
        elif length is not None:
            framing = FRAMING_LENGTH
            self._remaining = int(length)
            out.append(length_line)
        elif request.http_version == "1.1":
            framing = FRAMING_CHUNKED
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = FRAMING_CLOSE
            close = True
        if close:
            self.keep_alive = False
            out.append(b"connection: close\r\n\r\n")
        elif request.http_version == "1.0":
            out.append(b"connection: keep-alive\r\n\r\n")
        else:
            out.append(b"\r\n")
        self._framing = framing
        self.response_state = RS_BODY
        return b"".join(out)

    def response_body(self, data: bytes, more: bool) -> bytes:
        """Frame ``data`` for the wire; with ``more`` False the response is complete after it."""
        if self.response_state is not RS_BODY:
            raise LocalProtocolError(f"response body in state {self.response_state.name}")
        framing = self._framing
        if framing is FRAMING_LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise LocalProtocolError("response body longer than its content-length")
            if not more:
                self.response_state = RS_DONE
                if self._remaining:
                    # The client would wait for bytes that never come: this connection cannot be reused.
                    self.keep_alive = False
            return data
        if framing is FRAMING_CHUNKED:
            if not more:
                self.response_state = RS_DONE
                if data:
                    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
                return b"0\r\n\r\n"
            if data:
                return b"%x\r\n%s\r\n" % (len(data), data)
            return b""
        if not more:
            self.response_state = RS_DONE
        return data if framing is FRAMING_CLOSE else b""

    def response_trailers(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        """End a body sent with ``more`` True: with trailer fields after the last chunk when the body is
        chunked (RFC 9112 §7.1.2), else as ``response_body(b"", False)`` (no framing carries them)."""
        if self.response_state is not RS_BODY:
            raise LocalProtocolError(f"response trailers in state {self.response_state.name}")
        if self._framing is not FRAMING_CHUNKED:
            return self.response_body(b"", False)
        out = [b"0\r\n"]
        try:
            for pair in headers:
                kind, line = _pair_line(pair)
                if not kind:  # (framing fields, server and date have no place in a trailer section)
                    out.append(line)
        except (TypeError, ValueError, AttributeError):
            raise LocalProtocolError(
                f"response trailers must be pairs of bytes, got {headers!r:.80}"
            ) from None
        out.append(b"\r\n")
        self.response_state = RS_DONE
        return b"".join(out)

    def response_body_sent(self, size: int) -> None:
        """Count ``size`` body bytes of a Content-Length response that the shell sent itself (sendfile),
        as ``response_body`` would have; end the response with ``response_body(b"", False)``."""
        if self.response_state is not RS_BODY or self._framing is not FRAMING_LENGTH:
            raise LocalProtocolError(f"sendfile body in state {self.response_state.name}")
        if size > self._remaining:
            raise LocalProtocolError("response body longer than its content-length")
        self._remaining -= size

    @property
    def response_complete_short(self) -> bool:
        """True when a Content-Length response ended before its length."""
        return self._framing is FRAMING_LENGTH and self._remaining > 0

    def finish_cycle(self) -> None:
        """The response is complete and the request's body consumed: ready for the next request."""
        self._request = None
        self.response_state = RS_IDLE


def error_response(status: int, message: str = "") -> bytes:
    """A complete close-delimited error response with a plain-text body (the message, never a traceback)."""
    reason = _REASONS.get(status, b"Error")
    body = (message or reason.decode()).encode("utf-8", "replace") + b"\n"
    return b"".join(
        (
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"server: tricorn\r\n",
            date_header(),
            b"connection: close\r\n\r\n",
            body,
        )
    )


# The date header is refreshed by the shell once a second (hot path: formatting a date per request costs).
_date_header = [b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"]


def set_date(value: bytes) -> None:
    _date_header[0] = b"date: %s\r\n" % value


def date_header() -> bytes:
    return _date_header[0]
