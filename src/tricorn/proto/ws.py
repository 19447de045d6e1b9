"""WebSocket server-side protocol core (sans-io): RFC 6455 handshake and framing, RFC 7692 compression.

Theory of operation
-------------------
Two parts, both free of sockets, clocks and the application spec.

The *handshake* half judges an HTTP request that asked to switch to WebSocket (:func:`check_handshake`)
and, once the application has accepted, says what the 101 response carries (:func:`accept_headers`,
:func:`negotiate_extensions`). It is transport-agnostic: it takes the request's method and header list,
so an HTTP/2 extended CONNECT (RFC 8441) can reuse the same checks with its own rules for the
request line. A refused handshake raises :class:`HandshakeError` carrying the status to answer and any
header it needs (426 carries ``Sec-WebSocket-Version: 13``).

The *framing* half, :class:`WSConnection`, is a thin wrapper over the sans-io layer of the ``websockets``
library (its ``Protocol`` class, with its C masking speedup), chosen over wsproto by measurement: about
4x the frames per second at 1 KiB and 10x at 64 KiB (parse + echo, bench notes in ``bench/README.md``).
The library checks masking, opcodes, reserved bits, control-frame rules, close codes and reasons, enforces
the size limit before reading a payload (and while inflating one: a decompression bomb stops at the limit)
and answers pings. This wrapper adds what an ASGI server needs on top: whole messages (fragments
assembled, text validated as UTF-8 frame by frame so a bad message fails fast, RFC 6455 §8.1), its own
event classes, the keepalive ping and the closing-handshake deadline, with time passed in as ``now``.

Use: ``receive_data(data)`` returns events (:class:`TextMessage`, :class:`BytesMessage`,
:class:`CloseReceived`, :class:`ConnectionFailed`); ``message_frame(data)`` returns a message framed for
the wire (the hot path; ``send_text``/``send_bytes`` queue one instead); ``send_close``/``send_ping``/``fail``
queue control frames; ``data_to_send()`` returns the bytes queued (pongs, closes), and ``close_transport``
turns true once the transport should be closed after writing them (RFC 6455 §7.1.1: the server closes the TCP connection
first). ``next_deadline()`` and ``on_timer(now)`` drive the keepalive ping and the closing timeout.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import logging
import re
import struct
import sys
from collections import deque
from collections.abc import Generator, Sequence
from enum import Enum
from typing import Any, Final, cast

from websockets.exceptions import InvalidHeader, InvalidState, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.protocol import Protocol, Side, State

try:  # the library's C unmasking, which its own frame parser uses
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - a platform without the compiled speedups
    from websockets.utils import apply_mask as _apply_mask

from tricorn.errors import LocalProtocolError
from tricorn.proto.h1 import date_header, error_response

Headers = list[tuple[bytes, bytes]]

# RFC 6455 §1.3: the GUID concatenated with the key before hashing.
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION: Final = b"13"

# Defaults, with their precedents. uvicorn: ws_max_size 16 MiB, ws_max_queue 32, ping interval and timeout
# 20 s; websockets: max_size 1 MiB, max_queue 16, ping_interval/ping_timeout 20 s, close_timeout 10 s.
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_QUEUE: Final = 32
DEFAULT_PING_INTERVAL: Final = 20.0
DEFAULT_PING_TIMEOUT: Final = 20.0
DEFAULT_CLOSE_TIMEOUT: Final = 10.0

# permessage-deflate memory per connection, bounded (websockets' own defaults, also uvicorn's): the
# server compresses with a 4 KiB window (2**12) and memLevel 5, about 32 KiB of zlib state, and asks the
# client for a 4 KiB window too; a client that does not support client_max_window_bits keeps the 32 KiB
# maximum, so inflating costs at most about 40 KiB. (zlib's defaults, 15 and 8, cost about 260 KiB.)
DEFLATE_SERVER_MAX_WINDOW_BITS: Final = 12
DEFLATE_CLIENT_MAX_WINDOW_BITS: Final = 12
DEFLATE_MEM_LEVEL: Final = 5

# RFC 6455 §7.4.1 close codes used by the server.
NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
PROTOCOL_ERROR: Final = 1002
NO_STATUS_RCVD: Final = 1005
ABNORMAL_CLOSURE: Final = 1006
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011

# The websockets library logs "connection closed" at INFO for every server connection, and its parser's
# unexpected failures at ERROR: a tricorn.* logger puts them under tricorn's log level and format.
_LIBRARY_LOGGER: Final = logging.getLogger("tricorn.websocket")


# ------------------------------------------------------------------------------------------- handshake


class HandshakeError(Exception):
    """A WebSocket opening handshake that must be refused with ``status`` (and ``headers``)."""

    def __init__(self, message: str, status: int = 400, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class Handshake:
    """A valid opening handshake: the key to answer, the offered subprotocols and extensions."""

    __slots__ = ("extensions", "key", "subprotocols")

    def __init__(self, key: bytes, subprotocols: list[str], extensions: list[str]) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9A-Za-z-]").search


def _tokens(value: bytes) -> list[bytes]:
    return [part.strip().lower() for part in value.split(b",")]


def check_handshake(
    method: bytes, headers: Sequence[tuple[bytes, bytes]], check_upgrade: bool = True
) -> Handshake:
    """Validate a client's opening handshake (RFC 6455 §4.2.1); raise HandshakeError when it is refused.

    ``headers`` have lowercased names. ``check_upgrade`` False is the handshake of RFC 8441 (an HTTP/2
    extended CONNECT): no ``Upgrade``/``Connection``, and no ``Sec-WebSocket-Key`` (§5: the key and
    ``Sec-WebSocket-Accept`` are not used); the key is then empty.
    """
    if check_upgrade and method != b"GET":
        # RFC 6455 §4.1: "The method of the request MUST be GET".
        raise HandshakeError(f"websocket handshake with method {method.decode('latin-1')!r}, not GET")
    upgrade: bytes | None = None
    connection = b""
    keys: list[bytes] = []
    version: bytes | None = None
    subprotocols: list[str] = []
    extensions: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            version = value.strip() if version is None else version + b"," + value.strip()
        elif name == b"sec-websocket-protocol":
            for item in value.decode("latin-1").split(","):
                item = item.strip()
                if item:
                    subprotocols.append(item)
        elif name == b"sec-websocket-extensions":
            extensions.append(value.decode("latin-1"))
        elif name == b"upgrade":
            upgrade = value if upgrade is None else upgrade + b"," + value
        elif name == b"connection":
            connection = value if not connection else connection + b"," + value
    if check_upgrade:
        # RFC 6455 §4.2.1 items 3 and 4.
        if upgrade is None or _tokens(upgrade) != [b"websocket"]:
            raise HandshakeError(f"invalid upgrade header {upgrade!r:.64} for a websocket handshake")
        if b"upgrade" not in _tokens(connection):
            raise HandshakeError("websocket handshake without 'connection: upgrade'")
    # RFC 6455 §4.2.1 item 5: a base64 value that decodes to 16 bytes, sent once.
    if not check_upgrade and not keys:
        keys = [b""]
    elif len(keys) != 1:
        raise HandshakeError("missing sec-websocket-key" if not keys else "more than one sec-websocket-key")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16 and (key or check_upgrade):
        raise HandshakeError(f"invalid sec-websocket-key {key[:32]!r}")
    # RFC 6455 §4.2.2 item 4 / §4.4: a version the server does not speak gets 426 and the versions it does.
    if version != SUPPORTED_VERSION:
        shown = "missing" if version is None else repr(version[:16])
        raise HandshakeError(
            f"unsupported sec-websocket-version {shown} (13 expected)",
            status=426,
            headers=[(b"sec-websocket-version", SUPPORTED_VERSION)],
        )
    return Handshake(key, subprotocols, extensions)


def accept_key(key: bytes) -> bytes:
    """RFC 6455 §4.2.2 item 5.4: base64(SHA-1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def deflate_factory() -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=DEFLATE_SERVER_MAX_WINDOW_BITS,
        client_max_window_bits=DEFLATE_CLIENT_MAX_WINDOW_BITS,
        compress_settings={"memLevel": DEFLATE_MEM_LEVEL},
    )


def negotiate_extensions(offers: Sequence[str], deflate: bool) -> tuple[bytes | None, list[Extension]]:
    """Choose the extensions to use from the client's ``Sec-WebSocket-Extensions`` values.

    Returns the response header value (None for no extension) and the negotiated extensions. The first
    acceptable permessage-deflate offer wins (RFC 7692 §5: the server picks one offer and answers it with
    the parameters it settles on); an offer whose parameters cannot be honoured is skipped. Raises
    HandshakeError (400) for a header that does not parse.
    """
    if not deflate or not offers:
        return None, []
    factory = deflate_factory()
    accepted: list[Extension] = []
    response = []
    for value in offers:
        try:
            parsed = parse_extension(value)
        except InvalidHeader as exc:
            raise HandshakeError(f"invalid sec-websocket-extensions header: {exc}") from None
        for name, params in parsed:
            if name != factory.name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            response.append((name, response_params))
            accepted.append(extension)
    if not accepted:
        return None, []
    return build_extension(response).encode("latin-1"), accepted


_HANDSHAKE_NAMES: Final = frozenset(
    (
        b"upgrade",
        b"connection",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"content-length",
        b"transfer-encoding",
    )
)


def accept_headers(
    handshake: Handshake,
    subprotocol: str | None,
    extensions: bytes | None,
    app_headers: Sequence[tuple[bytes, bytes]] = (),
) -> Headers:
    """The headers of the response that accepts ``handshake`` (without Upgrade and Connection, which
    belong to HTTP/1.1): Sec-WebSocket-Accept, the chosen subprotocol and extensions, then the app's own
    headers, minus those the handshake owns. Raises LocalProtocolError for a bad subprotocol or header."""
    # RFC 8441 §5: over HTTP/2 (an empty key) there is no Sec-WebSocket-Accept.
    out: Headers = [(b"sec-websocket-accept", accept_key(handshake.key))] if handshake.key else []
    if subprotocol is not None:
        if not isinstance(subprotocol, str) or not _TOKEN.match(subprotocol):
            raise LocalProtocolError(f"invalid websocket subprotocol {subprotocol!r:.64}")
        out.append((b"sec-websocket-protocol", subprotocol.encode("ascii")))
    if extensions is not None:
        out.append((b"sec-websocket-extensions", extensions))
    try:
        for name, value in app_headers:
            if not name or _BAD_NAME(name):
                raise LocalProtocolError(f"invalid response header name {bytes(name)[:64]!r}")
            if _BAD_VALUE(value):
                raise LocalProtocolError(f"invalid byte (cr, lf or nul) in response header {bytes(name)!r}")
            lowered = bytes(name).lower()
            if lowered in _HANDSHAKE_NAMES:
                continue
            out.append((lowered, bytes(value)))
    except (TypeError, ValueError):
        raise LocalProtocolError(
            f"response headers must be pairs of bytes, got {app_headers!r:.80}"
        ) from None
    return out


# ------------------------------------------------------------------------------------------- framing


class _Reads:
    """What websockets' Protocol reads frames from (its ``StreamReader``), with fewer copies.

    The library's reader appends every read to one bytearray, slices each payload out of it, and the
    frame parser unmasks that slice into a new bytes object: three passes over every byte received, and
    more while the bytearray grows. This one keeps the reads as they came: a payload inside one read is
    handed to the unmasking as a view of it, so the unmasking (the library's C ``apply_mask``) is the one
    copy; a payload spanning reads is joined once, then unmasked (bench "websocket echo64k").

    ``buf[pos:]`` is the read being consumed, ``more`` the reads after it. Small reads are merged as they
    come (up to ``_MERGE`` bytes), so a client trickling a frame a few bytes per read costs a bytes object
    per ``_MERGE`` bytes at most, not per read.
    """

    __slots__ = ("buf", "eof", "idle", "more", "more_size", "pos")

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.more: deque[bytes] = deque()
        self.more_size = 0
        self.eof = False
        # The frame parser waits, with nothing read, for a frame's first byte (WSConnection's fast lane).
        self.idle = False

    def feed_data(self, data: bytes) -> None:
        if self.eof:
            raise EOFError("stream ended")
        n = len(data)
        if not n:
            return
        if type(data) is not bytes:
            data = bytes(data)  # a bytearray must not change under a view
        more = self.more
        if more:
            if n < _MERGE and len(more[-1]) < _MERGE:
                more[-1] += data
            else:
                more.append(data)
            self.more_size += n
            return
        buf = self.buf
        pos = self.pos
        if pos == len(buf):  # the usual case: the reads before are consumed
            self.buf = data
            self.pos = 0
        elif n < _MERGE and len(buf) - pos < _MERGE:
            self.buf = buf[pos:] + data
            self.pos = 0
        else:
            more.append(data)
            self.more_size = n

    def feed_eof(self) -> None:
        if self.eof:
            raise EOFError("stream ended")
        self.eof = True

    def discard(self) -> None:
        self.buf = b""
        self.pos = self.more_size = 0
        self.more.clear()

    def at_eof(self) -> Generator[None, None, bool]:
        while True:
            if self.pos < len(self.buf) or self.more:
                return False
            if self.eof:
                return True
            self.idle = True
            yield
            self.idle = False

    def read_exact(self, n: int) -> Generator[None, None, bytes | memoryview]:
        buf = self.buf
        pos = self.pos
        end = pos + n
        if end > len(buf):
            return (yield from self._read_across(n))
        self.pos = end
        if n < _VIEW:
            return buf[pos:end]
        return buf if n == len(buf) else memoryview(buf)[pos:end]

    def _read_across(self, n: int) -> Generator[None, None, bytes | memoryview]:
        """``read_exact`` for bytes not (yet) in the current read: wait for them, then join them once."""
        while len(self.buf) - self.pos + self.more_size < n:
            if self.eof:
                raise EOFError(
                    f"stream ends after {len(self.buf) - self.pos + self.more_size} bytes, expected {n}"
                )
            yield
        more = self.more
        if self.pos == len(self.buf):
            self.buf = more.popleft()
            self.pos = 0
            self.more_size -= len(self.buf)
        if self.pos + n <= len(self.buf):  # in one read after all (a new one, or merged reads)
            return (yield from self.read_exact(n))
        parts: list[bytes | memoryview] = [memoryview(self.buf)[self.pos :]]
        left = n - (len(self.buf) - self.pos)
        while True:
            chunk = more.popleft()
            self.more_size -= len(chunk)
            if len(chunk) >= left:
                parts.append(memoryview(chunk)[:left])
                self.buf = chunk
                self.pos = left
                return b"".join(parts)
            parts.append(chunk)
            left -= len(chunk)


# Reads smaller than this are merged into the read before (_Reads); payloads at least this long are
# handed out as views of the read that holds them, shorter ones as slices (a view costs two objects).
_MERGE = 4096
_VIEW = 8192


class _ServerProtocol(Protocol):
    """websockets' Protocol, reading from :class:`_Reads`, with one rule relaxed to match RFC 6455."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parser started on the library's reader: start it again on ours.
        self.parser.close()
        self.reader = _Reads()  # type: ignore[assignment]  # the methods Protocol uses, same signatures
        self.parser = self.parse()
        next(self.parser)

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            # RFC 6455 §5.4: control frames MAY be injected in the middle of a fragmented message; a close
            # there ends the connection normally (the library would fail it with 1002; Autobahn 7.1.5).
            self.current_size = None
        super().recv_frame(frame)


# -- events


class TextMessage:
    """A complete text message, decoded."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"TextMessage({self.data[:40]!r}, {len(self.data)} chars)"


class BytesMessage:
    """A complete binary message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"BytesMessage({self.data[:40]!r}, {len(self.data)} bytes)"


class CloseReceived:
    """The client sent a close frame (``code`` 1005 when it carried none). The reply is already queued."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


class ConnectionFailed:
    """The client broke the protocol (or a deadline passed): a close frame with ``code`` is queued and
    nothing more is read (RFC 6455 §7.1.7, *Fail the WebSocket Connection*)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"ConnectionFailed({self.code}, {self.reason!r})"


Event = TextMessage | BytesMessage | CloseReceived | ConnectionFailed


class WSState(Enum):
    OPEN = 0  # messages flow both ways
    CLOSING = 1  # a close frame was sent: waiting for the client's (or for the transport to close)
    CLOSED = 2  # the closing handshake is over or the connection failed; close the transport


WS_OPEN, WS_CLOSING, WS_CLOSED = WSState

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PING, _PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
_OPEN, _CLOSING = State.OPEN, State.CLOSING
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
_HEAD_7 = struct.Struct("!BB").pack
_HEAD_16 = struct.Struct("!BBH").pack
_HEAD_64 = struct.Struct("!BBQ").pack


class WSConnection:
    """One WebSocket connection's framing state, after a successful handshake (see the module docstring).

    ``ping_interval``/``ping_timeout`` None disable the keepalive (or its deadline). All times are the
    caller's clock, in seconds.
    """

    __slots__ = (
        "_close_by",
        "_ended",
        "_fast_max",
        "_fragments",
        "_ping_at",
        "_ping_count",
        "_ping_payload",
        "_pong_by",
        "_proto",
        "_reads",
        "_refused",
        "_text",
        "_utf8",
        "close_timeout",
        "ping_interval",
        "ping_timeout",
    )

    def __init__(
        self,
        now: float,
        max_size: int | None = DEFAULT_MAX_SIZE,
        extensions: Sequence[Extension] = (),
        ping_interval: float | None = DEFAULT_PING_INTERVAL,
        ping_timeout: float | None = DEFAULT_PING_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        proto = _ServerProtocol(Side.SERVER, state=State.OPEN, max_size=max_size, logger=_LIBRARY_LOGGER)
        proto.extensions = list(extensions)
        self._proto = proto
        self._reads = cast("_Reads", proto.reader)
        self._fragments: list[bytes] | list[str] | None = None  # parts of a fragmented message
        self._text = False
        self._utf8: codecs.IncrementalDecoder | None = None
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self._ping_at = now + ping_interval if ping_interval else None
        self._ping_payload: bytes | None = None
        self._ping_count = 0
        self._pong_by: float | None = None
        self._close_by: float | None = None
        self._ended = False  # the end of the connection was reported as an event
        self._refused = False  # this wrapper failed the connection (invalid UTF-8, a deadline)
        # The size limit of the fast lane (_fast_frames), 0 when it is off: with an extension (the
        # library decompresses), or with the library's debug log on (it logs every frame).
        self._fast_max = sys.maxsize if max_size is None else max_size
        if proto.extensions or proto.debug:
            self._fast_max = 0

    # -- state
    @property
    def state(self) -> WSState:
        state = self._proto.state
        if state is _OPEN:
            return WS_OPEN
        if state is _CLOSING:
            return WS_CLOSING
        return WS_CLOSED

    @property
    def close_transport(self) -> bool:
        """True once the server should close the transport (after writing ``data_to_send()``)."""
        return self._proto.eof_sent

    @property
    def close_sent(self) -> tuple[int, str] | None:
        close = self._proto.close_sent
        return None if close is None else (int(close.code), close.reason)

    # -- receiving
    def receive_data(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completes. Protocol errors become ConnectionFailed."""
        proto = self._proto
        if proto.eof_sent or proto.reader.eof:
            return []  # failed or closed: nothing more is read (RFC 6455 §7.1.7, §1.4)
        events: list[Event] = []
        if (
            self._reads.idle
            and self._fast_max
            and proto.state is _OPEN
            and proto.current_size is None
            and type(data) is bytes
        ):
            done = self._fast_frames(data, events)
            if done == len(data) and not self._refused:
                return events
            data = data[done:]
        frames: list[Frame] = []
        if not self._refused:
            proto.receive_data(data)
            frames = proto.events_received()  # type: ignore[assignment]  # frames: no handshake here
        for frame in frames:
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY or opcode is _CONT:
                event = self._data_frame(frame, opcode)
                if event is not None:
                    events.append(event)
                elif self._refused:
                    break  # the message was refused (invalid UTF-8): ignore anything after it
            elif opcode is _CLOSE:
                close = proto.close_rcvd
                assert close is not None
                if proto.parser_exc is None:
                    events.append(CloseReceived(int(close.code), close.reason))
            elif opcode is _PONG and self._ping_payload is not None and frame.data == self._ping_payload:
                self._ping_payload = None
                self._pong_by = None
            # Pings are answered by the library itself (RFC 6455 §5.5.2); the pong is in data_to_send().
        if proto.eof_sent and not self._ended:
            self._ended = True
            if not events or type(events[-1]) is not CloseReceived:
                close = proto.close_sent
                if close is not None:
                    events.append(ConnectionFailed(int(close.code), close.reason))
                else:  # pragma: no cover - failing an open connection always sends a close frame
                    events.append(ConnectionFailed(ABNORMAL_CLOSURE, str(proto.parser_exc)))
        return events

    def _fast_frames(self, data: bytes, events: list[Event]) -> int:
        """The fast lane: whole unfragmented text and binary frames at the start of ``data``, read here.

        Taken only while the library's parser waits for a frame's first byte with nothing buffered, the
        connection is open, no message is in fragments and no extension is in use. A frame qualifies when
        its first byte is FIN with no reserved bit and the text or binary opcode, it is masked (RFC 6455
        §5.1), its length is within the size limit and all of it is in ``data``: it is unmasked (the
        library's C ``apply_mask``) and becomes an event as the library's frame would. Anything else,
        from the first frame that does not qualify (a control frame, a fragment, a reserved bit, an
        unmasked or oversized frame, a frame cut by the end of the read), is left to the library, which
        then starts at a frame boundary. Returns how many bytes were consumed (the whole of ``data``
        when a text message was refused: the connection has failed and the rest is not read).
        """
        end = len(data)
        max_size = self._fast_max
        pos = 0
        while end - pos >= 6:  # the shortest masked frame: two bytes of header and the mask
            first = data[pos]
            if first != 0x82 and first != 0x81:
                break
            length = data[pos + 1] - 0x80  # the MASK bit must be set
            if length < 0:
                break
            if length < 126:
                start = pos + 6
            elif length == 126:
                start = pos + 8
                length = data[pos + 2] << 8 | data[pos + 3]
            else:
                start = pos + 14
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            stop = start + length
            if stop > end or length > max_size:
                break
            payload = data[start:stop] if length < _VIEW else memoryview(data)[start:stop]
            payload = _apply_mask(payload, data[start - 4 : start])
            pos = stop
            if first == 0x82:
                events.append(BytesMessage(payload))
            else:
                event = self._text_message(payload)
                if event is None:
                    return end
                events.append(event)
        return pos

    def _text_message(self, data: bytes) -> TextMessage | None:
        """A whole text message, or None when it is not UTF-8 (the connection fails with 1007)."""
        try:
            return TextMessage(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self._fail(INVALID_DATA, f"invalid utf-8 in text message at byte {exc.start}")
            return None

    def _data_frame(self, frame: Frame, opcode: Opcode) -> TextMessage | BytesMessage | None:
        data = frame.data
        if frame.fin and opcode is not _CONT:  # the common case: a whole message in one frame
            if opcode is _TEXT:
                return self._text_message(data if type(data) is bytes else bytes(data))
            return BytesMessage(data if type(data) is bytes else bytes(data))
        if opcode is not _CONT:  # the first fragment (the library checks the sequence of opcodes)
            self._text = opcode is _TEXT
            self._fragments = []
            self._utf8 = _Utf8Decoder() if self._text else None
        fragments = self._fragments
        assert fragments is not None
        if self._text:
            assert self._utf8 is not None
            try:
                # RFC 6455 §8.1: validated frame by frame, so a bad message fails before its end.
                fragments.append(self._utf8.decode(bytes(data), frame.fin))  # type: ignore[arg-type]
            except UnicodeDecodeError as exc:
                self._fail(INVALID_DATA, f"invalid utf-8 in text message at byte {exc.start}")
                return None
        else:
            fragments.append(bytes(data))  # type: ignore[arg-type]
        if not frame.fin:
            return None
        self._fragments = None
        self._utf8 = None
        if self._text:
            return TextMessage("".join(fragments))  # type: ignore[arg-type]
        return BytesMessage(b"".join(fragments))  # type: ignore[arg-type]

    def _fail(self, code: int, reason: str) -> None:
        self._refused = True
        self._fragments = None
        self._utf8 = None
        self._proto.fail(code, reason)

    def receive_eof(self) -> None:
        """The client closed its side of the transport (without a close frame, unless one came before)."""
        self._proto.receive_eof()
        self._ended = True

    # -- sending
    def send_text(self, data: str) -> None:
        """Queue a text message. Raises LocalProtocolError unless the connection is open."""
        try:
            self._proto.send_text(data.encode("utf-8"))
        except InvalidState:
            raise LocalProtocolError(f"websocket message sent in state {self.state.name}") from None

    def send_bytes(self, data: bytes) -> None:
        """Queue a binary message. Raises LocalProtocolError unless the connection is open."""
        try:
            self._proto.send_binary(data)
        except InvalidState:
            raise LocalProtocolError(f"websocket message sent in state {self.state.name}") from None

    def message_frame(self, data: str | bytes) -> list[bytes]:
        """A whole message, framed for the client, as the parts to write in order.

        The library frames it (through its extensions: compression) unless nothing stands between the
        payload and the wire; then only the header is built here and the payload goes out as it is, with
        no copy (bench "websocket echo64k": ``Frame.serialize`` copies the payload twice). Raises
        LocalProtocolError unless the connection is open.
        """
        proto = self._proto
        text = type(data) is str
        payload: bytes = data.encode("utf-8") if text else data  # type: ignore[union-attr, assignment]
        if (
            proto.extensions
            or proto.writes  # frames queued before this one go first
            or proto.debug
            or proto.state is not _OPEN
            or proto.expect_continuation_frame
        ):
            try:
                if text:
                    proto.send_text(payload)
                else:
                    proto.send_binary(payload)
            except InvalidState:
                raise LocalProtocolError(f"websocket message sent in state {self.state.name}") from None
            return proto.data_to_send()
        # RFC 6455 §5.2: FIN, opcode, then the 7-bit, 16-bit or 64-bit payload length; server frames are
        # not masked.
        first = 0x81 if text else 0x82
        n = len(payload)
        if n < 126:
            head = _HEAD_7(first, n)
        elif n < 65536:
            head = _HEAD_16(first, 126, n)
        else:
            head = _HEAD_64(first, 127, n)
        if n < 16384:
            return [head + payload]  # one small write beats a vectored one
        return [head, payload]

    def send_close(self, now: float, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 §7.1.2); the client has ``close_timeout`` to answer.

        Raises LocalProtocolError for a code that may not be sent or a reason over 123 bytes.
        """
        proto = self._proto
        if proto.state is not _OPEN:
            return
        if type(code) is not int or not (code == NORMAL_CLOSURE or 1001 <= code <= 1003 or 1007 <= code <= 1014
                                         or 3000 <= code <= 4999):  # fmt: skip
            # RFC 6455 §7.4.1-7.4.2: 1004-1006 and 1015 are never sent; below 1000 and 1016-2999 unassigned.
            raise LocalProtocolError(f"invalid websocket close code {code!r}")
        if not isinstance(reason, str) or len(reason.encode("utf-8")) > 123:
            # RFC 6455 §5.5: a control frame payload is at most 125 bytes, two of them the code.
            raise LocalProtocolError(f"websocket close reason longer than 123 bytes: {reason!r:.40}")
        proto.send_close(code, reason)
        self._close_by = now + self.close_timeout

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection from the server's side (keepalive timeout, internal error)."""
        if not self._proto.eof_sent:
            self._fail(code, reason)
        self._ended = True

    def data_to_send(self) -> bytes:
        """The bytes queued for the client since the last call."""
        proto = self._proto
        if not proto.writes:
            return b""  # the usual case: nothing but messages was read
        writes = proto.data_to_send()
        return writes[0] if len(writes) == 1 else b"".join(writes)

    # -- time
    def next_deadline(self) -> float | None:
        """When ``on_timer`` should next be called, or None."""
        proto = self._proto
        if proto.eof_sent:
            return None
        if proto.state is not _OPEN:
            return self._close_by
        if self._ping_payload is not None:
            return self._pong_by
        return self._ping_at

    def on_timer(self, now: float) -> list[Event]:
        """Send the keepalive ping that is due, or fail the connection whose pong (or close) is late."""
        proto = self._proto
        if proto.eof_sent:
            return []
        if proto.state is not _OPEN:
            if self._close_by is not None and now >= self._close_by:
                # The client did not answer our close frame in time: give up on the closing handshake.
                self._close_by = None
                self._ended = True
                proto.send_eof()
                return [ConnectionFailed(ABNORMAL_CLOSURE, "closing handshake timed out")]
            return []
        if self._ping_payload is not None:
            if self._pong_by is not None and now >= self._pong_by:
                self._fail(INTERNAL_ERROR, "keepalive ping timeout")
                self._ended = True
                return [ConnectionFailed(INTERNAL_ERROR, "keepalive ping timeout")]
            return []
        if self._ping_at is not None and now >= self._ping_at and self.ping_interval:
            self._ping_count += 1
            payload = struct.pack("!I", self._ping_count & 0xFFFFFFFF)
            proto.send_ping(payload)
            self._ping_at = now + self.ping_interval
            if self.ping_timeout:
                self._ping_payload = payload
                self._pong_by = now + self.ping_timeout
        return []

    def send_ping(self, data: bytes = b"") -> None:
        self._proto.send_ping(data)


# --------------------------------------------------------------------------------- HTTP/1.1 responses


def h1_accept_response(headers: Headers) -> bytes:
    """The HTTP/1.1 101 response that completes the handshake, with ``headers`` from accept_headers()."""
    out = [b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"]
    has_server = has_date = False
    for name, value in headers:
        out += (name, b": ", value, b"\r\n")
        if name == b"server":
            has_server = True
        elif name == b"date":
            has_date = True
    if not has_server:
        out.append(b"server: tricorn\r\n")
    if not has_date:
        out.append(date_header())
    out.append(b"\r\n")
    return b"".join(out)


def h1_refusal_response(exc: HandshakeError) -> bytes:
    """The complete HTTP/1.1 response that refuses a handshake (400 or 426), closing the connection."""
    response = error_response(exc.status, str(exc))
    line_end = response.index(b"\r\n") + 2
    extra = b"".join(b"%s: %s\r\n" % (name, value) for name, value in exc.headers)
    return response[:line_end] + extra + response[line_end:]
