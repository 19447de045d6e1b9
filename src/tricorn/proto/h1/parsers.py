"""The two HTTP/1.1 parser backends: :class:`_HttptoolsParser` (llhttp, the fast path, with the
:class:`_Scout` of the fast lane) and :class:`_PythonParser` (pure Python, configured as "h11")."""

from __future__ import annotations

from typing import Any, Final

from tricorn.errors import RemoteProtocolError
from tricorn.proto.forwarded import carries_proxy_headers
from tricorn.proto.h1.events import Backend, Data, EndOfMessage, Event, H1Limits, Headers, Request
from tricorn.proto.h1.head import (
    _BAD_HEAD_BYTES,
    _CHUNK_HEX,
    _CHUNK_LINE,
    _CK_DATA,
    _CK_DATA_END,
    _CK_SIZE,
    _CK_TRAILERS,
    _FIELD_LINE,
    _FRAMING_NAMES,
    _check_trailer,
    _HeadBuffer,
    check_head,
    says_close,
)

try:  # the fast path; the pure-Python backend is the fallback
    import httptools
except ImportError:  # pragma: no cover - exercised on interpreters without the wheel
    httptools = None  # type: ignore[assignment]  # optional: the pure-Python backend serves alone


def available_backends() -> tuple[Backend, ...]:
    return ("httptools", "h11") if httptools is not None else ("h11",)


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

    def release(self) -> None:
        """Break the cycle with llhttp's parser (see H1Connection.release)."""
        del self.parser

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


# What the fast lane remembers (see _Scout): at most _KEPT request lines, field blocks and whole heads,
# each of at most _KEPT_SIZE bytes (at most 384 kB in all).
_KEPT: Final = 64
_KEPT_SIZE: Final = 2048

# A request line the fast lane accepted: (method, target, path, query).
Line = tuple[bytes, bytes, bytes, bytes]
# A field block the fast lane accepted: (its fields, whether its Connection field says "close", whether it
# holds no proxy field).
Block = tuple[tuple[tuple[bytes, bytes], ...], bool, bool]


# The scout's fields between two heads (receive_simple gives it a list of its own before each).
_NO_FIELDS: Headers = []


class _Scout:
    """A second llhttp parser that reads one whole, bodyless request head for the fast lane.

    It only collects the fields; :meth:`H1Connection.receive_simple` decides from them and from the
    request line whether the head is one the general path would accept as it is. Any error, and any head
    it declines, leaves llhttp in a state of its own, so the parser is then replaced (the general path
    reads the bytes afresh).

    A client sends the same field block (the bytes between the request line and the blank line) again
    and again, and often the same request line. What the lane makes of a line or a block it accepted
    depends on those bytes alone, so it is kept, in ``lines`` and ``blocks``. A head whose block is known
    is still read by llhttp, whole, but by ``bare``, a parser with no callbacks: no Python call per field.
    A whole head (the read held it and nothing else) that passed with both its line and its block known
    is kept in ``heads`` with the :class:`Request` it made: the same bytes again are that request, not
    split, not read, not made anew (bench "hello"). So one Request stands for every request with those
    bytes, on any connection of the lane: Requests are not changed once made, and their ``headers`` (a
    tuple here) are copied by whoever gives them to an app (interfaces/asgi.py ``build_scope``).
    """

    __slots__ = ("bare", "blocks", "connection", "fields", "heads", "host", "lines", "odd", "parser")

    def __init__(self) -> None:
        assert httptools is not None
        self.parser = httptools.HttpRequestParser(self)
        self.bare = _Bare()
        self.lines: dict[bytes, Line] = {}
        self.blocks: dict[bytes, Block] = {}
        self.heads: dict[bytes, Request] = {}
        self.fields: Headers = []
        self.host: bytes | None = None
        self.connection: bytes | None = None  # the value of one Connection field, lowercased
        # A framing field, or a second Host or Connection field: not for the fast lane.
        self.odd = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        # llhttp strips the OWS before a value but keeps the OWS after it (RFC 9112 §5.1).
        value = value.rstrip(b" \t")
        if name in _SCOUT_NAMES:
            if name == b"host":
                if self.host is not None:
                    self.odd = True
                self.host = value
            elif name == b"connection" and self.connection is None:
                self.connection = value.lower()
            else:
                self.odd = True
        self.fields.append((name, value))

    def remember_line(self, line: bytes, parts: Line) -> None:
        """``line`` passed: the lane takes ``parts`` from here on (not a line longer than _KEPT_SIZE)."""
        if len(line) <= _KEPT_SIZE:
            _keep(self.lines, line, parts)

    def remember_block(self, block: bytes) -> Block:
        """The field block just read, whose fields are in ``fields``, passed: what it gives, kept."""
        fields = self.fields
        connection = self.connection
        closes = connection is not None and says_close(connection)  # (as check_head reads it)
        known = (tuple(fields), closes, not carries_proxy_headers(fields))
        if len(block) <= _KEPT_SIZE:
            _keep(self.blocks, block, known)
        self.fields = _NO_FIELDS
        return known

    def remember_head(self, data: bytes, request: Request) -> None:
        """``data``, one whole head, passed and made ``request``: the lane takes it for ``data`` from here
        on."""
        if len(data) <= _KEPT_SIZE:
            _keep(self.heads, data, request)

    def reset(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.fields = _NO_FIELDS

    def release(self) -> None:
        """Break the cycles with llhttp's parsers (see H1Connection.release)."""
        del self.parser
        del self.bare.parser


def _keep(table: dict[bytes, Any], key: bytes, value: Any) -> None:
    if len(table) >= _KEPT:
        table.clear()  # (a client whose every line or block differs gains nothing from keeping them)
    table[key] = value


class _Bare:
    """The fast lane's llhttp parser for a head whose field block it knows (see _Scout): no callbacks."""

    __slots__ = ("parser",)

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)

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
