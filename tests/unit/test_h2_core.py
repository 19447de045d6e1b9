"""tricorn.proto.h2conn: the sans-io HTTP/2 server core, with plain function calls.

Frames are built by hand here (and by hpack's encoder for header blocks), so every case names the bytes
it sends; every case is fed whole, byte by byte and in random chunks, and must give the same events,
the same bytes out and the same error. Each error case states the RFC 9113 rule and the code it asks for.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tricorn.errors import LocalProtocolError
from tricorn.proto import h2conn
from tricorn.proto.h2conn import (
    CLOSED_STREAMS_KEPT,
    MAX_CONTINUATION_FRAMES,
    PREFACE,
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    H2Connection,
    H2ConnectionError,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    SettingsAcknowledged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

SPLITS = ("whole", "bytes", "random")
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]


def post(length: int | None = None) -> list[tuple[bytes, bytes]]:
    head = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/up"), (b":authority", b"a")]
    return head if length is None else [*head, (b"content-length", b"%d" % length)]


# ------------------------------------------------------------------------------------------- helpers


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((kind, flags)) + struct.pack(">I", stream_id) + payload


def settings_frame(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst(stream_id: int, code: int = ErrorCode.CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


class Client:
    """The client's side of the bytes: an hpack encoder (its dynamic table) and frame builders."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(headers)

    def headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], end_stream: bool = True, flags: int = 0
    ) -> bytes:
        return frame(
            HEADERS, flags | END_HEADERS | (END_STREAM if end_stream else 0), stream_id, self.block(headers)
        )


HANDSHAKE = PREFACE + settings_frame()


def server(**kwargs: Any) -> H2Connection:
    conn = H2Connection(**kwargs)
    conn.initiate_connection()
    conn.data_to_send()
    return conn


def pieces(data: bytes, split: str) -> Iterator[bytes]:
    if split == "whole":
        yield data
    elif split == "bytes":
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        rng = random.Random(zlib.crc32(data))
        i = 0
        while i < len(data):
            n = rng.randint(1, 12)
            yield data[i : i + n]
            i += n


def describe(event: object) -> tuple[Any, ...]:
    kind = type(event).__name__
    slots = [s for cls in type(event).__mro__ for s in getattr(cls, "__slots__", ())]
    return (kind, *(getattr(event, s) if s != "headers" else list(getattr(event, s)) for s in sorted(slots)))


def run(
    data: bytes, split: str = "whole", conn: H2Connection | None = None, **kwargs: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[int, int, int, bytes]], H2Connection]:
    """Feed ``data`` (after the handshake if ``conn`` is not given); events, frames out and the core."""
    if conn is None:
        conn = server(**kwargs)
        data = HANDSHAKE + data
    events: list[tuple[Any, ...]] = []
    for piece in pieces(data, split):
        events.extend(describe(e) for e in conn.receive_data(piece))
    return events, frames(conn.data_to_send()), conn


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    while data:
        length = int.from_bytes(data[:3], "big")
        out.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + length]))
        data = data[9 + length :]
    return out


def connection_error(data: bytes, split: str, **kwargs: Any) -> int:
    """Feed ``data`` after the handshake: the core must raise, with GOAWAY of the same code queued."""
    conn = server(**kwargs)
    with pytest.raises(H2ConnectionError) as info:
        for piece in pieces(HANDSHAKE + data, split):
            conn.receive_data(piece)
    out = frames(conn.data_to_send())
    goaways = [f for f in out if f[0] == GOAWAY]
    assert len(goaways) == 1
    code = struct.unpack(">I", goaways[0][3][4:8])[0]
    assert code == info.value.error_code
    assert conn.receive_data(b"anything") == []  # nothing is read after a connection error
    return code


def resets(out: list[tuple[int, int, int, bytes]]) -> list[tuple[int, int]]:
    return [(sid, struct.unpack(">I", payload)[0]) for kind, _, sid, payload in out if kind == RST_STREAM]


# ----------------------------------------------------------------------------------- the happy paths


@pytest.mark.parametrize("split", SPLITS)
def test_get(split: str) -> None:
    c = Client()
    events, out, _ = run(c.headers(1, GET), split)
    assert events == [("RemoteSettingsChanged",), ("RequestReceived", True, GET, 1)]
    assert out == [(SETTINGS, ACK, 0, b"")]


def test_server_preface_carries_the_limits() -> None:
    conn = H2Connection(
        max_concurrent_streams=7,
        initial_window_size=1000,
        max_frame_size=20000,
        max_header_list_size=3000,
        connect_protocol=True,
    )
    conn.initiate_connection()
    ((kind, flags, sid, payload),) = frames(conn.data_to_send())
    assert (kind, flags, sid) == (SETTINGS, 0, 0)
    pairs = [struct.unpack(">HI", payload[i : i + 6]) for i in range(0, len(payload), 6)]
    assert pairs == [(3, 7), (4, 1000), (5, 20000), (6, 3000), (8, 1)]


@pytest.mark.parametrize("split", SPLITS)
def test_post_body_padded_and_plain(split: str) -> None:
    c = Client()
    padded = frame(DATA, PADDED, 1, b"\x03" + b"hello" + b"\0\0\0")
    data = c.headers(1, post(9), end_stream=False) + padded + frame(DATA, END_STREAM, 1, b"more")
    events, _, _conn = run(data, split)
    assert events[1] == ("RequestReceived", False, post(9), 1)
    body = b"".join(e[1] for e in events if e[0] == "DataReceived")
    assert body == b"hellomore"
    assert sum(e[3] for e in events if e[0] == "DataReceived") == 9 + 4  # padding counts on the window
    assert events[-1][2] is True  # end_stream


@pytest.mark.parametrize("split", SPLITS)
def test_trailers(split: str) -> None:
    c = Client()
    data = c.headers(1, post(), end_stream=False) + frame(DATA, 0, 1, b"x") + c.headers(1, [(b"x-sum", b"1")])
    events, _, _ = run(data, split)
    assert events[-1] == ("TrailersReceived", [(b"x-sum", b"1")], 1)


@pytest.mark.parametrize("split", SPLITS)
def test_continuation_frames_complete_a_head(split: str) -> None:
    c = Client()
    block = c.block([*GET, (b"x-long", b"v" * 100)])
    data = (
        frame(HEADERS, END_STREAM, 1, block[:10])
        + frame(CONTINUATION, 0, 1, block[10:50])
        + frame(CONTINUATION, END_HEADERS, 1, block[50:])
    )
    events, _, _ = run(data, split)
    assert events[1] == ("RequestReceived", True, [*GET, (b"x-long", b"v" * 100)], 1)


@pytest.mark.parametrize("split", SPLITS)
def test_headers_with_padding_and_priority(split: str) -> None:
    c = Client()
    block = c.block(GET)
    payload = b"\x02" + struct.pack(">IB", 0x80000000 | 0, 15) + block + b"\0\0"
    events, _, _ = run(frame(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, 1, payload), split)
    assert events[1] == ("RequestReceived", True, GET, 1)


@pytest.mark.parametrize("split", SPLITS)
def test_control_frames(split: str) -> None:
    data = (
        frame(PING, 0, 0, b"12345678")
        + frame(PING, ACK, 0, b"abcdefgh")
        + frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 1))  # on an idle stream: allowed, opens nothing
        + settings_frame(ack=True)
        + frame(0xFA, 0xFF, 0, b"unknown types are ignored")
        + window_update(0, 10)
    )
    events, out, conn = run(data, split)
    assert [e[0] for e in events] == [
        "RemoteSettingsChanged",
        "PingReceived",
        "PingAckReceived",
        "PriorityUpdated",
        "SettingsAcknowledged",
        "WindowUpdated",
    ]
    assert (PING, ACK, 0, b"12345678") in out
    assert events[2] == ("PingAckReceived", b"abcdefgh")
    conn.ping(b"drain!!!")
    assert frames(conn.data_to_send()) == [(PING, 0, 0, b"drain!!!")]
    # PRIORITY on idle stream 3 does not use the id: stream 1 may still open (h2spec generic 3.3/5).
    events, _, _ = run(Client().headers(1, GET), conn=conn)
    assert events == [("RequestReceived", True, GET, 1)]


def test_goaway_from_the_client() -> None:
    events, _, _ = run(frame(GOAWAY, 0, 0, struct.pack(">II", 5, 0) + b"bye"))
    assert events[-1] == ("ConnectionTerminated", b"bye", 0, 5)


# ------------------------------------------------------------------------------------- sending


def test_response_head_and_body_decode_with_an_independent_decoder() -> None:
    c = Client()
    _, _, conn = run(c.headers(1, GET))
    head = [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"tricorn"),
        (b"set-cookie", b"a=b"),
        (b"x-custom-name", b"\xffvalue with bytes"),
    ]
    conn.send_headers(1, head)
    conn.send_data(1, b"hello", end_stream=True)
    out = frames(conn.data_to_send())
    assert [(k, f, s) for k, f, s, _ in out] == [(HEADERS, END_HEADERS, 1), (DATA, END_STREAM, 1)]
    decoder = hpack.Decoder()
    assert decoder.decode(out[0][3], raw=True) == head
    assert out[1][3] == b"hello"
    assert decoder.header_table.dynamic_entries == hpack.Decoder().header_table.dynamic_entries  # stateless
    assert conn.open_streams == 0
    # The same head again (its encoding remembered), and one that differs in a value only.
    _, _, conn = run(c.headers(3, GET), conn=conn)
    changed = [*head[:-1], (b"x-custom-name", b"another")]
    conn.send_headers(3, head)
    conn.send_data(3, b"")
    conn.send_headers(3, changed, end_stream=True)
    out = frames(conn.data_to_send())
    assert decoder.decode(out[0][3], raw=True) == head
    assert decoder.decode(out[2][3], raw=True) == changed


def test_large_head_continues_in_continuation_frames() -> None:
    c = Client()
    _, _, conn = run(c.headers(1, GET))
    head = [
        (b":status", b"200"),
        *((b"x-%d" % i, bytes(random.Random(i).randbytes(500)).hex().encode()) for i in range(40)),
    ]
    conn.send_headers(1, head, end_stream=True)
    out = frames(conn.data_to_send())
    assert out[0][:3] == (HEADERS, END_STREAM, 1)
    assert [f[0] for f in out[1:]] == [CONTINUATION] * (len(out) - 1)
    assert [f[1] for f in out[1:]] == [0] * (len(out) - 2) + [END_HEADERS]
    assert all(len(f[3]) <= 16384 for f in out)
    assert hpack.Decoder(max_header_list_size=10**6).decode(b"".join(f[3] for f in out), raw=True) == head


def test_table_size_update_follows_the_clients_header_table_size() -> None:
    c = Client()
    _, _, conn = run(settings_frame((1, 0)) + c.headers(1, GET) + c.headers(3, GET))
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    conn.send_headers(3, [(b":status", b"200")], end_stream=True)
    first, second = (f[3] for f in frames(conn.data_to_send()))
    assert first == b"\x20\x88"  # RFC 7541 §4.2: size update to 0 first, then :status 200 (index 8)
    assert second == b"\x88"
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = 0
    assert decoder.decode(first, raw=True) == [(b":status", b"200")]


def test_send_window_and_initial_window_changes() -> None:
    """RFC 9113 §6.9.2: SETTINGS_INITIAL_WINDOW_SIZE moves the windows of open streams, even below 0."""
    c = Client()
    _, _, conn = run(settings_frame((4, 10)) + c.headers(1, GET))
    assert conn.local_flow_control_window(1) == 10
    conn.send_headers(1, [(b":status", b"200")])
    conn.send_data(1, b"0123456789")
    with pytest.raises(LocalProtocolError):
        conn.send_data(1, b"x")
    events, _, _ = run(settings_frame((4, 5)), conn=conn)
    assert conn.local_flow_control_window(1) == -5
    events, _, _ = run(settings_frame((4, 20)), conn=conn)
    assert events == [("RemoteSettingsChanged",), ("WindowUpdated", 0)]  # every stream may send again
    assert conn.local_flow_control_window(1) == 10
    events, _, _ = run(window_update(1, 100), conn=conn)
    assert events == [("WindowUpdated", 1)]
    assert conn.local_flow_control_window(1) == 110


def test_data_is_framed_to_the_clients_max_frame_size() -> None:
    c = Client()
    _, _, conn = run(settings_frame((5, 16384), (4, 100000)) + window_update(0, 100000) + c.headers(1, GET))
    conn.send_headers(1, [(b":status", b"200")])
    conn.send_data(1, b"x" * 40000, end_stream=True)
    out = frames(conn.data_to_send())[1:]
    assert [len(f[3]) for f in out] == [16384, 16384, 40000 - 32768]
    assert [f[1] for f in out] == [0, 0, END_STREAM]


def test_a_head_and_its_body_in_one_call_when_the_body_fits() -> None:
    """send_response: the head and one DATA frame when the windows and the frame size allow the body;
    the head alone (False) when they do not, the body left to send_data; nothing for a reset stream."""
    c = Client()
    _, _, conn = run(settings_frame((4, 10)) + c.headers(1, GET) + c.headers(3, GET) + c.headers(5, GET))
    assert conn.send_response(1, [(b":status", b"200")], b"0123456789", True)
    out = frames(conn.data_to_send())
    assert [(k, f, s, p) for k, f, s, p in out[1:]] == [(DATA, END_STREAM, 1, b"0123456789")]
    assert out[0][:3] == (HEADERS, END_HEADERS, 1) and conn.local_flow_control_window(1) == 0
    assert not conn.send_response(3, [(b":status", b"200")], b"x" * 11, True)  # over the stream's window
    out = frames(conn.data_to_send())
    assert [f[:3] for f in out] == [(HEADERS, END_HEADERS, 3)]
    conn.send_data(3, b"x" * 10)
    assert conn.send_response(5, [(b":status", b"200")], b"", False)  # the head alone, the stream open
    assert [f[:3] for f in frames(conn.data_to_send())] == [(DATA, 0, 3), (HEADERS, END_HEADERS, 5)]
    conn.reset_stream(5)
    conn.data_to_send()
    assert not conn.send_response(5, [(b":status", b"200")], b"x", True)
    assert conn.data_to_send() == b""
    with pytest.raises(LocalProtocolError):
        conn.send_response(7, [(b":status", b"200")], b"x", True)  # never opened


def test_acknowledged_data_reopens_the_windows() -> None:
    c = Client()
    body = b"x" * 16384
    _, _, conn = run(c.headers(1, post(), end_stream=False) + frame(DATA, 0, 1, body) * 2)
    conn.acknowledge_received_data(16384, 1)
    assert frames(conn.data_to_send()) == []  # less than half a window: no WINDOW_UPDATE yet
    conn.acknowledge_received_data(16384, 1)
    out = frames(conn.data_to_send())
    assert (WINDOW_UPDATE, 0, 0, struct.pack(">I", 32768)) in out
    assert (WINDOW_UPDATE, 0, 1, struct.pack(">I", 32768)) in out
    with pytest.raises(LocalProtocolError):
        conn.acknowledge_received_data(1, 1)  # more than was received


def test_our_smaller_initial_window_holds_once_acknowledged() -> None:
    """RFC 9113 §6.9.2: until the client acknowledges our SETTINGS, it may fill the protocol's window."""
    c = Client()
    data = (
        c.headers(1, post(), end_stream=False)
        + frame(DATA, 0, 1, b"x" * 16384) * 3
        + frame(DATA, 0, 1, b"x" * 16383)
    )
    events, _, conn = run(data, initial_window_size=1000)
    assert sum(e[3] for e in events if e[0] == "DataReceived") == 65535
    conn.acknowledge_received_data(65535, 1)
    run(
        settings_frame(ack=True) + c.headers(3, post(), end_stream=False) + frame(DATA, 0, 3, b"x" * 1000),
        conn=conn,
    )
    with pytest.raises(H2ConnectionError) as info:
        run(frame(DATA, 0, 3, b"x"), conn=conn)
    assert info.value.error_code == ErrorCode.FLOW_CONTROL_ERROR


def test_a_reset_stream_gives_its_unacknowledged_bytes_back() -> None:
    """What the shell never acknowledges (its stream was reset) still counts back on the connection."""
    c = Client()
    _, _, conn = run(c.headers(1, post(), end_stream=False) + frame(DATA, 0, 1, b"x" * 16384) * 2)
    conn.reset_stream(1, ErrorCode.CANCEL)
    out = frames(conn.data_to_send())
    assert resets(out) == [(1, ErrorCode.CANCEL)]
    assert (WINDOW_UPDATE, 0, 0, struct.pack(">I", 32768)) in out
    # Frames still in flight on the stream we reset are ignored (RFC 9113 §5.1) but count on the window.
    events, out, _ = run(frame(DATA, 0, 1, b"y" * 16384) * 2 + c.headers(1, [(b"x", b"y")]), conn=conn)
    assert events == []
    assert resets(out) == []
    assert (WINDOW_UPDATE, 0, 0, struct.pack(">I", 32768)) in out
    conn.send_data(1, b"dropped")  # sending on a reset stream is a no-op
    conn.reset_stream(1)
    assert frames(conn.data_to_send()) == []


def test_graceful_goaway_keeps_serving() -> None:
    c = Client()
    _, _, conn = run(c.headers(1, GET))
    conn.close_connection(0, last_stream_id=1)
    conn.send_headers(1, [(b":status", b"204")], end_stream=True)
    out = frames(conn.data_to_send())
    assert [f[0] for f in out] == [GOAWAY, HEADERS]
    assert out[0][3] == struct.pack(">II", 1, 0)


def test_upgrade_stream_one() -> None:
    conn = H2Connection()
    payload = struct.pack(">HI", 4, 1000) + struct.pack(">HI", 5, 20000)
    conn.initiate_upgrade_connection(base64.urlsafe_b64encode(payload).rstrip(b"="))
    assert frames(conn.data_to_send())[0][0] == SETTINGS
    assert conn.max_outbound_frame_size == 20000
    assert conn.local_flow_control_window(1) == 1000
    events, _out, _ = run(HANDSHAKE, conn=conn)
    assert events == [("RemoteSettingsChanged",)]
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    assert conn.open_streams == 0
    with pytest.raises(H2ConnectionError):
        H2Connection().initiate_upgrade_connection(b"AAAA")  # 3 octets: not a multiple of 6


def test_sending_on_a_stream_never_opened_is_a_local_error() -> None:
    _, _, conn = run(b"")
    with pytest.raises(LocalProtocolError):
        conn.send_headers(1, [(b":status", b"200")])
    c = Client()
    run(c.headers(1, GET), conn=conn)
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    run(c.headers(3, post(), end_stream=False), conn=conn)
    conn.send_headers(3, [(b":status", b"200")], end_stream=True)
    conn.end_stream(3)  # (already ended: a no-op)
    with pytest.raises(LocalProtocolError):
        conn.send_data(3, b"after the end")


# ------------------------------------------------------------------------------- connection errors

c0 = Client()
CONNECTION_ERRORS = {
    # §6.1, §6.2, §6.3, §6.4: frames that need a stream, on stream 0.
    "data-on-0": (frame(DATA, 0, 0, b"x"), ErrorCode.PROTOCOL_ERROR),
    "headers-on-0": (frame(HEADERS, END_HEADERS, 0, Client().block(GET)), ErrorCode.PROTOCOL_ERROR),
    "priority-on-0": (frame(PRIORITY, 0, 0, b"\0" * 5), ErrorCode.PROTOCOL_ERROR),
    "rst-on-0": (rst(0), ErrorCode.PROTOCOL_ERROR),
    # §6.5, §6.7, §6.8: connection frames on a stream.
    "settings-on-1": (frame(SETTINGS, 0, 1), ErrorCode.PROTOCOL_ERROR),
    "ping-on-1": (frame(PING, 0, 1, b"\0" * 8), ErrorCode.PROTOCOL_ERROR),
    "goaway-on-1": (frame(GOAWAY, 0, 1, b"\0" * 8), ErrorCode.PROTOCOL_ERROR),
    # §5.1.1: stream ids.
    "even-stream": (Client().headers(2, GET), ErrorCode.PROTOCOL_ERROR),
    "decreasing-stream": (
        (lambda c: c.headers(5, GET) + c.headers(3, GET))(Client()),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # §5.1: idle streams take only HEADERS and PRIORITY.
    "data-on-idle": (frame(DATA, 0, 1, b"x"), ErrorCode.PROTOCOL_ERROR),
    "rst-on-idle": (rst(1), ErrorCode.PROTOCOL_ERROR),
    "window-update-on-idle": (window_update(1, 1), ErrorCode.PROTOCOL_ERROR),
    "continuation-on-idle": (
        frame(CONTINUATION, END_HEADERS, 1, Client().block(GET)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # §5.1: HEADERS on a stream closed by END_STREAM both ways is STREAM_CLOSED (see also below).
    # §6.10: CONTINUATION sequencing.
    "frame-inside-header-block": (
        frame(HEADERS, 0, 1, Client().block(GET)) + frame(PRIORITY, 0, 1, b"\0\0\0\0\x01"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "unknown-frame-inside-header-block": (
        frame(HEADERS, 0, 1, Client().block(GET)) + frame(0xFA, 0, 1, b""),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "headers-of-another-stream-inside-header-block": (
        frame(HEADERS, 0, 1, Client().block(GET)) + Client().headers(3, GET),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "continuation-of-another-stream": (
        frame(HEADERS, 0, 1, b"") + frame(CONTINUATION, END_HEADERS, 3, Client().block(GET)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "continuation-after-end-headers": (
        Client().headers(1, GET) + frame(CONTINUATION, END_HEADERS, 1, b""),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "continuation-after-data": (
        Client().headers(1, post(), end_stream=False)
        + frame(DATA, 0, 1, b"x")
        + frame(CONTINUATION, END_HEADERS, 1, b""),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # Bounds of a header block: count of CONTINUATION frames, compressed size.
    "continuation-flood": (
        frame(HEADERS, 0, 1, b"") + frame(CONTINUATION, 0, 1, b"") * (MAX_CONTINUATION_FRAMES + 1),
        ErrorCode.ENHANCE_YOUR_CALM,
    ),
    "header-block-over-the-list-size": (
        frame(HEADERS, 0, 1, b"\0" * 16384) + frame(CONTINUATION, 0, 1, b"\0" * 16384) * 3,
        ErrorCode.ENHANCE_YOUR_CALM,
    ),
    "decoded-head-over-the-list-size": (  # one 4000-octet entry, referenced 20 times (an HPACK bomb)
        frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            b"\x82\x86\x84\x40\x01x\x7f\xa1\x1e" + b"v" * 4000 + b"\xbe" * 20,
        ),
        ErrorCode.ENHANCE_YOUR_CALM,
    ),
    # §4.2, §6.x: frame sizes.
    "frame-over-max-frame-size": (frame(DATA, 0, 1, b"x" * 16385), ErrorCode.FRAME_SIZE_ERROR),
    "settings-ack-with-payload": (frame(SETTINGS, ACK, 0, b"\0" * 6), ErrorCode.FRAME_SIZE_ERROR),
    "settings-not-multiple-of-6": (frame(SETTINGS, 0, 0, b"\0" * 5), ErrorCode.FRAME_SIZE_ERROR),
    "ping-of-7": (frame(PING, 0, 0, b"\0" * 7), ErrorCode.FRAME_SIZE_ERROR),
    "window-update-of-3": (frame(WINDOW_UPDATE, 0, 0, b"\0\0\1"), ErrorCode.FRAME_SIZE_ERROR),
    "rst-of-3": (Client().headers(1, GET) + frame(RST_STREAM, 0, 1, b"\0\0\1"), ErrorCode.FRAME_SIZE_ERROR),
    "goaway-of-7": (frame(GOAWAY, 0, 0, b"\0" * 7), ErrorCode.FRAME_SIZE_ERROR),
    "headers-too-short-for-priority": (
        frame(HEADERS, END_HEADERS | PRIORITY_FLAG, 1, b"\0\0"),
        ErrorCode.FRAME_SIZE_ERROR,
    ),
    # §6.1, §6.2: padding.
    "data-padding-too-long": (
        Client().headers(1, post(), end_stream=False) + frame(DATA, PADDED, 1, b"\x05abcd"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "headers-padding-too-long": (
        frame(HEADERS, END_HEADERS | PADDED, 1, b"\x10" + Client().block(GET)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # §6.5.2: setting bounds.
    "enable-push-2": (settings_frame((2, 2)), ErrorCode.PROTOCOL_ERROR),
    "initial-window-over-2^31-1": (settings_frame((4, 2**31)), ErrorCode.FLOW_CONTROL_ERROR),
    "max-frame-size-below-16384": (settings_frame((5, 16383)), ErrorCode.PROTOCOL_ERROR),
    "max-frame-size-over-2^24-1": (settings_frame((5, 2**24)), ErrorCode.PROTOCOL_ERROR),
    "enable-connect-protocol-2": (settings_frame((8, 2)), ErrorCode.PROTOCOL_ERROR),
    "no-rfc7540-priorities-2": (settings_frame((9, 2)), ErrorCode.PROTOCOL_ERROR),
    # §6.9, §6.9.1, §6.9.2: windows.
    "window-update-of-0": (window_update(0, 0), ErrorCode.PROTOCOL_ERROR),
    "connection-window-over-2^31-1": (window_update(0, 2**31 - 1), ErrorCode.FLOW_CONTROL_ERROR),
    "initial-window-pushes-a-stream-over-2^31-1": (
        Client().headers(1, GET) + window_update(1, 2**31 - 1 - 65535) + settings_frame((4, 65536)),
        ErrorCode.FLOW_CONTROL_ERROR,
    ),
    "data-over-the-stream-window": (
        settings_frame()
        + Client().headers(1, post(), end_stream=False)
        + frame(DATA, 0, 1, b"x" * 16384) * 4
        + frame(DATA, 0, 1, b"x" * 16384),
        ErrorCode.FLOW_CONTROL_ERROR,
    ),
    # §8.4: a client cannot push.
    "push-promise": (frame(PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\2"), ErrorCode.PROTOCOL_ERROR),
    # §4.3: HPACK.
    "hpack-garbage": (
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff"),
        ErrorCode.COMPRESSION_ERROR,
    ),
    "hpack-index-0": (frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x80"), ErrorCode.COMPRESSION_ERROR),
    "hpack-size-update-over-the-setting": (
        frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe2\x1f" + Client().block(GET)),
        ErrorCode.COMPRESSION_ERROR,
    ),
    "hpack-size-update-after-a-field": (
        frame(HEADERS, END_HEADERS | END_STREAM, 1, Client().block(GET) + b"\x20"),
        ErrorCode.COMPRESSION_ERROR,
    ),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", CONNECTION_ERRORS)
def test_connection_errors(case: str, split: str) -> None:
    data, code = CONNECTION_ERRORS[case]
    assert connection_error(data, split, max_header_list_size=16384 * 3) == code


@pytest.mark.parametrize("split", SPLITS)
def test_invalid_preface(split: str) -> None:
    """RFC 9113 §3.4: an invalid preface, or one not followed by SETTINGS, is a PROTOCOL_ERROR."""
    for data in (
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        PREFACE + frame(PING, 0, 0, b"\0" * 8),
        PREFACE + settings_frame(ack=True),
    ):
        conn = server()
        with pytest.raises(H2ConnectionError) as info:
            for piece in pieces(data, split):
                conn.receive_data(piece)
        assert info.value.error_code == ErrorCode.PROTOCOL_ERROR


@pytest.mark.parametrize("split", SPLITS)
def test_headers_on_a_stream_closed_both_ways(split: str) -> None:
    """RFC 9113 §5.1 (h2spec 5.1/13): HEADERS after END_STREAM both ways is a connection STREAM_CLOSED."""
    c = Client()
    _, _, conn = run(c.headers(1, GET), split)
    conn.send_headers(1, [(b":status", b"204")], end_stream=True)
    conn.data_to_send()
    with pytest.raises(H2ConnectionError) as info:
        run(c.headers(1, GET), split, conn=conn)
    assert info.value.error_code == ErrorCode.STREAM_CLOSED


# ------------------------------------------------------------------------------------ stream errors

MALFORMED = {  # RFC 9113 §8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR
    "uppercase-name": [*GET, (b"X-Upper", b"v")],  # §8.2.1
    "space-in-name": [*GET, (b"x y", b"v")],
    "colon-in-name": [*GET, (b"x:y", b"v")],
    "empty-name": [*GET, (b"", b"v")],
    "cr-in-value": [*GET, (b"x", b"a\rb")],
    "lf-in-value": [*GET, (b"x", b"a\nb")],
    "nul-in-value": [*GET, (b"x", b"a\0b")],
    "leading-space": [*GET, (b"x", b" v")],
    "trailing-tab": [*GET, (b"x", b"v\t")],
    "connection": [*GET, (b"connection", b"keep-alive")],  # §8.2.2
    "keep-alive": [*GET, (b"keep-alive", b"5")],
    "proxy-connection": [*GET, (b"proxy-connection", b"x")],
    "transfer-encoding": [*GET, (b"transfer-encoding", b"chunked")],
    "upgrade": [*GET, (b"upgrade", b"websocket")],
    "te-gzip": [*GET, (b"te", b"gzip")],
    "pseudo-after-regular": [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b"x", b"v"),
        (b":path", b"/"),
    ],  # §8.3
    "duplicate-path": [*GET, (b":path", b"/again")],
    "duplicate-method": [(b":method", b"GET"), *GET],
    "unknown-pseudo": [*GET, (b":unknown", b"x")],
    "response-pseudo": [*GET, (b":status", b"200")],
    "protocol-without-the-setting": [*GET, (b":protocol", b"websocket")],
    "missing-method": GET[1:],  # §8.3.1
    "missing-scheme": [GET[0], *GET[2:]],
    "missing-path": [*GET[:2], GET[3]],
    "empty-path": [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b""), (b":authority", b"a")],
    "connect-with-path": [(b":method", b"CONNECT"), (b":authority", b"a:443"), (b":path", b"/")],
    "connect-without-authority": [(b":method", b"CONNECT")],
    "host-differs-from-authority": [*GET, (b"host", b"b")],
    "invalid-content-length": [*post(), (b"content-length", b"1x")],
    "conflicting-content-length": [*post(), (b"content-length", b"1"), (b"content-length", b"2")],
    "content-length-without-body": post(3),  # END_STREAM on the head: no DATA adds up to 3
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_requests_are_stream_errors(case: str, split: str) -> None:
    c = Client()
    events, out, conn = run(c.headers(1, MALFORMED[case]) + c.headers(3, GET), split)
    assert resets(out) == [(1, ErrorCode.PROTOCOL_ERROR)]
    assert (
        events[1][0] == "StreamReset" and events[1][3] is False and events[1][2]
    )  # a local reset, its reason
    assert events[2] == ("RequestReceived", True, GET, 3)  # the connection serves on
    # Frames in flight on the reset stream are ignored (§5.1).
    events, out, _ = run(frame(DATA, END_STREAM, 1, b"late"), conn=conn)
    assert (events, resets(out)) == ([], [])


STREAM_ERRORS = {
    # §8.1.1: the body does not add up to content-length.
    "body-longer-than-content-length": (
        lambda c: c.headers(1, post(2), end_stream=False) + frame(DATA, END_STREAM, 1, b"abc"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "body-shorter-than-content-length": (
        lambda c: c.headers(1, post(5), end_stream=False) + frame(DATA, END_STREAM, 1, b"abc"),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "trailers-before-content-length": (
        lambda c: (
            c.headers(1, post(5), end_stream=False) + frame(DATA, 0, 1, b"abc") + c.headers(1, [(b"x", b"y")])
        ),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # §8.1: trailers end the stream and carry no pseudo-header.
    "second-headers-without-end-stream": (
        lambda c: c.headers(1, post(), end_stream=False) + c.headers(1, [(b"x", b"y")], end_stream=False),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "pseudo-header-in-trailers": (
        lambda c: c.headers(1, post(), end_stream=False) + c.headers(1, [(b":path", b"/")]),
        ErrorCode.PROTOCOL_ERROR,
    ),
    # §5.1 half-closed (remote): only WINDOW_UPDATE, PRIORITY and RST_STREAM.
    "data-after-end-stream": (lambda c: c.headers(1, GET) + frame(DATA, 0, 1, b"x"), ErrorCode.STREAM_CLOSED),
    "headers-after-end-stream": (lambda c: c.headers(1, GET) + c.headers(1, GET), ErrorCode.STREAM_CLOSED),
    # §5.1 closed by the client's RST_STREAM.
    "data-after-rst": (
        lambda c: c.headers(1, post(), end_stream=False) + rst(1) + frame(DATA, 0, 1, b"x"),
        ErrorCode.STREAM_CLOSED,
    ),
    "headers-after-rst": (
        lambda c: c.headers(1, post(), end_stream=False) + rst(1) + c.headers(1, GET),
        ErrorCode.STREAM_CLOSED,
    ),
    # §5.3.1: a stream cannot depend on itself.
    "headers-depend-on-themselves": (
        lambda c: frame(
            HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1, struct.pack(">IB", 1, 16) + c.block(GET)
        ),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "priority-depends-on-itself": (
        lambda c: c.headers(1, GET) + frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 16)),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "priority-of-4-octets": (
        lambda c: c.headers(1, GET) + frame(PRIORITY, 0, 1, b"\0" * 4),
        ErrorCode.FRAME_SIZE_ERROR,
    ),  # §6.3
    # §6.9, §6.9.1 on a stream.
    "window-update-of-0-on-a-stream": (
        lambda c: c.headers(1, post(), end_stream=False) + window_update(1, 0),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "stream-window-over-2^31-1": (
        lambda c: c.headers(1, post(), end_stream=False) + window_update(1, 2**31 - 1),
        ErrorCode.FLOW_CONTROL_ERROR,
    ),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", STREAM_ERRORS)
def test_stream_errors(case: str, split: str) -> None:
    build, code = STREAM_ERRORS[case]
    c = Client()
    events, out, _conn = run(build(c) + c.headers(3, GET), split)
    assert resets(out) == [(1, code)]
    assert ("RequestReceived", True, GET, 3) in events
    assert not any(e[0] == "StreamReset" and e[4] == 3 for e in events)


def test_concurrent_stream_limit_refuses_with_refused_stream() -> None:
    """RFC 9113 §5.1.2: a stream over SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM; the rest serve."""
    c = Client()
    data = b"".join(c.headers(i, post(), end_stream=False) for i in (1, 3, 5))
    events, out, conn = run(data, max_concurrent_streams=2)
    assert [e[-1] for e in events if e[0] == "RequestReceived"] == [1, 3]
    assert resets(out) == [(5, ErrorCode.REFUSED_STREAM)]
    conn.reset_stream(1)
    events, out, _ = run(c.headers(7, GET), conn=conn)
    assert events == [("RequestReceived", True, GET, 7)]


def test_closed_streams_remembered_are_bounded() -> None:
    c = Client()
    conn = server()
    run(HANDSHAKE, conn=conn)
    for i in range(1, 2 * CLOSED_STREAMS_KEPT + 3, 2):
        run(c.headers(i, GET), conn=conn)
        conn.reset_stream(i)
    assert len(conn._closed_streams) == CLOSED_STREAMS_KEPT
    conn.data_to_send()
    # A frame for a stream forgotten long ago: STREAM_CLOSED (it cannot be told from one closed normally).
    _events, out, _ = run(frame(DATA, 0, 1, b"x"), conn=conn)
    assert resets(out) == [(1, ErrorCode.STREAM_CLOSED)]


def test_head_cache_follows_the_dynamic_table() -> None:
    """The same block bytes mean other fields once the table changed: never served from the cache."""
    base = b"\x82\x86\x84"  # :method GET, :scheme http, :path / (static table)

    def indexed(value: bytes) -> bytes:  # RFC 7541 §6.2.1: literal with incremental indexing, new name
        return base + b"\x40\x04x-id" + bytes((len(value),)) + value

    reference = base + b"\xbe"  # index 62: the newest dynamic entry
    blocks = [indexed(b"one"), reference, reference, indexed(b"two"), reference, reference]
    data = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, b) for i, b in enumerate(blocks))
    for split in SPLITS:
        events, _, _ = run(data, split)
        values = [dict(e[2])[b"x-id"] for e in events if e[0] == "RequestReceived"]
        assert values == [b"one", b"one", b"one", b"two", b"two", b"two"]


def test_extended_connect_when_enabled() -> None:
    c = Client()
    head = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"http"),
        (b":path", b"/ws"),
        (b":authority", b"a"),
    ]
    events, _out, _ = run(c.headers(1, head, end_stream=False), connect_protocol=True)
    assert events[1] == ("RequestReceived", False, head, 1)


# ------------------------------------------------------------------------------------------ fuzzing


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(SPLITS))
def test_garbage_after_the_handshake_raises_only_protocol_errors(data: bytes, split: str) -> None:
    conn = server(max_header_list_size=4096)
    try:
        for piece in pieces(HANDSHAKE + Client().headers(1, post(), end_stream=False) + data, split):
            conn.receive_data(piece)
    except H2ConnectionError:
        pass
    conn.data_to_send()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                Client().headers(1, post(), end_stream=False),
                frame(DATA, 0, 1, b"abc"),
                frame(DATA, END_STREAM, 1, b""),
                window_update(1, 5),
                window_update(0, 5),
                rst(1),
                frame(PRIORITY, 0, 1, b"\0\0\0\3\1"),
                frame(PING, 0, 0, b"\0" * 8),
                settings_frame((4, 100)),
                frame(CONTINUATION, END_HEADERS, 1, b""),
                frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84"),
                frame(HEADERS, 0, 3, b"\x82"),
                frame(HEADERS, END_HEADERS | END_STREAM, 3, b"\x86\x84"),
            ]
        ),
        max_size=12,
    )
)
def test_frame_sequences_raise_only_protocol_errors(sequence: list[bytes]) -> None:
    conn = server()
    try:
        conn.receive_data(HANDSHAKE + b"".join(sequence))
        conn.send_headers(1, [(b":status", b"200")])
    except (H2ConnectionError, LocalProtocolError):
        pass
    conn.data_to_send()


def test_module_names() -> None:
    assert h2conn.RequestReceived is RequestReceived
    for kind in (
        ConnectionTerminated,
        DataReceived,
        PingReceived,
        PriorityUpdated,
        RemoteSettingsChanged,
        SettingsAcknowledged,
        StreamReset,
        TrailersReceived,
        WindowUpdated,
    ):
        assert kind.__slots__ is not None


STOPPED = {  # after a complete response and our RST_STREAM NO_ERROR (RFC 9113 §8.1), frames in flight:
    "body-in-flight": (lambda c: frame(DATA, 0, 1, b"x" * 9) + frame(DATA, END_STREAM, 1, b"y"), None),
    "window-update": (lambda c: window_update(1, 10), None),
    "window-update-of-0": (lambda c: window_update(1, 0), ErrorCode.PROTOCOL_ERROR),
    "window-over-2^31-1": (lambda c: window_update(1, 2**31 - 1), ErrorCode.FLOW_CONTROL_ERROR),
    "body-over-content-length": (lambda c: frame(DATA, END_STREAM, 1, b"x" * 11), ErrorCode.PROTOCOL_ERROR),
    "body-under-content-length": (lambda c: frame(DATA, END_STREAM, 1, b"x" * 9), ErrorCode.PROTOCOL_ERROR),
    "trailers-without-end-stream": (
        lambda c: c.headers(1, [(b"x", b"y")], end_stream=False),
        ErrorCode.PROTOCOL_ERROR,
    ),
    "trailers": (lambda c: frame(DATA, 0, 1, b"x" * 10) + c.headers(1, [(b"x", b"y")]), None),
    "data-after-the-clients-rst": (lambda c: rst(1) + frame(DATA, 0, 1, b"x"), ErrorCode.STREAM_CLOSED),
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", STOPPED)
def test_frames_after_the_response_and_rst_no_error(case: str, split: str) -> None:
    """Held to the rules of the request they belong to (h2spec 5.1/8, 8.1/1, 8.1.2.6 when the response
    wins the race), but never given to the shell, and counted back on the connection window."""
    build, code = STOPPED[case]
    c = Client()
    _, _, conn = run(c.headers(1, post(10), end_stream=False), split)
    conn.send_headers(1, [(b":status", b"200")], end_stream=True)
    conn.reset_stream(1, ErrorCode.NO_ERROR)
    conn.data_to_send()
    events, out, _ = run(build(c) + c.headers(3, GET), split, conn=conn)
    assert resets(out) == ([] if code is None else [(1, code)])
    assert [e[0] for e in events] == ([] if code is None else ["StreamReset"]) + ["RequestReceived"]
    assert conn._recv_window + conn._recv_unacked == 65535


def test_head_cache_is_bounded() -> None:
    base = b"\x82\x86\x84"
    blocks = [base + b"\x00\x05x-%03d\x01v" % i for i in range(20)]  # 20 distinct heads, none indexed
    # One 3000-octet entry, then a small block that decodes to two copies of it (6000 octets).
    big = base + b"\x40\x01y\x7f\xb9\x16" + b"v" * 3000
    data = b"".join(frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, b) for i, b in enumerate(blocks))
    data += frame(HEADERS, END_STREAM | END_HEADERS, 41, big) + frame(
        HEADERS, END_STREAM | END_HEADERS, 43, base + b"\xbe\xbe"
    )
    events, _, conn = run(data)
    assert len([e for e in events if e[0] == "RequestReceived"]) == 22
    entries = conn._head_cache.entries
    assert len(entries) <= h2conn.HEAD_CACHE_ENTRIES
    assert all(len(block) <= h2conn.HEAD_CACHE_BLOCK for _, block in entries)
    assert not any(block.endswith(b"\xbe\xbe") for _, block in entries)
