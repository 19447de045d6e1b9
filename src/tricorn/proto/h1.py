"""HTTP/1.1 server-side protocol core (sans-io).

Theory of operation
-------------------
:class:`H1Connection` turns the bytes a client sends into events, and the application's response into bytes.
It never touches a socket, a clock or a logger, so it is tested with plain function calls.

Receiving: ``receive_data(data)`` returns a list of events: :class:`Request` (a validated request head),
:class:`Data` (a piece of the body) and :class:`EndOfMessage` (with trailers). Pipelined requests simply
produce several ``Request ... EndOfMessage`` runs in one list; the shell answers them in order. Two parser
backends split the bytes: httptools (llhttp, the fast path) and h11 (pure Python). Both feed the same
validation (:func:`check_head`), which enforces the recipient requirements of RFC 9112 that either parser
lets through, so both backends accept and refuse exactly the same requests. A violation raises
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
from enum import Enum
from typing import Final, Literal

from tricorn.errors import LocalProtocolError, RemoteProtocolError

try:  # the fast path; h11 is the pure-Python fallback
    import httptools
except ImportError:  # pragma: no cover - exercised on interpreters without the wheel
    httptools = None

import h11

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
# RFC 9112 §2.2 / §5.2: bare CR, bare LF and obs-fold in a head are refused (h11 would accept them).
_BAD_HEAD_BYTES = re.compile(rb"\r(?!\n)|(?<!\r)\n|\r\n[ \t]").search
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?\Z")
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)\Z", re.S)
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}\Z")

# Methods the httptools backend (llhttp) knows; h11 accepts any token, so the same list keeps both equal.
# An unknown method is answered 501 (RFC 9110 §9.1).
KNOWN_METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND "
    b"REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE "
    b"MKCALENDAR LINK UNLINK QUERY".split()
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
        # RFC 9110 §15.6.6: 505 for a major version the server does not support.
        raise RemoteProtocolError(f"unsupported http version {version!r}", status=505)
    if not _TOKEN.match(method):
        raise RemoteProtocolError(f"invalid method {method!r}")
    if method not in KNOWN_METHODS:
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
        if _BAD_VALUE(value):
            raise RemoteProtocolError(f"invalid character in header {name[:64]!r}")
        if name == b"host":
            host = value
            host_count += 1
        elif name == b"content-length":
            if content_length is not None:
                # RFC 9112 §6.3: duplicate Content-Length values are refused rather than merged.
                raise RemoteProtocolError("duplicate content-length")
            content_length = value
        elif name == b"transfer-encoding":
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
        keep_alive = b"close" not in connection or not _has_token(connection, b"close")
    else:
        keep_alive = b"keep-alive" in connection and _has_token(connection, b"keep-alive")
    if upgrade is not None and (upgrade not in upgrades or not _has_token(connection, b"upgrade")):
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


# ------------------------------------------------------------------------------------- parser backends


class _HttptoolsParser:
    """Drives llhttp through httptools' callbacks; events go to ``events``."""

    __slots__ = (
        "body_seen",
        "chunked",
        "events",
        "head_bytes",
        "headers",
        "in_head",
        "limits",
        "parser",
        "paused_upgrade",
        "trailers",
        "upgrades",
        "url",
    )

    def __init__(self, limits: H1Limits, upgrades: frozenset[bytes]) -> None:
        assert httptools is not None
        self.limits = limits
        self.upgrades = upgrades
        self.events: list[Event] = []
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: Headers = []
        self.trailers: Headers | None = None
        self.in_head = False
        self.head_bytes = 0
        self.body_seen = 0
        self.chunked = False
        self.paused_upgrade = False

    # -- callbacks (called from inside feed_data)
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.trailers = None
        self.in_head = True
        self.body_seen = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.request_line:
            raise RemoteProtocolError("request target too long", status=414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:
            self.headers.append((name.lower(), value))
            if len(self.headers) > self.limits.fields:
                raise RemoteProtocolError(f"more than {self.limits.fields} header fields", status=431)
        else:
            if self.trailers is None:
                self.trailers = []
            if len(name) + len(value) > self.limits.field_size or _BAD_VALUE(value):
                raise RemoteProtocolError(f"invalid trailer field {name[:64]!r}", status=400)
            self.trailers.append((name.lower(), value))
            if len(self.trailers) > self.limits.fields:
                raise RemoteProtocolError("too many trailer fields", status=431)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        parser = self.parser
        request, _length, self.chunked = check_head(
            parser.get_method(),
            self.url,
            parser.get_http_version(),
            self.headers,
            self.limits,
            self.upgrades,
        )
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        if self.chunked and self.limits.body is not None:
            self.body_seen += len(body)
            if self.body_seen > self.limits.body:
                raise RemoteProtocolError("request body too large", status=413)
        self.events.append(Data(body))

    def on_message_complete(self) -> None:
        self.events.append(EndOfMessage(self.trailers))

    # -- driving
    def feed(self, data: bytes) -> bytes | None:
        """Parse ``data``; return the bytes after an upgrade request's head, else None."""
        if not self.in_head:
            self.head_bytes = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
            rest = data[offset:]
            request = self._last_request()
            if request is not None and request.upgrade is not None:
                self.paused_upgrade = True
                return rest
            # An upgrade we do not speak (or CONNECT): serve it as plain HTTP and go on parsing.
            self.parser = httptools.HttpRequestParser(self)
            if rest:
                return self.feed(rest)
            return None
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RemoteProtocolError):
                raise cause from None
            raise RemoteProtocolError(f"invalid request: {exc}") from None  # pragma: no cover
        except httptools.HttpParserInvalidMethodError:
            method = data.split(b" ", 1)[0]
            if self.head_bytes == 0 and _TOKEN.match(method) and len(data.split(b" ", 1)) > 1:
                raise RemoteProtocolError(
                    f"method {method[:32].decode('latin-1')!r} not implemented", status=501
                ) from None
            raise RemoteProtocolError("invalid method") from None
        except httptools.HttpParserInvalidURLError:
            raise RemoteProtocolError("invalid request target") from None
        except httptools.HttpParserError as exc:
            message = str(exc)
            if message == "Invalid HTTP version":
                raise RemoteProtocolError("unsupported http version", status=505) from None
            raise RemoteProtocolError(f"invalid request: {message.lower()}") from None
        if self.in_head:
            # Count what is buffered for an unfinished head: refuse it once past the largest legal head.
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.head:
                raise RemoteProtocolError("request head too large", status=431)
        return None

    def _last_request(self) -> Request | None:
        for event in reversed(self.events):
            if isinstance(event, Request):
                return event
        return None


class _H11Parser:
    """Drives h11, one ``h11.Connection`` per request; the raw head is pre-checked for what h11 tolerates."""

    __slots__ = ("buffer", "chunked", "body_seen", "conn", "events", "limits", "paused_upgrade", "upgrades")

    def __init__(self, limits: H1Limits, upgrades: frozenset[bytes]) -> None:
        self.limits = limits
        self.upgrades = upgrades
        self.events: list[Event] = []
        self.buffer = b""
        self.conn: h11.Connection | None = None  # set while a request body is being read
        self.chunked = False
        self.body_seen = 0
        self.paused_upgrade = False

    def feed(self, data: bytes) -> bytes | None:
        buffer = self.buffer + data if self.buffer else data
        self.buffer = b""
        while buffer:
            if self.conn is None:
                if buffer[0] in b"\r\n" and not buffer.lstrip(b"\r\n"):
                    return None  # RFC 9112 §2.2: empty lines before a request are ignored
                buffer = buffer.lstrip(b"\r\n") if buffer[0] in b"\r\n" else buffer
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    self._check_partial_head(buffer)
                    self.buffer = buffer
                    return None
                head = buffer[: end + 4]
                if len(head) > self.limits.head:
                    raise RemoteProtocolError("request head too large", status=431)
                if _BAD_HEAD_BYTES(head, 0, end + 2):
                    raise RemoteProtocolError("bare cr, bare lf or obs-fold in request head")
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.head + 1)
                conn.receive_data(head)
                buffer = buffer[end + 4 :]
                event = self._next(conn)
                if not isinstance(event, h11.Request):  # pragma: no cover - a full head always parses
                    raise RemoteProtocolError("invalid request head")
                request, _length, self.chunked = check_head(
                    event.method,
                    event.target,
                    event.http_version.decode("ascii"),
                    list(event.headers),
                    self.limits,
                    self.upgrades,
                )
                self.events.append(request)
                self.body_seen = 0
                self.conn = conn
                buffer = self._body(buffer)
                if self.paused_upgrade:
                    return buffer
            else:
                buffer = self._body(buffer)
                if self.paused_upgrade:
                    return buffer
        return None

    def _check_partial_head(self, buffer: bytes) -> None:
        line_end = buffer.find(b"\r\n")
        if line_end < 0 and len(buffer) > self.limits.request_line + 2 or line_end > self.limits.request_line:
            raise RemoteProtocolError("request line too long", status=414)
        if len(buffer) > self.limits.head:
            raise RemoteProtocolError("request head too large", status=431)
        # Fail early on bytes no head may hold, rather than waiting for a blank line that never comes.
        if _BAD_HEAD_BYTES(buffer, 0, max(0, len(buffer) - 2)):
            raise RemoteProtocolError("bare cr, bare lf or obs-fold in request head")

    def _body(self, buffer: bytes) -> bytes:
        """Feed body bytes to the current request's h11 connection; return what lies past its end."""
        conn = self.conn
        assert conn is not None
        if buffer:
            conn.receive_data(buffer)
        while True:
            event = self._next(conn)
            if event is h11.NEED_DATA:
                return b""
            if isinstance(event, h11.Data):
                if self.chunked and self.limits.body is not None:
                    self.body_seen += len(event.data)
                    if self.body_seen > self.limits.body:
                        raise RemoteProtocolError("request body too large", status=413)
                self.events.append(Data(bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                trailers = list(event.headers)
                for name, value in trailers:
                    if len(name) + len(value) > self.limits.field_size:
                        raise RemoteProtocolError(f"invalid trailer field {name[:64]!r}")
                self.events.append(EndOfMessage(trailers or None))
                self.conn = None
                rest, _closed = conn.trailing_data
                request = self.events_last_request()
                if request is not None and request.upgrade is not None:
                    self.paused_upgrade = True
                return bytes(rest)

    def events_last_request(self) -> Request | None:
        for event in reversed(self.events):
            if isinstance(event, Request):
                return event
        return None

    @staticmethod
    def _next(conn: h11.Connection) -> object:
        try:
            return conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            message = str(exc).lower()
            if "line" in message and "too long" in message:
                status = 414
            raise RemoteProtocolError(f"invalid request: {message}", status=status) from None


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
_STATUS_LINES: Final = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()
}
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z-]").search
_BAD_RESPONSE_VALUE = re.compile(rb"[\x00\r\n]").search

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"invalid status code {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


class BodyFraming(Enum):
    NONE = 0  # HEAD, 1xx, 204, 304: no body bytes go out
    LENGTH = 1  # Content-Length given by the application
    CHUNKED = 2  # HTTP/1.1 without Content-Length
    CLOSE = 3  # HTTP/1.0 without Content-Length: the body ends when the connection closes


class ResponseState(Enum):
    IDLE = 0  # no request waiting for a response
    HEAD = 1  # a request is waiting; the response head has not been sent
    BODY = 2  # head sent, body in progress
    DONE = 3  # response complete


class H1Connection:
    """One client connection's HTTP/1.1 state; see the module docstring for the protocol of use."""

    __slots__ = (
        "_backend",
        "_framing",
        "_parser",
        "_remaining",
        "_request",
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
        self._parser: _HttptoolsParser | _H11Parser = (
            _HttptoolsParser(self.limits, upgrades)
            if backend == "httptools"
            else _H11Parser(self.limits, upgrades)
        )
        self._request: Request | None = None
        self._framing = BodyFraming.NONE
        self._remaining = 0
        self.keep_alive = True
        self.response_state = ResponseState.IDLE
        self.trailing_data = b""
        self.their_error: RemoteProtocolError | None = None

    # -- receiving
    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes. Raises RemoteProtocolError on bad input.

        After an error every later call raises the same error. While an accepted upgrade is pending
        (``trailing_data`` set by a Request with ``upgrade``), further bytes are appended to it.
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
            parser.events = []
            raise
        if rest is not None:
            self.trailing_data = rest
        events = parser.events
        parser.events = []
        return events

    @property
    def in_head(self) -> bool:
        """True while part of a request head has been received but not all of it."""
        parser = self._parser
        if isinstance(parser, _HttptoolsParser):
            return parser.in_head
        return bool(parser.buffer) and parser.conn is None

    def decline_upgrade(self) -> list[Event]:
        """Go on as plain HTTP after a paused upgrade request; returns events from the held bytes."""
        parser = self._parser
        parser.paused_upgrade = False
        if isinstance(parser, _HttptoolsParser) and httptools is not None:
            parser.parser = httptools.HttpRequestParser(parser)
        rest, self.trailing_data = self.trailing_data, b""
        return self.receive_data(rest) if rest else []

    # -- sending
    def start_request(self, request: Request) -> None:
        """Make ``request`` the one the next response answers (requests are answered in order)."""
        self._request = request
        self.response_state = ResponseState.HEAD
        if not request.keep_alive:
            self.keep_alive = False

    def response_head(self, status: int, headers: Headers) -> bytes:
        """Validate and serialise the response head for the current request.

        Adds ``server`` and ``date`` when the application did not (``date`` comes from the caller, who
        refreshes it once a second). Raises LocalProtocolError for bad status or header bytes.
        """
        request = self._request
        if request is None or self.response_state is not ResponseState.HEAD:
            raise LocalProtocolError(f"response head in state {self.response_state.name}")
        out = [status_line(status)]
        length: bytes | None = None
        close = not self.keep_alive
        has_server = has_date = False
        for name, value in headers:
            if _BAD_NAME(name) or not name:
                raise LocalProtocolError(f"invalid response header name {name[:64]!r}")
            if _BAD_RESPONSE_VALUE(value):
                raise LocalProtocolError(f"invalid response header value for {name[:64]!r}")
            lname = name.lower()
            if lname == b"content-length":
                if length is not None or not _CONTENT_LENGTH.match(value.strip()):
                    raise LocalProtocolError(f"invalid content-length {value[:32]!r}")
                length = value.strip()
                continue
            elif lname == b"transfer-encoding":
                continue  # framing is ours to choose
            elif lname == b"connection":
                if _has_token(value.lower(), b"close"):
                    close = True
                continue
            elif lname == b"server":
                has_server = True
            elif lname == b"date":
                has_date = True
            out.append(b"%s: %s\r\n" % (name, value))
        if not has_server:
            out.append(b"server: tricorn\r\n")
        if not has_date:
            out.append(date_header())

        if status < 200:
            # 1xx carries no body and does not end the exchange; only 101 is not sent this way.
            if status == 101:
                raise LocalProtocolError("101 is not a response an application may send")
            out.append(b"\r\n")
            return b"".join(out)
        if status == 204 or status == 304 or request.method == b"HEAD":
            framing = BodyFraming.NONE
            if length is not None and status != 204:
                out.append(b"content-length: %s\r\n" % length)
        elif length is not None:
            framing = BodyFraming.LENGTH
            self._remaining = int(length)
            out.append(b"content-length: %s\r\n" % length)
        elif request.http_version == "1.1":
            framing = BodyFraming.CHUNKED
            out.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = BodyFraming.CLOSE
            close = True
        if close:
            self.keep_alive = False
            out.append(b"connection: close\r\n\r\n")
        elif request.http_version == "1.0":
            out.append(b"connection: keep-alive\r\n\r\n")
        else:
            out.append(b"\r\n")
        self._framing = framing
        self.response_state = ResponseState.BODY
        return b"".join(out)

    def response_body(self, data: bytes, more: bool) -> bytes:
        """Frame ``data`` for the wire; with ``more`` False the response is complete after it."""
        if self.response_state is not ResponseState.BODY:
            raise LocalProtocolError(f"response body in state {self.response_state.name}")
        framing = self._framing
        if framing is BodyFraming.LENGTH:
            self._remaining -= len(data)
            if self._remaining < 0:
                raise LocalProtocolError("response body longer than its content-length")
            if not more:
                self.response_state = ResponseState.DONE
                if self._remaining:
                    # The client would wait for bytes that never come: this connection cannot be reused.
                    self.keep_alive = False
            return data
        if framing is BodyFraming.CHUNKED:
            if not more:
                self.response_state = ResponseState.DONE
                if data:
                    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
                return b"0\r\n\r\n"
            if data:
                return b"%x\r\n%s\r\n" % (len(data), data)
            return b""
        if not more:
            self.response_state = ResponseState.DONE
        return data if framing is BodyFraming.CLOSE else b""

    @property
    def response_complete_short(self) -> bool:
        """True when a Content-Length response ended before its length."""
        return self._framing is BodyFraming.LENGTH and self._remaining > 0

    def finish_cycle(self) -> None:
        """The response is complete and the request's body consumed: ready for the next request."""
        self._request = None
        self.response_state = ResponseState.IDLE


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
