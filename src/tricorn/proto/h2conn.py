"""HTTP/2 server-side connection core (sans-io): framing, stream states, flow control, HPACK (RFC 9113).

Theory of operation
-------------------
:class:`H2Connection` turns the bytes a client sends into events and the server's calls into bytes. It
never touches a socket, a clock or a logger.

Receiving: ``receive_data(data)`` walks the read buffer once: a 9-byte frame head is unpacked with one
``struct`` call, the frame is handled in place by type (flags and states are plain ints), and only what
the shell acts on becomes an event (:class:`RequestReceived`, :class:`DataReceived`,
:class:`TrailersReceived`, :class:`WindowUpdated`, :class:`StreamReset`, :class:`ConnectionTerminated`
and the control-frame events the shell counts against its flood budgets). A partial frame waits in the
buffer; nothing larger than one frame of the advertised SETTINGS_MAX_FRAME_SIZE is ever held.

- A **connection error** (RFC 9113 §5.4.1) queues GOAWAY with its code, ends the connection (nothing more
  is read) and raises :class:`H2ConnectionError`; the shell writes ``data_to_send()`` and closes.
- A **stream error** (§5.4.2) queues RST_STREAM, forgets the stream and emits :class:`StreamReset` with
  ``remote=False`` and the reason, so the shell can cancel what it runs for it and log one line.
- **Request heads** are decoded by the ``hpack`` package and checked here against RFC 9113 §8.2 and §8.3
  (a malformed request is a stream error of type PROTOCOL_ERROR, §8.1.1). A header block repeated under
  the same dynamic table decodes to the same fields: such blocks are decoded and checked once per
  connection (see :class:`_HeadCache`). The HTTP semantics of the head (methods, targets, limits, the
  status to answer) are the shell's, in :mod:`tricorn.proto.h2`.
- **Response heads** are encoded statelessly: static-table references and literals without indexing
  (RFC 7541 §6.1, §6.2.2), so the encoding of a field, and of a whole head, never depends on the
  connection and is cached process-wide.
- **Flow control**: received bytes are given back to the peer when the shell acknowledges them
  (``acknowledge_received_data``), in WINDOW_UPDATE frames of at least half a window; what the shell
  never sees (DATA on streams already reset) is given back by the core. Sending is bounded by
  ``local_flow_control_window``; the shell keeps what does not fit and retries on :class:`WindowUpdated`.

Streams are only ever opened by the client (no server push): each is OPEN, HALF_CLOSED_REMOTE,
HALF_CLOSED_LOCAL or CLOSED, moved by :data:`_TRANSITIONS`. Closed streams are forgotten, but the last
:data:`CLOSED_STREAMS_KEPT` are remembered with how they closed, which decides what a late frame means
(§5.1: ignored after our RST_STREAM, STREAM_CLOSED otherwise).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections import deque
from enum import IntEnum
from typing import Final, NoReturn

from hpack import Decoder, HPACKError
from hpack import OversizedHeaderListError as _OversizedHeaderListError
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from tricorn.errors import LocalProtocolError, RemoteProtocolError

Headers = list[tuple[bytes, bytes]]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ErrorCode(IntEnum):
    """RFC 9113 §7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


# Error codes as plain ints on the hot path (no enum hashing).
_NO_ERROR, _PROTOCOL_ERROR, _INTERNAL_ERROR, _FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
_STREAM_CLOSED, _FRAME_SIZE_ERROR, _REFUSED_STREAM = 0x5, 0x6, 0x7
_CANCEL, _COMPRESSION_ERROR, _ENHANCE_YOUR_CALM = 0x8, 0x9, 0xB

# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
FLAG_END_STREAM: Final = 0x1
FLAG_ACK: Final = 0x1
FLAG_END_HEADERS: Final = 0x4
FLAG_PADDED: Final = 0x8
FLAG_PRIORITY: Final = 0x20

# Settings (RFC 9113 §6.5.2, RFC 8441 §3, RFC 9218 §2.1).
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6
SETTINGS_ENABLE_CONNECT_PROTOCOL: Final = 0x8
SETTINGS_NO_RFC7540_PRIORITIES: Final = 0x9

DEFAULT_WINDOW: Final = 65535  # RFC 9113 §6.9.2
MAX_WINDOW: Final = 2**31 - 1  # RFC 9113 §6.9.1
MIN_MAX_FRAME_SIZE: Final = 16384  # RFC 9113 §4.2, §6.5.2
MAX_MAX_FRAME_SIZE: Final = 2**24 - 1
DEFAULT_HEADER_TABLE_SIZE: Final = 4096  # RFC 9113 §6.5.2

# Defaults of the limits; the shell passes its configured values. Precedents: concurrent streams 100 in h2o
# and the h2 library, 128 in nginx (http2_max_concurrent_streams), 250 in Go; a header list of 64 KiB in
# the h2 library and hpack, 32 KiB in nginx (large_client_header_buffers 4 8k).
DEFAULT_MAX_CONCURRENT_STREAMS: Final = 100
DEFAULT_MAX_HEADER_LIST_SIZE: Final = 65536
# CONTINUATION frames a header block may take. nghttp2 1.61 (CVE-2024-28182) allows 8; a block within
# the header list size needs at most 4 at the smallest frame size (64 KiB / 16 KiB).
MAX_CONTINUATION_FRAMES: Final = 8
# Closed streams remembered with how they closed (a late frame on one is ignored or answered by that);
# nghttp2 kept about as many as its concurrent stream limit (for RFC 7540 priorities). Older ids count as
# closed normally.
CLOSED_STREAMS_KEPT: Final = 256
# Distinct header blocks whose decoded, checked head a connection keeps (see _HeadCache), the largest
# block and decoded head worth keeping (the size of a default HPACK table): at most 40 KiB a connection.
# A client repeating a request (a poller, a load generator, a browser's refetch) sends the same block.
HEAD_CACHE_ENTRIES: Final = 8
HEAD_CACHE_BLOCK: Final = 1024
HEAD_CACHE_HEAD: Final = 4096
# Encoded response fields kept process-wide (stateless encoding); small fields only (date, server,
# content-type, content-length values repeat).
FIELD_CACHE_ENTRIES: Final = 4096
FIELD_CACHE_FIELD: Final = 256
# ... and whole response heads (a server's responses repeat their head but for the date, which changes once
# a second), of at most this many octets encoded.
BLOCK_CACHE_ENTRIES: Final = 256
BLOCK_CACHE_BLOCK: Final = 1024

_FRAME_HEAD = struct.Struct(">IBI")  # 24-bit length and 8-bit type packed in the first word
_pack_head = _FRAME_HEAD.pack
_unpack_head = _FRAME_HEAD.unpack_from
_U32 = struct.Struct(">I")
_unpack_u32 = _U32.unpack_from
_SETTING = struct.Struct(">HI")
_GOAWAY = struct.Struct(">II")

# Stream states (RFC 9113 §5.1) for a server: the client opens every stream (no server push, §8.4).
OPEN, HALF_CLOSED_REMOTE, HALF_CLOSED_LOCAL, CLOSED = range(4)
STATE_NAMES: Final = ("open", "half-closed (remote)", "half-closed (local)", "closed")
RECV_END_STREAM, SEND_END_STREAM = range(2)
# (state, input) -> next state; an input missing for a state is a protocol error.
_TRANSITIONS: Final = {
    (OPEN, RECV_END_STREAM): HALF_CLOSED_REMOTE,
    (OPEN, SEND_END_STREAM): HALF_CLOSED_LOCAL,
    (HALF_CLOSED_LOCAL, RECV_END_STREAM): CLOSED,
    (HALF_CLOSED_REMOTE, SEND_END_STREAM): CLOSED,
}
# How a remembered stream closed.
_ENDED, _RESET_LOCAL, _RESET_REMOTE = range(3)

# Connection states.
_AWAIT_PREFACE, _AWAIT_SETTINGS, _READY, _DONE = range(4)


# ---------------------------------------------------------------------------------------------- events


class RequestReceived:
    """A request head passed RFC 9113 §8.2/§8.3; ``end_stream``: the request has no body.

    ``headers`` may be shared with later requests of the connection: read it, do not modify it."""

    __slots__ = ("end_stream", "headers", "stream_id")

    def __init__(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream

    def __repr__(self) -> str:
        return f"RequestReceived({self.stream_id}, {self.headers!r}, end_stream={self.end_stream})"


class DataReceived:
    """Body bytes; ``flow_controlled_length`` (padding included) is what to acknowledge once handled."""

    __slots__ = ("data", "end_stream", "flow_controlled_length", "stream_id")

    def __init__(self, stream_id: int, data: bytes, flow_controlled_length: int, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_controlled_length = flow_controlled_length
        self.end_stream = end_stream

    def __repr__(self) -> str:
        return f"DataReceived({self.stream_id}, {self.data!r}, {self.flow_controlled_length}, end_stream={self.end_stream})"


class TrailersReceived:
    """Trailer fields, which end the request."""

    __slots__ = ("headers", "stream_id")

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"TrailersReceived({self.stream_id}, {self.headers!r})"


class WindowUpdated:
    """A send window grew: the stream's, or (``stream_id`` 0) the connection's or every stream's."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"WindowUpdated({self.stream_id})"


class StreamReset:
    """A stream is closed by RST_STREAM: the client's (``remote``) or ours for a stream error (``reason``)."""

    __slots__ = ("error_code", "reason", "remote", "stream_id")

    def __init__(self, stream_id: int, error_code: int, remote: bool, reason: str = "") -> None:
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote
        self.reason = reason

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, {self.error_code}, remote={self.remote}, {self.reason!r})"


class ConnectionTerminated:
    """The client sent GOAWAY."""

    __slots__ = ("additional_data", "error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int, additional_data: bytes) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        self.additional_data = additional_data

    def __repr__(self) -> str:
        return f"ConnectionTerminated({self.error_code}, {self.last_stream_id})"


class _Control:
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PingReceived(_Control):
    """A PING (answered by the core)."""

    __slots__ = ()


class PingAckReceived(_Control):
    """The answer to a PING of ours (:meth:`H2Connection.ping`)."""

    __slots__ = ("ping_data",)

    def __init__(self, ping_data: bytes) -> None:
        self.ping_data = ping_data


class RemoteSettingsChanged(_Control):
    """A SETTINGS frame (acknowledged by the core); windows may have grown."""

    __slots__ = ()


class SettingsAcknowledged(_Control):
    __slots__ = ()


class PriorityUpdated(_Control):
    """A PRIORITY frame (RFC 9113 §5.3.2: its signal is deprecated and ignored)."""

    __slots__ = ()


Event = (
    RequestReceived
    | DataReceived
    | TrailersReceived
    | WindowUpdated
    | StreamReset
    | ConnectionTerminated
    | _Control
)
_PING_RECEIVED = PingReceived()
_SETTINGS_CHANGED = RemoteSettingsChanged()
_SETTINGS_ACKED = SettingsAcknowledged()
_PRIORITY_UPDATED = PriorityUpdated()


class H2ConnectionError(RemoteProtocolError):
    """The client broke the protocol in a way that ends the connection (RFC 9113 §5.4.1); GOAWAY with
    ``error_code`` is queued."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message, status=400)
        self.error_code = error_code


# ------------------------------------------------------------------------------------ request heads

# RFC 9113 §8.2.1: a field name MUST NOT contain 0x00-0x20, 0x41-0x5a (uppercase) or 0x7f-0xff, nor a
# colon outside a pseudo-header's leading one; RFC 9110 §5.1: it is a token.
_BAD_NAME = re.compile(rb"[^!#$%&'*+.^_`|~0-9a-z-]").search
# RFC 9113 §8.2.1: no NUL, LF or CR at any position, no SP or HTAB at either end.
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z").search
# RFC 9113 §8.2.2: connection-specific fields make a message malformed.
_CONNECTION_SPECIFIC: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO: Final = frozenset((b":method", b":scheme", b":authority", b":path"))
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,18}\Z").match


def check_request_head(headers: Headers, connect_protocol: bool) -> tuple[int | None, str | None]:
    """RFC 9113 §8.2 and §8.3 on a decoded request head: ``(content_length, None)``, or ``(None,
    reason)`` for a malformed one. ``connect_protocol``: we sent SETTINGS_ENABLE_CONNECT_PROTOCOL, so
    ``:protocol`` is a request pseudo-header (RFC 8441 §4)."""
    regular = False
    seen: set[bytes] = set()
    method = path = scheme = authority = host = None
    content_length: bytes | None = None
    for name, value in headers:
        if _BAD_VALUE(value) is not None:
            return None, f"invalid value of field {name[:64]!r}"
        if name[:1] == b":":
            # §8.3: pseudo-headers come before regular fields, only once each, only those defined for
            # requests (§8.3.1), or :protocol when extended CONNECT is on (RFC 8441 §4).
            if regular:
                return None, f"pseudo-header {name[:64]!r} after a regular field"
            if name in seen:
                return None, f"duplicate pseudo-header {name[:64]!r}"
            if name not in _REQUEST_PSEUDO and not (connect_protocol and name == b":protocol"):
                return None, f"pseudo-header {name[:64]!r} is not one of a request"
            seen.add(name)
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":scheme":
                scheme = value
            elif name == b":authority":
                authority = value
            continue
        regular = True
        if not name or _BAD_NAME(name) is not None:
            return None, f"invalid field name {name[:64]!r}"
        if name in _CONNECTION_SPECIFIC:
            return None, f"connection-specific field {name!r}"  # §8.2.2
        if name == b"te":
            if value != b"trailers":  # §8.2.2: TE MUST NOT contain any value other than "trailers"
                return None, f"te: {value[:32]!r}"
        elif name == b"content-length":
            if not _CONTENT_LENGTH(value) or (content_length is not None and value != content_length):
                return None, f"invalid content-length {value[:32]!r}"
            content_length = value
        elif name == b"host":
            host = value
    if method is None:
        return None, "missing :method"  # §8.3.1
    if method == b"CONNECT" and b":protocol" not in seen:
        # §8.3.1 / §8.5: a CONNECT has :authority and neither :scheme nor :path.
        if scheme is not None or path is not None or authority is None:
            return None, "connect with :scheme or :path, or without :authority"
    else:
        # §8.3.1: exactly one :method, :scheme and :path; :path not empty (RFC 8441 §4 for :protocol).
        if scheme is None or path is None:
            return None, "missing :scheme or :path"
        if not path:
            return None, "empty :path"
        if b":protocol" in seen and method != b"CONNECT":
            return None, ":protocol without connect"  # RFC 8441 §4
    if authority is not None and host is not None and host != authority:
        # §8.3.1: a Host that differs from :authority SHOULD be treated as malformed.
        return None, "host differs from :authority"
    return (int(content_length) if content_length is not None else None), None


def _check_trailers(headers: Headers) -> str | None:
    for name, value in headers:
        if name[:1] == b":":
            return f"pseudo-header {name[:64]!r} in trailers"  # §8.1: trailers carry no pseudo-header
        if not name or _BAD_NAME(name) is not None:
            return f"invalid field name {name[:64]!r}"
        if _BAD_VALUE(value) is not None:
            return f"invalid value of field {name[:64]!r}"
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
            return f"connection-specific field {name!r}"
    return None


class _CountingTable(HeaderTable):
    """hpack's header table, counting its changes: a header block decoded while the count stays the same
    left the table as it found it, so the same bytes under the same count decode the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @HeaderTable.maxsize.setter  # type: ignore[attr-defined,untyped-decorator]  # hpack's property
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]  # the base property's setter


class _HeadCache:
    """Decoded and checked request heads by (table generation, header block). bench http2: h2load sends
    the same block for every request after the first; decoding it with hpack costs more than the rest
    of the request's framing."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: dict[tuple[int, bytes], tuple[Headers, int | None, str | None]] = {}


# ---------------------------------------------------------------------------------- response heads

_STATIC: Final = HeaderTable.STATIC_TABLE
_STATIC_FIELD: Final = {field: i + 1 for i, field in reversed(list(enumerate(_STATIC)))}
_STATIC_NAME: Final = {name: i + 1 for i, (name, _) in reversed(list(enumerate(_STATIC)))}
_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode
# RFC 7541 §7.1.3: values an intermediary must never index (h2 marks the same request fields).
_NEVER_INDEXED: Final = frozenset((b"authorization", b"proxy-authorization", b"set-cookie"))
_field_cache: dict[tuple[bytes, bytes], bytes] = {}
_block_cache: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 §5.1."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(value: bytes) -> bytes:
    """RFC 7541 §5.2: Huffman-coded when that is shorter."""
    coded = _huffman(value)
    if len(coded) < len(value):
        return _integer(len(coded), 7, 0x80) + coded
    return _integer(len(value), 7, 0) + value


def encode_field(name: bytes, value: bytes) -> bytes:
    """One field in a representation that leaves the dynamic table alone (RFC 7541 §6.1, §6.2.2, §6.2.3)."""
    index = _STATIC_FIELD.get((name, value))
    if index is not None:
        return bytes((0x80 | index,))
    first = 0x10 if name in _NEVER_INDEXED else 0x00
    index = _STATIC_NAME.get(name)
    if index is not None:
        return _integer(index, 4, first) + _string(value)
    return bytes((first,)) + _string(name) + _string(value)


def encode_headers(headers: Headers) -> bytes:
    key = tuple(headers)
    block = _block_cache.get(key)
    if block is not None:
        return block
    cache = _field_cache
    parts = []
    for field in headers:
        encoded = cache.get(field)
        if encoded is None:
            name, value = field
            encoded = encode_field(name, value)
            if len(name) + len(value) <= FIELD_CACHE_FIELD:
                if len(cache) >= FIELD_CACHE_ENTRIES:
                    cache.clear()
                cache[(name, value)] = encoded
        parts.append(encoded)
    block = b"".join(parts)
    if len(block) <= BLOCK_CACHE_BLOCK:
        if len(_block_cache) >= BLOCK_CACHE_ENTRIES:
            _block_cache.clear()
        _block_cache[key] = block
    return block


# ---------------------------------------------------------------------------------------- the core


class _Stream:
    __slots__ = (
        "content_length",
        "head_sent",
        "id",
        "outstanding",
        "received",
        "recv_unacked",
        "recv_window",
        "send_window",
        "state",
    )

    def __init__(self, stream_id: int, state: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self.state = state
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_unacked = 0  # acknowledged by the shell, not yet given back to the stream's window
        self.outstanding = 0  # handed to the shell in DataReceived, not yet acknowledged
        self.content_length: int | None = None
        self.received = 0
        self.head_sent = False


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _pack_head(len(payload) << 8 | kind, flags, stream_id) + payload


_SETTINGS_ACK: Final = _frame(SETTINGS, FLAG_ACK, 0)


class H2Connection:
    """The server side of one HTTP/2 connection (see the module docstring).

    The limits are the values of our SETTINGS (RFC 9113 §6.5.2); ``max_header_list_size`` also bounds the
    compressed header block, and a decoded head larger than it ends the connection (ENHANCE_YOUR_CALM:
    the HPACK state cannot be trusted after an aborted decode).
    """

    __slots__ = (
        "_buf",
        "_closed_order",
        "_closed_streams",
        "_decoder",
        "_hb_count",
        "_hb_flags",
        "_hb_parts",
        "_hb_size",
        "_hb_stream",
        "_head_cache",
        "_local_acked",
        "_out",
        "_recv_unacked",
        "_recv_window",
        "_recv_window_max",
        "_send_window",
        "_state",
        "_stopped",
        "_streams",
        "_table",
        "_table_size_update",
        "connect_protocol",
        "goaway_sent",
        "highest_stream_id",
        "initial_window_size",
        "max_concurrent_streams",
        "max_frame_size",
        "max_header_list_size",
        "max_outbound_frame_size",
        "peer_initial_window_size",
    )

    def __init__(
        self,
        *,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        initial_window_size: int = DEFAULT_WINDOW,
        max_frame_size: int = MIN_MAX_FRAME_SIZE,
        max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE,
        connect_protocol: bool = False,
    ) -> None:
        if not 0 <= initial_window_size <= MAX_WINDOW:
            raise ValueError(f"initial window size {initial_window_size} out of range")
        if not MIN_MAX_FRAME_SIZE <= max_frame_size <= MAX_MAX_FRAME_SIZE:
            raise ValueError(f"max frame size {max_frame_size} out of range")
        self.max_concurrent_streams = max_concurrent_streams
        self.initial_window_size = initial_window_size
        self.max_frame_size = max_frame_size
        self.max_header_list_size = max_header_list_size
        self.connect_protocol = connect_protocol
        self.max_outbound_frame_size = MIN_MAX_FRAME_SIZE  # the client's SETTINGS_MAX_FRAME_SIZE
        self.peer_initial_window_size = DEFAULT_WINDOW
        self.highest_stream_id = 0
        self.goaway_sent = False
        self._state = _AWAIT_PREFACE
        self._buf = b""
        self._out: list[bytes] = []
        self._streams: dict[int, _Stream] = {}
        self._closed_streams: dict[int, int] = {}
        # ... their ids, oldest first: the one forgotten next (a dict's first key is found by skipping the
        # slots its deleted keys left, as many as a few dozen a lookup here: bench h2).
        self._closed_order: deque[int] = deque()
        # Streams whose complete response we followed with RST_STREAM NO_ERROR (RFC 9113 §8.1): the client
        # may not have seen it yet, so what it still sends on them is held to the rules of a request
        # (and answered with a stream error when it breaks them) rather than dropped unread.
        self._stopped: dict[int, _Stream] = {}
        # Until the client acknowledges our SETTINGS it may use the protocol's initial window (§6.9.2).
        self._local_acked = False
        self._send_window = DEFAULT_WINDOW
        self._recv_window = DEFAULT_WINDOW
        self._recv_window_max = DEFAULT_WINDOW
        self._recv_unacked = 0
        self._table = _CountingTable()
        decoder = Decoder(max_header_list_size=max_header_list_size)
        decoder.header_table = self._table
        self._decoder = decoder
        self._head_cache = _HeadCache()
        self._table_size_update: int | None = None
        self._hb_stream = 0  # the stream whose header block CONTINUATION frames are completing
        self._hb_parts: list[bytes] = []
        self._hb_flags = 0
        self._hb_size = 0
        self._hb_count = 0

    # ------------------------------------------------------------------------------------ starting
    def initiate_connection(self) -> None:
        """Queue the server's connection preface: its SETTINGS (RFC 9113 §3.4)."""
        settings = [
            (SETTINGS_MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (SETTINGS_INITIAL_WINDOW_SIZE, self.initial_window_size),
            (SETTINGS_MAX_FRAME_SIZE, self.max_frame_size),
            (SETTINGS_MAX_HEADER_LIST_SIZE, self.max_header_list_size),
        ]
        if self.connect_protocol:
            settings.append((SETTINGS_ENABLE_CONNECT_PROTOCOL, 1))  # RFC 8441 §3
        self._out.append(_frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in settings)))

    def initiate_upgrade_connection(self, settings_header: bytes) -> None:
        """After ``Upgrade: h2c`` (RFC 7540 §3.2): the client's HTTP2-Settings apply as if received in a
        SETTINGS frame (the 101 acknowledges them, §3.2.1) and the request is stream 1, half-closed
        (remote). Raises H2ConnectionError for a malformed HTTP2-Settings."""
        self.initiate_connection()
        try:
            payload = base64.urlsafe_b64decode(settings_header + b"=" * (-len(settings_header) % 4))
        except (binascii.Error, ValueError):
            self._connection_error(_PROTOCOL_ERROR, "invalid http2-settings")
        if len(payload) % 6:
            self._connection_error(_FRAME_SIZE_ERROR, "http2-settings not a multiple of 6 octets")
        self._apply_settings(payload)
        self.highest_stream_id = 1
        self._streams[1] = _Stream(1, HALF_CLOSED_REMOTE, self.peer_initial_window_size, 0)

    # ----------------------------------------------------------------------------------- receiving
    def receive_data(self, data: bytes) -> list[Event]:
        """Events for the bytes received; raises H2ConnectionError (GOAWAY queued) on a connection error."""
        state = self._state
        if state == _DONE:
            return []
        buf = self._buf + data if self._buf else data
        if state != _READY:
            if state == _AWAIT_PREFACE:
                # RFC 9113 §3.4: an invalid preface is a connection error of type PROTOCOL_ERROR.
                if buf[:24] != PREFACE[: len(buf)]:
                    self._connection_error(_PROTOCOL_ERROR, "invalid connection preface")
                if len(buf) < 24:
                    self._buf = buf
                    return []
                buf = buf[24:]
                self._state = _AWAIT_SETTINGS
            if len(buf) >= 9 and buf[3] != SETTINGS:
                # §3.4: the preface MUST be followed by a SETTINGS frame.
                self._connection_error(_PROTOCOL_ERROR, "connection preface not followed by settings")
        events: list[Event] = []
        pos = 0
        size = len(buf)
        max_frame = self.max_frame_size
        while size - pos >= 9:
            word, flags, stream_id = _unpack_head(buf, pos)
            length = word >> 8
            kind = word & 0xFF
            stream_id &= 0x7FFFFFFF  # §4.1: the reserved bit MUST be ignored when receiving
            if length > max_frame:
                # §4.2: a frame larger than SETTINGS_MAX_FRAME_SIZE (any type: we cannot skip it unread).
                self._connection_error(_FRAME_SIZE_ERROR, f"frame of {length} octets over {max_frame}")
            end = pos + 9 + length
            if end > size:
                break
            if self._hb_stream and kind != CONTINUATION:
                # §6.10: a header block is followed by its CONTINUATION frames only (§5.5: even unknown types).
                self._connection_error(_PROTOCOL_ERROR, f"frame type {kind} inside a header block")
            if kind == HEADERS:
                self._on_headers(buf[pos + 9 : end], flags, stream_id, events)
            elif kind == DATA:
                self._on_data(buf, pos + 9, length, flags, stream_id, events)
            elif kind == WINDOW_UPDATE:
                self._on_window_update(buf, pos + 9, length, stream_id, events)
            elif kind == SETTINGS:
                self._on_settings(buf[pos + 9 : end], flags, stream_id, events)
            elif kind == PING:
                if stream_id:
                    self._connection_error(_PROTOCOL_ERROR, "ping on a stream")  # §6.7
                if length != 8:
                    self._connection_error(_FRAME_SIZE_ERROR, "ping not of 8 octets")  # §6.7
                if flags & FLAG_ACK:
                    events.append(PingAckReceived(buf[pos + 9 : end]))
                else:
                    # §6.7: a PING without ACK MUST be answered with the identical payload.
                    self._out.append(_pack_head(8 << 8 | PING, FLAG_ACK, 0) + buf[pos + 9 : end])
                    events.append(_PING_RECEIVED)
            elif kind == RST_STREAM:
                self._on_rst_stream(buf, pos + 9, length, stream_id, events)
            elif kind == PRIORITY:
                self._on_priority(buf, pos + 9, length, stream_id, events)
            elif kind == CONTINUATION:
                self._on_continuation(buf[pos + 9 : end], flags, stream_id, events)
            elif kind == GOAWAY:
                if stream_id:
                    self._connection_error(_PROTOCOL_ERROR, "goaway on a stream")  # §6.8
                if length < 8:
                    self._connection_error(_FRAME_SIZE_ERROR, "goaway shorter than 8 octets")
                last, code = _GOAWAY.unpack_from(buf, pos + 9)
                events.append(ConnectionTerminated(code, last & 0x7FFFFFFF, bytes(buf[pos + 17 : end])))
            elif kind == PUSH_PROMISE:
                # §8.4: a client cannot push; servers MUST treat PUSH_PROMISE as a connection error.
                self._connection_error(_PROTOCOL_ERROR, "push_promise from a client")
            # §4.1, §5.5: frames of unknown types MUST be ignored.
            pos = end
        self._buf = buf[pos:] if pos < size else b""
        return events

    def _on_headers(self, payload: bytes, flags: int, stream_id: int, events: list[Event]) -> None:
        if not stream_id:
            self._connection_error(_PROTOCOL_ERROR, "headers on stream 0")  # §6.2
        start = 0
        end = len(payload)
        if flags & FLAG_PADDED:
            if not end:
                self._connection_error(_FRAME_SIZE_ERROR, "padded headers without a pad length")
            end -= payload[0]
            start = 1
        self_dependent = False
        if flags & FLAG_PRIORITY:
            if end - start < 5:
                self._connection_error(_FRAME_SIZE_ERROR, "headers too short for its priority")
            # §5.3.1: a stream cannot depend on itself (a stream error once the block is decoded).
            self_dependent = _unpack_u32(payload, start)[0] & 0x7FFFFFFF == stream_id
            start += 5
        if end < start:
            # §6.2: padding that exceeds the remaining payload MUST be treated as a PROTOCOL_ERROR.
            self._connection_error(_PROTOCOL_ERROR, "headers padding longer than its payload")
        fragment = payload[start:end] if start or end != len(payload) else payload
        if len(fragment) > self.max_header_list_size:
            self._connection_error(_ENHANCE_YOUR_CALM, "header block over the header list size")
        if not flags & FLAG_END_HEADERS:
            self._hb_stream = stream_id
            self._hb_parts = [fragment]
            self._hb_size = len(fragment)
            self._hb_count = 0
            self._hb_flags = (flags & FLAG_END_STREAM) | (0x100 if self_dependent else 0)
            return
        self._header_block(stream_id, fragment, flags & FLAG_END_STREAM, self_dependent, events)

    def _on_continuation(self, payload: bytes, flags: int, stream_id: int, events: list[Event]) -> None:
        if not self._hb_stream or stream_id != self._hb_stream:
            # §6.10: CONTINUATION only right after a HEADERS (or CONTINUATION) of the same stream
            # without END_HEADERS.
            self._connection_error(_PROTOCOL_ERROR, f"unexpected continuation on stream {stream_id}")
        self._hb_count += 1
        self._hb_size += len(payload)
        if self._hb_count > MAX_CONTINUATION_FRAMES or self._hb_size > self.max_header_list_size:
            self._connection_error(_ENHANCE_YOUR_CALM, "header block over its continuation bounds")
        self._hb_parts.append(payload)
        if flags & FLAG_END_HEADERS:
            block = b"".join(self._hb_parts)
            hb_flags = self._hb_flags
            self._hb_stream = 0
            self._hb_parts = []
            self._header_block(stream_id, block, hb_flags & FLAG_END_STREAM, bool(hb_flags & 0x100), events)

    def _decode(self, block: bytes) -> Headers:
        try:
            return self._decoder.decode(block, raw=True)  # type: ignore[return-value]  # raw: bytes pairs
        except _OversizedHeaderListError:
            self._connection_error(_ENHANCE_YOUR_CALM, "header list over its advertised size")
        except (HPACKError, IndexError, TypeError, ValueError) as exc:
            # §4.3: a field block that cannot be decoded is a connection error of type COMPRESSION_ERROR.
            self._connection_error(_COMPRESSION_ERROR, f"header block: {exc}")

    def _header_block(
        self, stream_id: int, block: bytes, end_stream: int, self_dependent: bool, events: list[Event]
    ) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            headers = self._decode(block)
            if stream.state == HALF_CLOSED_REMOTE:
                # §5.1: frames other than WINDOW_UPDATE, PRIORITY, RST_STREAM on half-closed (remote).
                self._stream_error(stream_id, _STREAM_CLOSED, "headers after the end of the request", events)
            elif self_dependent:
                self._stream_error(stream_id, _PROTOCOL_ERROR, "stream depends on itself", events)
            elif not end_stream:
                # §8.1: a second HEADERS without END_STREAM makes the request malformed.
                self._stream_error(stream_id, _PROTOCOL_ERROR, "trailers without end_stream", events)
            else:
                reason = _check_trailers(headers)
                if reason is not None:
                    self._stream_error(stream_id, _PROTOCOL_ERROR, reason, events)
                    return
                if stream.content_length is not None and stream.received != stream.content_length:
                    self._stream_error(
                        stream_id, _PROTOCOL_ERROR, "body shorter than its content-length", events
                    )
                    return
                events.append(TrailersReceived(stream_id, headers))
                self._end_remote(stream)
            return
        if stream_id <= self.highest_stream_id:
            headers = self._decode(block)  # the HPACK state moves on whatever follows
            stopped = self._stopped.pop(stream_id, None)
            if stopped is not None:
                reason = None if end_stream else "trailers without end_stream"
                reason = reason or _check_trailers(headers)
                if reason is None and stopped.content_length not in (None, stopped.received):
                    reason = "body shorter than its content-length"
                if reason is not None:
                    self._stream_error(stream_id, _PROTOCOL_ERROR, reason, events)  # §8.1.1
                else:
                    self._remember(stream_id, _ENDED)
                return
            how = self._closed_streams.get(stream_id)
            if how == _RESET_LOCAL:
                return  # §5.1: frames on a stream we reset are ignored
            if how == _RESET_REMOTE:
                self._stream_error(stream_id, _STREAM_CLOSED, "headers on a reset stream", events)
                return
            if how == _ENDED:
                self._connection_error(_STREAM_CLOSED, f"headers on closed stream {stream_id}")  # §5.1
            # §5.1.1: a new stream's id MUST be greater than every id the client has opened.
            self._connection_error(
                _PROTOCOL_ERROR, f"stream id {stream_id} not above {self.highest_stream_id}"
            )
        if not stream_id & 1:
            self._connection_error(_PROTOCOL_ERROR, f"even stream id {stream_id}")  # §5.1.1
        self.highest_stream_id = stream_id
        # The decoded, checked head of a block seen before under the same table (_HeadCache).
        table = self._table
        key = (table.generation, block)
        cache = self._head_cache.entries
        hit = cache.get(key)
        if hit is None:
            headers = self._decode(block)
            content_length, reason = check_request_head(headers, self.connect_protocol)
            hit = (headers, content_length, reason)
            if (
                table.generation == key[0]
                and len(block) <= HEAD_CACHE_BLOCK
                and sum(len(n) + len(v) for n, v in headers) <= HEAD_CACHE_HEAD
            ):
                if len(cache) >= HEAD_CACHE_ENTRIES:
                    cache.clear()
                cache[key] = hit
        headers, content_length, reason = hit
        if self_dependent:
            reason = "stream depends on itself"  # §5.3.1
        if reason is not None:
            self._stream_error(stream_id, _PROTOCOL_ERROR, f"malformed request: {reason}", events)  # §8.1.1
            return
        if len(self._streams) >= self.max_concurrent_streams:
            # §5.1.2: a stream over our SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM (retryable).
            self._stream_error(stream_id, _REFUSED_STREAM, "over the concurrent stream limit", events)
            return
        stream = _Stream(
            stream_id,
            HALF_CLOSED_REMOTE if end_stream else OPEN,
            self.peer_initial_window_size,
            self.initial_window_size if self._local_acked else DEFAULT_WINDOW,
        )
        stream.content_length = content_length
        if end_stream and content_length:
            # §8.1.1: a content-length that the (absent) DATA frames do not add up to.
            self._stream_error(stream_id, _PROTOCOL_ERROR, "content-length without a body", events)
            return
        self._streams[stream_id] = stream
        events.append(RequestReceived(stream_id, headers, bool(end_stream)))

    def _on_data(
        self, buf: bytes, start: int, length: int, flags: int, stream_id: int, events: list[Event]
    ) -> None:
        if not stream_id:
            self._connection_error(_PROTOCOL_ERROR, "data on stream 0")  # §6.1
        # §6.9: a flow-controlled frame counts against the connection window whatever its stream.
        if length > self._recv_window:
            self._connection_error(_FLOW_CONTROL_ERROR, "data over the connection window")  # §6.9.1
        self._recv_window -= length
        end = start + length
        if flags & FLAG_PADDED:
            if not length or buf[start] >= length:
                # §6.1: padding as long as the payload or longer is a connection error PROTOCOL_ERROR.
                self._connection_error(_PROTOCOL_ERROR, "data padding longer than its payload")
            end -= buf[start]
            start += 1
        stream = self._streams.get(stream_id)
        if stream is None or stream.state == HALF_CLOSED_REMOTE:
            if stream_id > self.highest_stream_id:
                self._connection_error(_PROTOCOL_ERROR, f"data on idle stream {stream_id}")  # §5.1
            self._release(length)  # nobody will acknowledge these bytes
            if stream is None:
                stopped = self._stopped.get(stream_id)
                if stopped is not None:
                    self._stopped_data(stopped, end - start, flags & FLAG_END_STREAM, events)
                    return
                if self._closed_streams.get(stream_id) == _RESET_LOCAL:
                    return  # §5.1: frames on a stream we reset are discarded
            # §6.1: DATA on a stream not "open" or "half-closed (local)": stream error STREAM_CLOSED.
            self._stream_error(stream_id, _STREAM_CLOSED, "data on a closed stream", events)
            return
        if length > stream.recv_window:
            self._connection_error(_FLOW_CONTROL_ERROR, f"data over the window of stream {stream_id}")
        stream.recv_window -= length
        data = buf[start:end]
        received = stream.received = stream.received + end - start
        content_length = stream.content_length
        end_stream = flags & FLAG_END_STREAM
        if content_length is not None and (
            received > content_length or (end_stream and received != content_length)
        ):
            # §8.1.1: a content-length not equal to the sum of the DATA payloads: malformed.
            self._release(length)
            self._stream_error(
                stream_id, _PROTOCOL_ERROR, "body length differs from its content-length", events
            )
            return
        stream.outstanding += length
        events.append(DataReceived(stream_id, data, length, bool(end_stream)))
        if end_stream:
            self._end_remote(stream)

    def _stopped_data(self, stream: _Stream, size: int, end_stream: int, events: list[Event]) -> None:
        stream.received += size
        content_length = stream.content_length
        if content_length is not None and (
            stream.received > content_length or (end_stream and stream.received != content_length)
        ):
            self._stream_error(
                stream.id, _PROTOCOL_ERROR, "body length differs from its content-length", events
            )
        elif end_stream:
            del self._stopped[stream.id]
            self._remember(stream.id, _ENDED)

    def _on_window_update(
        self, buf: bytes, start: int, length: int, stream_id: int, events: list[Event]
    ) -> None:
        if length != 4:
            self._connection_error(_FRAME_SIZE_ERROR, "window_update not of 4 octets")  # §6.9
        increment = _unpack_u32(buf, start)[0] & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                self._connection_error(_PROTOCOL_ERROR, "window_update of 0")  # §6.9
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                # §6.9.1: a window over 2^31-1: connection error FLOW_CONTROL_ERROR.
                self._connection_error(_FLOW_CONTROL_ERROR, "connection window over 2^31-1")
            events.append(WindowUpdated(0))
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id > self.highest_stream_id:
                self._connection_error(_PROTOCOL_ERROR, f"window_update on idle stream {stream_id}")  # §5.1
            stream = self._stopped.get(stream_id)
            if stream is None:
                return  # §5.1: WINDOW_UPDATE may follow the end of a stream
        if not increment:
            self._stream_error(stream_id, _PROTOCOL_ERROR, "window_update of 0", events)  # §6.9
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream_id, _FLOW_CONTROL_ERROR, "stream window over 2^31-1", events)  # §6.9.1
            return
        if stream.state != HALF_CLOSED_LOCAL:
            events.append(WindowUpdated(stream_id))

    def _on_rst_stream(
        self, buf: bytes, start: int, length: int, stream_id: int, events: list[Event]
    ) -> None:
        if length != 4:
            self._connection_error(_FRAME_SIZE_ERROR, "rst_stream not of 4 octets")  # §6.4
        if not stream_id:
            self._connection_error(_PROTOCOL_ERROR, "rst_stream on stream 0")  # §6.4
        if stream_id > self.highest_stream_id:
            self._connection_error(_PROTOCOL_ERROR, f"rst_stream on idle stream {stream_id}")  # §6.4
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._forget(stream, _RESET_REMOTE)
            events.append(StreamReset(stream_id, _unpack_u32(buf, start)[0], True))
        elif self._stopped.pop(stream_id, None) is not None:
            self._remember(stream_id, _RESET_REMOTE)

    def _on_priority(self, buf: bytes, start: int, length: int, stream_id: int, events: list[Event]) -> None:
        if not stream_id:
            self._connection_error(_PROTOCOL_ERROR, "priority on stream 0")  # §6.3
        if length != 5:
            # §6.3: a PRIORITY frame of other than 5 octets is a stream error FRAME_SIZE_ERROR.
            self._stream_error(stream_id, _FRAME_SIZE_ERROR, "priority not of 5 octets", events)
            return
        if _unpack_u32(buf, start)[0] & 0x7FFFFFFF == stream_id:
            self._stream_error(stream_id, _PROTOCOL_ERROR, "stream depends on itself", events)  # §5.3.1
            return
        events.append(_PRIORITY_UPDATED)

    def _on_settings(self, payload: bytes, flags: int, stream_id: int, events: list[Event]) -> None:
        if stream_id:
            self._connection_error(_PROTOCOL_ERROR, "settings on a stream")  # §6.5
        if self._state == _AWAIT_SETTINGS:
            self._state = _READY
            if flags & FLAG_ACK:
                self._connection_error(_PROTOCOL_ERROR, "connection preface not followed by settings")
        if flags & FLAG_ACK:
            if payload:
                self._connection_error(_FRAME_SIZE_ERROR, "settings ack with a payload")  # §6.5
            if not self._local_acked:
                # Our initial window now holds for the streams open under the protocol's (§6.9.2).
                self._local_acked = True
                delta = self.initial_window_size - DEFAULT_WINDOW
                if delta:
                    for stream in self._streams.values():
                        stream.recv_window += delta
            events.append(_SETTINGS_ACKED)
            return
        if len(payload) % 6:
            self._connection_error(_FRAME_SIZE_ERROR, "settings not a multiple of 6 octets")  # §6.5
        grew = self._apply_settings(payload)
        # §6.5.3: settings are applied in order and acknowledged at once.
        self._out.append(_SETTINGS_ACK)
        events.append(_SETTINGS_CHANGED)
        if grew and self._streams:
            events.append(WindowUpdated(0))  # a larger initial window: every stream may send more

    def _apply_settings(self, payload: bytes) -> bool:
        """Apply the client's settings in order; whether the initial window grew."""
        grew = False
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    # §6.5.2: over 2^31-1 MUST be a connection error FLOW_CONTROL_ERROR.
                    self._connection_error(_FLOW_CONTROL_ERROR, f"initial window size {value}")
                delta = value - self.peer_initial_window_size
                self.peer_initial_window_size = value
                # §6.9.2: the change applies to every open stream's window, which may go negative but
                # MUST NOT exceed 2^31-1 (connection error FLOW_CONTROL_ERROR).
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        self._connection_error(_FLOW_CONTROL_ERROR, "stream window over 2^31-1")
                grew = grew or delta > 0
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not MIN_MAX_FRAME_SIZE <= value <= MAX_MAX_FRAME_SIZE:
                    self._connection_error(_PROTOCOL_ERROR, f"max frame size {value}")  # §6.5.2
                self.max_outbound_frame_size = value
            elif key == SETTINGS_HEADER_TABLE_SIZE:
                # RFC 7541 §4.2: our encoder signals the new bound at the start of its next block (we
                # never index, so the smallest bound seen is all it needs to announce).
                bound = min(value, DEFAULT_HEADER_TABLE_SIZE)
                pending = self._table_size_update
                self._table_size_update = bound if pending is None else min(pending, bound)
            elif key in (SETTINGS_ENABLE_PUSH, SETTINGS_ENABLE_CONNECT_PROTOCOL):
                if value > 1:
                    # §6.5.2 (and RFC 8441 §3): a value other than 0 or 1 is a PROTOCOL_ERROR.
                    self._connection_error(_PROTOCOL_ERROR, f"setting {key} of {value}")
            elif key == SETTINGS_NO_RFC7540_PRIORITIES and value > 1:
                self._connection_error(_PROTOCOL_ERROR, f"setting {key} of {value}")  # RFC 9218 §2.1
            # MAX_CONCURRENT_STREAMS bounds server pushes (none); MAX_HEADER_LIST_SIZE is advisory (§6.5.2);
            # unknown settings MUST be ignored (§6.5.2).
        return grew

    # ------------------------------------------------------------------------------ stream bookkeeping
    def _end_remote(self, stream: _Stream) -> None:
        state = _TRANSITIONS[(stream.state, RECV_END_STREAM)]
        stream.state = state
        if state == CLOSED:
            self._forget(stream, _ENDED)

    def _forget(self, stream: _Stream, how: int) -> None:
        """The stream is closed: what the shell still holds of its body goes back to the connection
        window now (its later acknowledgements are ignored), and how it closed is remembered."""
        del self._streams[stream.id]
        if stream.outstanding:
            self._release(stream.outstanding)
        self._remember(stream.id, how)

    def _remember(self, stream_id: int, how: int) -> None:
        closed = self._closed_streams
        if stream_id not in closed:
            order = self._closed_order
            order.append(stream_id)
            if len(order) > CLOSED_STREAMS_KEPT:
                del closed[order.popleft()]
        closed[stream_id] = how

    def _stream_error(self, stream_id: int, code: int, reason: str, events: list[Event]) -> None:
        """§5.4.2: RST_STREAM with ``code``; the stream is closed and frames still arriving for it ignored."""
        self._out.append(_pack_head(4 << 8 | RST_STREAM, 0, stream_id) + _U32.pack(code))
        stream = self._streams.get(stream_id)
        if stream is not None:
            self._forget(stream, _RESET_LOCAL)
        else:
            self._stopped.pop(stream_id, None)
            self._remember(stream_id, _RESET_LOCAL)
        events.append(StreamReset(stream_id, code, False, reason))

    def _connection_error(self, code: int, reason: str) -> NoReturn:
        """§5.4.1: GOAWAY with the last stream the client opened and ``code``, then nothing more."""
        if self._state != _DONE:
            self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(self.highest_stream_id, code)))
            self._state = _DONE
        raise H2ConnectionError(f"{reason} ({ErrorCode(code).name})", code)

    def _release(self, size: int) -> None:
        """Give ``size`` received bytes back to the connection window, in WINDOW_UPDATEs of at least
        half the window (h2's and nghttp2's habit: few frames, no stall)."""
        unacked = self._recv_unacked + size
        if unacked >= self._recv_window_max >> 1 or (self._recv_window < 1024 and unacked):
            self._out.append(_pack_head(4 << 8 | WINDOW_UPDATE, 0, 0) + _U32.pack(unacked))
            self._recv_window += unacked
            unacked = 0
        self._recv_unacked = unacked

    # ---------------------------------------------------------------------------------- flow control
    def acknowledge_received_data(self, size: int, stream_id: int) -> None:
        """The shell handed on ``size`` flow-controlled bytes of the stream: the client may send more."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # closed: what it held went back to the connection window then (_forget)
        if size > stream.outstanding:
            raise LocalProtocolError(
                f"{size} octets acknowledged on stream {stream_id}, {stream.outstanding} received"
            )
        stream.outstanding -= size
        self._release(size)
        if stream.state == HALF_CLOSED_REMOTE:
            return  # no more DATA comes on it: its window does not matter
        unacked = stream.recv_unacked + size
        window = self.initial_window_size if self._local_acked else DEFAULT_WINDOW
        if unacked >= window >> 1 or (stream.recv_window < 1024 and unacked):
            self._out.append(_pack_head(4 << 8 | WINDOW_UPDATE, 0, stream_id) + _U32.pack(unacked))
            stream.recv_window += unacked
            unacked = 0
        stream.recv_unacked = unacked

    def increment_flow_control_window(self, increment: int) -> None:
        """Open the connection's receive window by ``increment`` (for many streams' worth of body)."""
        if not 1 <= increment <= MAX_WINDOW - self._recv_window_max:
            raise LocalProtocolError(f"connection window increment {increment} out of range")
        self._recv_window += increment
        self._recv_window_max += increment
        self._out.append(_pack_head(4 << 8 | WINDOW_UPDATE, 0, 0) + _U32.pack(increment))

    def local_flow_control_window(self, stream_id: int) -> int:
        """How many body bytes the stream may send now (0 for a stream not open for sending)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state == HALF_CLOSED_LOCAL:
            return 0
        window = stream.send_window
        return window if window < self._send_window else self._send_window

    # -------------------------------------------------------------------------------------- sending
    def _sendable(self, stream_id: int) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if (
                self._state == _DONE
                or stream_id in self._closed_streams
                or stream_id <= self.highest_stream_id
            ):
                return None  # reset (either side) or the connection is over: the frames are dropped
            raise LocalProtocolError(f"stream {stream_id} was never opened")
        if stream.state == HALF_CLOSED_LOCAL:
            raise LocalProtocolError(f"stream {stream_id} already ended its response")
        return stream

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        """Queue a response head (or trailers, with ``end_stream``). ``headers`` are valid HTTP/2 fields
        (proto/h2.response_headers). Dropped for a stream already reset."""
        stream = self._sendable(stream_id)
        if stream is not None:
            self._queue_headers(stream, headers, end_stream)

    def send_response(self, stream_id: int, headers: Headers, data: bytes, end_stream: bool) -> bool:
        """Queue a response head and its first body part, ``data`` (ending the stream with
        ``end_stream``), when the windows and the client's frame size let it go in one DATA frame: one
        call for what :meth:`send_headers` and :meth:`send_data` do (bench h2). Whether the body part
        went; if not, only the head is queued and ``data`` is the caller's to send as the windows allow.
        Dropped (and False) for a stream already reset."""
        stream = self._sendable(stream_id)
        if stream is None:
            return False
        self._queue_headers(stream, headers, False)
        size = len(data)
        if size > stream.send_window or size > self._send_window or size > self.max_outbound_frame_size:
            return False
        if size:
            stream.send_window -= size
            self._send_window -= size
        if size or end_stream:
            self._out.append(_pack_head(size << 8 | DATA, FLAG_END_STREAM if end_stream else 0, stream_id))
            if size:
                self._out.append(data)
            if end_stream:
                self._end_local(stream)
        return True

    def _queue_headers(self, stream: _Stream, headers: Headers, end_stream: bool) -> None:
        stream_id = stream.id
        stream.head_sent = True
        block = encode_headers(headers)
        if self._table_size_update is not None:
            block = _integer(self._table_size_update, 5, 0x20) + block
            self._table_size_update = None
        flags = FLAG_END_STREAM if end_stream else 0
        limit = self.max_outbound_frame_size
        if len(block) <= limit:
            self._out.append(_pack_head(len(block) << 8 | HEADERS, flags | FLAG_END_HEADERS, stream_id))
            self._out.append(block)
        else:
            # §4.3: a field block larger than a frame continues in CONTINUATION frames, back to back.
            out = self._out
            out.append(_pack_head(limit << 8 | HEADERS, flags, stream_id))
            out.append(block[:limit])
            for offset in range(limit, len(block), limit):
                piece = block[offset : offset + limit]
                last = offset + limit >= len(block)
                out.append(
                    _pack_head(len(piece) << 8 | CONTINUATION, FLAG_END_HEADERS if last else 0, stream_id)
                )
                out.append(piece)
        if end_stream:
            self._end_local(stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue body bytes, within ``local_flow_control_window`` (LocalProtocolError beyond it), in frames
        of at most the client's SETTINGS_MAX_FRAME_SIZE. Dropped for a stream already reset."""
        stream = self._sendable(stream_id)
        if stream is None:
            return
        if not stream.head_sent:
            raise LocalProtocolError(f"data before the response head on stream {stream_id}")  # §8.1
        size = len(data)
        if size:
            if size > stream.send_window or size > self._send_window:
                raise LocalProtocolError(f"{size} octets over the send window of stream {stream_id}")
            stream.send_window -= size
            self._send_window -= size
        flags = FLAG_END_STREAM if end_stream else 0
        limit = self.max_outbound_frame_size
        out = self._out
        if size <= limit:
            out.append(_pack_head(size << 8 | DATA, flags, stream_id))
            if size:
                out.append(data)
        else:
            view = memoryview(data)
            for offset in range(0, size, limit):
                piece = view[offset : offset + limit]
                last = offset + limit >= size
                out.append(_pack_head(len(piece) << 8 | DATA, flags if last else 0, stream_id))
                out.append(bytes(piece))
        if end_stream:
            self._end_local(stream)

    def end_stream(self, stream_id: int) -> None:
        """END_STREAM on an empty DATA frame; a no-op once the response has ended."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.state != HALF_CLOSED_LOCAL:
            self.send_data(stream_id, b"", end_stream=True)

    def _end_local(self, stream: _Stream) -> None:
        state = _TRANSITIONS[(stream.state, SEND_END_STREAM)]
        stream.state = state
        if state == CLOSED:
            self._forget(stream, _ENDED)

    def reset_stream(self, stream_id: int, error_code: int = _CANCEL) -> None:
        """RST_STREAM (§6.4) for a stream still open either way; a no-op for one already closed. NO_ERROR
        after a complete response asks the client to stop sending the request (§8.1)."""
        stream = self._streams.get(stream_id)
        if stream is None or self._state == _DONE:
            return
        self._out.append(_pack_head(4 << 8 | RST_STREAM, 0, stream_id) + _U32.pack(int(error_code)))
        self._forget(stream, _RESET_LOCAL)
        if not error_code and stream.state == HALF_CLOSED_LOCAL:
            # §8.1: "stop sending" after a complete response; see _stopped.
            stopped = self._stopped
            stopped[stream_id] = stream
            if len(stopped) > CLOSED_STREAMS_KEPT:
                del stopped[next(iter(stopped))]

    def ping(self, data: bytes) -> None:
        """A PING with 8 octets of ``data`` (§6.7); its answer arrives as :class:`PingAckReceived`."""
        if len(data) != 8:
            raise LocalProtocolError(f"ping data of {len(data)} octets, not 8")
        if self._state != _DONE:
            self._out.append(_pack_head(8 << 8 | PING, 0, 0) + data)

    def close_connection(
        self, error_code: int = _NO_ERROR, last_stream_id: int | None = None, additional_data: bytes = b""
    ) -> None:
        """GOAWAY (§6.8). With NO_ERROR the connection carries on (graceful shutdown: the streams in
        flight finish; the shell refuses later ones); with an error code it is over."""
        if self._state == _DONE:
            return
        last = self.highest_stream_id if last_stream_id is None else last_stream_id
        self._out.append(_frame(GOAWAY, 0, 0, _GOAWAY.pack(last, int(error_code)) + additional_data))
        self.goaway_sent = True
        if error_code:
            self._state = _DONE

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    @property
    def open_streams(self) -> int:
        return len(self._streams)
