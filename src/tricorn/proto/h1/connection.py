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

from collections.abc import Iterable
from enum import Enum

from tricorn.errors import LocalProtocolError, RemoteProtocolError
from tricorn.proto.h1.events import Backend, EndOfMessage, Event, H1Limits, ProxyFreeRequest, Request
from tricorn.proto.h1.head import _BAD_TARGET, _HOST, KNOWN_METHODS
from tricorn.proto.h1.parsers import (
    _BODY_METHODS,
    _Bare,
    _HttptoolsParser,
    _llhttp,
    _PythonParser,
    _Scout,
)
from tricorn.proto.h1.response import (
    _STATUS_LINES,
    HEADS,
    _date_header,
    _extra_lines,
    _pair_line,
    status_line,
)

try:  # the fast path; the pure-Python backend is the fallback
    import httptools
except ImportError:  # pragma: no cover - exercised on interpreters without the wheel
    httptools = None  # type: ignore[assignment]  # optional: the pure-Python backend serves alone


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


def new_fast_lane(backend: Backend) -> _Scout | None:
    """A fast lane for the connections of one server to share (see H1Connection), or None when
    ``backend`` has none."""
    return _Scout() if backend == "httptools" and httptools is not None else None


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
        "_scout_shared",
        "_simple_max",
        "_upgrades",
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
        fast_lane: _Scout | None = None,
    ) -> None:
        self.limits = limits or H1Limits()
        if backend == "httptools" and httptools is None:  # pragma: no cover
            backend = "h11"
        self._backend = backend
        self._upgrades = upgrades
        # The general path's parser. llhttp's is made at its first use, in receive_data: a connection whose
        # every request took the fast lane never needs it (bench "close": a new connection per request).
        self._parser: _HttptoolsParser | _PythonParser | None = (
            None if backend == "httptools" else _PythonParser(self.limits, upgrades)
        )
        self._request: Request | None = None
        # The fast lane (receive_simple): llhttp only, for heads no single limit can refuse. None once
        # nothing more is read: after a request that closes the connection, and after release(). It keeps
        # nothing of a connection between two heads, so the connections of a server may share one
        # (``fast_lane``, from new_fast_lane()): 656 bytes less for every open connection.
        self._scout = None if backend != "httptools" else fast_lane or _Scout()
        self._scout_shared = fast_lane is not None
        self._scout_host = b""  # the last Host value the fast lane validated (a connection repeats it)
        self._simple_max = min(self.limits.request_line, self.limits.field_size)
        self._framing = FRAMING_NONE
        self._remaining = 0
        self.keep_alive = True
        self.response_state = RS_IDLE
        self.trailing_data = b""
        self.their_error: RemoteProtocolError | None = None

    def release(self) -> None:
        """Nothing more is read on this connection (it is closed, or another protocol took it over): let
        llhttp's parsers go now. Each holds its callbacks, bound methods of the object that holds it: a
        reference cycle that only a full run of the cyclic collector would free, so a worker kept the
        parsers of thousands of closed connections. Only the response side may be used after this."""
        parser = self._parser
        if type(parser) is _HttptoolsParser:
            parser.release()
        scout = self._scout
        if scout is not None:
            self._scout = None
            if not self._scout_shared:
                scout.release()

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
        if parser is None:
            if self._scout is None:  # the fast lane took a request that closes the connection
                return []
            parser = self._parser = _HttptoolsParser(self.limits, self._upgrades)
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
        body or upgrade fields (and not POST, PUT or PATCH), with at most one Connection field, arriving
        while the connection waits for a request.

        Returns the Request exactly as ``receive_data(data)`` would have returned it, complete: no body
        follows (the caller takes it as ``Request`` then ``EndOfMessage``). Returns None, having changed
        nothing, for anything else (a body, ``Expect`` or ``Upgrade`` fields, two ``Connection`` fields,
        HTTP/1.0, a target that is not origin-form, an error, ...); the caller then passes ``data`` to
        ``receive_data``, which decides. The pure-Python backend has no fast lane (always None).

        Bench wsgi/asgi "hello": the general path's layers (the shared head front, per-callback state,
        events, the full ``check_head``) cost about four times this lane for a plain GET.
        """
        scout = self._scout
        if scout is None:
            return None
        parser: _HttptoolsParser | None = self._parser  # type: ignore[assignment]  # the scout implies httptools
        if parser is not None and (
            parser.in_message
            or parser.head.data
            or parser.closed
            or parser.paused_upgrade
            or self.their_error is not None  # (only the general path's parser sets it)
        ):
            return None
        request = scout.heads.get(data)
        if request is None:
            request = self._read_simple(scout, data)
            if request is None:
                return None
        if not request.keep_alive:
            # Nothing after this request is read (RFC 9112 §9.6): the general path's parser, if it has
            # one, stops, and without the scout receive_data reads nothing.
            if parser is not None:
                parser.closed = True
            self._scout = None
            if not self._scout_shared:
                scout.release()
        return request

    def _read_simple(self, scout: _Scout, data: bytes) -> Request | None:
        """The part of :meth:`receive_simple` for a head the lane has not seen whole before: the Request
        it makes of the head's request line and field block, or None (the general path decides)."""
        # One whole head and nothing after it. (partition, not find or startswith: on Python 3.11 those
        # parse their arguments the slow way, some 800 instructions a call.)
        head, end, rest = data.partition(b"\r\n\r\n")
        # Within min(request_line, field_size) bytes no request line or field can be over its limit, nor
        # the head over its own.
        if rest or not end or len(head) > self._simple_max:
            return None
        line, _, block = head.partition(b"\r\n")
        known_line = scout.lines.get(line)
        # HTTP/1.1 only, told before parsing (an HTTP/1.0 client, ab say, sends nothing else). Methods
        # that carry a body go to the general path unparsed too: their head usually comes alone, its body
        # in the next read, and the lane would only parse it to decline it. (A line the lane knows passed.)
        if known_line is None and (
            len(line) < 14 or line[-9:] != b" HTTP/1.1" or data.startswith(_BODY_METHODS)
        ):
            return None
        known = scout.blocks.get(block)
        if known is None:
            lane: _Scout | _Bare = scout
            scout.fields = []
            scout.host = scout.connection = None
            scout.odd = False
        else:
            lane = scout.bare
        try:
            lane.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):  # the general path judges it
            lane.reset()
            return None
        if known_line is None:
            # The request line is exactly METHOD SP target SP "HTTP/1.1" (no leading CRLF): llhttp read
            # it, so the method ends at the first space; a target with a space in it is refused below.
            method, _, url = line.partition(b" ")
            url = url[:-9]
            if (
                method not in KNOWN_METHODS
                or method != lane.parser.get_method()
                or not url
                or url[0] != 0x2F  # origin-form
                or _BAD_TARGET(url) is not None
            ):
                lane.reset()
                return None
            path, _, query = url.partition(b"?")
            if path.find(b"#") >= 0:
                path = path.partition(b"#")[0]
            parts = (method, url, path, query)
            scout.remember_line(line, parts)
        else:
            parts = known_line
        if known is None:
            # (A known block passed these with this lane: a lane serves one server, one set of limits.)
            host = scout.host
            if (
                scout.odd
                or host is None
                or len(scout.fields) > self.limits.fields
                or (host != self._scout_host and _HOST.match(host) is None)
            ):
                scout.reset()
                return None
            self._scout_host = host
            known = scout.remember_block(block)
            whole = False
        else:
            # The head passed whole, and its line and its block had each passed before: a client that
            # repeats itself (bench "hello"). The same bytes again are not even split or read by llhttp.
            # (A head is kept only then: a client whose every head differs would only churn the table.)
            whole = known_line is not None
        method, url, path, query = parts
        fields, closes, proxy_free = known
        kind = ProxyFreeRequest if proxy_free else Request
        request = kind(method, url, "1.1", fields, path, query, None, not closes, False, None)
        if whole:
            scout.remember_head(data, request)
        if closes:
            lane.reset()  # llhttp refuses what follows a "close" (the lane may be the next connection's)
        return request

    @property
    def in_head(self) -> bool:
        """True while part of a request head has been received but not all of it."""
        parser = self._parser
        return parser is not None and parser.in_head

    def decline_upgrade(self) -> list[Event]:
        """Go on as plain HTTP after a paused upgrade request; returns events from the held bytes."""
        parser = self._parser
        assert parser is not None  # (an upgrade was read by the general path)
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
        line = _STATUS_LINES.get(status) or status_line(status)
        heads = HEADS  # (HeadCache.find, its first test inline: the commonest case, one call fewer)
        fields = heads.last_entry if headers == heads.last else heads.lookup(headers)
        lines, has_date, length, length_line, close = fields
        date = b"" if has_date else _date_header[0]
        if status < 200:
            # 1xx carries no body and does not end the exchange; 101 belongs to upgrades, not apps.
            if status == 101:
                raise LocalProtocolError("101 is not a response an application may send")
            return b"".join((line, lines, date, _extra_lines[0], b"\r\n"))
        if status == 204 or status == 304 or request.method == b"HEAD":
            framing = FRAMING_NONE
            if status == 204:
                length_line = b""
        elif length is not None:
            framing = FRAMING_LENGTH
            self._remaining = length
        elif request.http_version == "1.1":
            framing = FRAMING_CHUNKED
            length_line = b"transfer-encoding: chunked\r\n"
        else:
            framing = FRAMING_CLOSE
            close = True
        if close or not self.keep_alive:
            self.keep_alive = False
            end = b"connection: close\r\n\r\n"
        elif request.http_version == "1.0":
            end = b"connection: keep-alive\r\n\r\n"
        else:
            end = b"\r\n"
        self._framing = framing
        self.response_state = RS_BODY
        return b"".join((line, lines, date, _extra_lines[0], length_line, end))

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
    def body_room(self) -> int | None:
        """The body bytes a Content-Length response still owes, or None when the body is framed
        otherwise (chunked, close-delimited) or none is due."""
        if self.response_state is not RS_BODY or self._framing is not FRAMING_LENGTH:
            return None
        return self._remaining

    @property
    def response_complete_short(self) -> bool:
        """True when a Content-Length response ended before its length."""
        return self._framing is FRAMING_LENGTH and self._remaining > 0

    def finish_cycle(self) -> None:
        """The response is complete and the request's body consumed: ready for the next request."""
        self._request = None
        self.response_state = RS_IDLE
