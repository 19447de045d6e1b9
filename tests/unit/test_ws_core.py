"""tricorn.proto.ws: the sans-io WebSocket core, with plain function calls and an injected clock.

Frames are built by an independent peer (wsproto in client mode, and by hand for what no client sends);
every framing case is fed whole, byte by byte and in random chunks.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import struct
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.protocol import Protocol, Side, State
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage as WsprotoBytes
from wsproto.events import CloseConnection, Ping
from wsproto.events import TextMessage as WsprotoText
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from tests.conftest import ws_frame
from tricorn import config as config_module
from tricorn.errors import LocalProtocolError, RemoteProtocolError
from tricorn.interfaces.asgi_ws import SessionState, WebSocketSession
from tricorn.proto import ws
from tricorn.proto.h1 import H1Connection, Request
from tricorn.proto.ws import (
    BytesMessage,
    CloseReceived,
    ConnectionFailed,
    HandshakeError,
    TextMessage,
    WSConnection,
    check_handshake,
    negotiate_extensions,
)

KEY = base64.b64encode(b"k" * 16)
GOOD = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def replace(
    headers: list[tuple[bytes, bytes]], name: bytes, value: bytes | None
) -> list[tuple[bytes, bytes]]:
    out = [(n, v) for n, v in headers if n != name]
    return out if value is None else [*out, (name, value)]


# -- handshake ------------------------------------------------------------------------------------------


def test_valid_handshake() -> None:
    headers = [*GOOD, (b"sec-websocket-protocol", b"chat, superchat"), (b"sec-websocket-protocol", b"v2")]
    handshake = check_handshake(b"GET", headers)
    assert handshake.key == KEY
    assert handshake.subprotocols == ["chat", "superchat", "v2"]
    assert handshake.extensions == []


def test_accept_key_is_rfc_6455_example() -> None:
    assert ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"sec-websocket-key", None),
        (b"sec-websocket-key", b"!!!"),
        (b"sec-websocket-key", base64.b64encode(b"x" * 15)),
        (b"upgrade", None),
        (b"upgrade", b"websocket, h2c"),
        (b"upgrade", b"h2c"),
        (b"connection", None),
        (b"connection", b"keep-alive"),
    ],
)
def test_bad_handshake_is_400(name: bytes, value: bytes | None) -> None:
    with pytest.raises(HandshakeError) as info:
        check_handshake(b"GET", replace(GOOD, name, value))
    assert info.value.status == 400


def test_connection_token_list() -> None:
    check_handshake(b"GET", replace(GOOD, b"connection", b"keep-alive, Upgrade"))


@pytest.mark.parametrize("version", [None, b"12", b"8", b"13, 8", b""])
def test_bad_version_is_426_with_the_supported_version(version: bytes | None) -> None:
    with pytest.raises(HandshakeError) as info:
        check_handshake(b"GET", replace(GOOD, b"sec-websocket-version", version))
    assert info.value.status == 426
    assert info.value.headers == [(b"sec-websocket-version", b"13")]


def test_non_get_is_400() -> None:
    with pytest.raises(HandshakeError) as info:
        check_handshake(b"POST", GOOD)
    assert info.value.status == 400


def test_two_keys_is_400() -> None:
    with pytest.raises(HandshakeError):
        check_handshake(b"GET", [*GOOD, (b"sec-websocket-key", KEY)])


def test_refusal_response_carries_its_headers() -> None:
    exc = HandshakeError("nope", 426, [(b"sec-websocket-version", b"13")])
    response = ws.h1_refusal_response(exc)
    assert response.startswith(b"HTTP/1.1 426 Upgrade Required\r\nsec-websocket-version: 13\r\n")
    assert b"connection: close\r\n" in response


def test_accept_headers_drop_what_the_handshake_owns() -> None:
    handshake = check_handshake(b"GET", GOOD)
    headers = ws.accept_headers(
        handshake,
        "chat",
        b"permessage-deflate",
        [(b"X-App", b"1"), (b"Connection", b"close"), (b"upgrade", b"x")],
    )
    assert headers == [
        (b"sec-websocket-accept", ws.accept_key(KEY)),
        (b"sec-websocket-protocol", b"chat"),
        (b"sec-websocket-extensions", b"permessage-deflate"),
        (b"x-app", b"1"),
    ]


@pytest.mark.parametrize(
    ("subprotocol", "headers"),
    [
        ("bad value", []),
        ("x\r\ny", []),
        (None, [(b"x", b"a\r\nb")]),
        (None, [(b"bad name", b"1")]),
        (None, [("str", "str")]),
    ],
)
def test_accept_headers_refuse_bad_values(
    subprotocol: str | None, headers: list[tuple[bytes, bytes]]
) -> None:
    with pytest.raises(LocalProtocolError):
        ws.accept_headers(check_handshake(b"GET", GOOD), subprotocol, None, headers)


def test_101_response() -> None:
    response = ws.h1_accept_response([(b"sec-websocket-accept", b"abc")])
    assert response.startswith(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    )
    assert b"sec-websocket-accept: abc\r\n" in response and response.endswith(b"\r\n\r\n")


# -- extension negotiation ------------------------------------------------------------------------------


def test_deflate_default_offer() -> None:
    header, extensions = negotiate_extensions(["permessage-deflate; client_max_window_bits"], True)
    assert header == b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    assert len(extensions) == 1


def test_deflate_off() -> None:
    assert negotiate_extensions(["permessage-deflate"], False) == (None, [])


def test_deflate_parameters_honoured() -> None:
    header, _ = negotiate_extensions(
        [
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"
        ],
        True,
    )
    assert header is not None
    params = set(header.decode().split("; "))
    assert params == {
        "permessage-deflate",
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=9",
    }


def test_first_acceptable_offer_wins() -> None:
    header, extensions = negotiate_extensions(
        ["permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits=10"], True
    )
    assert header == b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
    assert len(extensions) == 1


def test_unknown_extensions_are_ignored() -> None:
    assert negotiate_extensions(["x-webkit-deflate-frame", "foo; bar=1"], True) == (None, [])


def test_malformed_extensions_header_is_400() -> None:
    with pytest.raises(HandshakeError) as info:
        negotiate_extensions(['permessage-deflate; x="open'], True)
    assert info.value.status == 400


# -- the HTTP/1.1 core's part: which requests are handshakes --------------------------------------------


def h1_head(*lines: bytes) -> bytes:
    return b"GET /chat HTTP/1.1\r\nHost: x\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@pytest.mark.parametrize("backend", ["httptools", "h11"])
def test_h1_core_hands_over_websocket_upgrades(backend: str) -> None:
    conn = H1Connection(backend=backend, upgrades=frozenset((b"websocket",)))  # type: ignore[arg-type]
    events = conn.receive_data(
        h1_head(b"Upgrade: WebSocket", b"Connection: keep-alive, Upgrade") + b"\x81\x80"
    )
    request = events[0]
    assert isinstance(request, Request) and request.upgrade == b"websocket"
    assert conn.trailing_data == b"\x81\x80"


@pytest.mark.parametrize("backend", ["httptools", "h11"])
@pytest.mark.parametrize(
    "lines",
    [
        pytest.param((b"Upgrade: websocket",), id="no-connection-upgrade"),
        pytest.param((b"Upgrade: websocket, h2c", b"Connection: upgrade"), id="upgrade-list"),
        pytest.param((b"Upgrade: websocket", b"Connection: upgrade", b"Content-Length: 2"), id="with-a-body"),
    ],
)
def test_h1_core_refuses_websocket_handshakes_that_do_not_qualify(
    backend: str, lines: tuple[bytes, ...]
) -> None:
    conn = H1Connection(backend=backend, upgrades=frozenset((b"websocket",)))  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_data(h1_head(*lines) + b"hi")
    assert info.value.status == 400


@pytest.mark.parametrize("backend", ["httptools", "h11"])
def test_h1_core_without_websocket_serves_upgrades_as_http(backend: str) -> None:
    conn = H1Connection(backend=backend)  # type: ignore[arg-type]
    events = conn.receive_data(h1_head(b"Upgrade: websocket", b"Connection: upgrade"))
    assert isinstance(events[0], Request) and events[0].upgrade is None


# -- framing ---------------------------------------------------------------------------------------------


def client(deflate: bool = False) -> Connection:
    return Connection(ConnectionType.CLIENT, extensions=[PerMessageDeflate()] if deflate else None)


def splits(data: bytes) -> Iterator[list[bytes]]:
    """The same bytes whole, byte by byte, and in random chunks."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(len(data))
    for _ in range(3):
        chunks, i = [], 0
        while i < len(data):
            n = rng.randint(1, 40)
            chunks.append(data[i : i + n])
            i += n
        yield chunks


def feed(core: WSConnection, chunks: list[bytes]) -> list[object]:
    events: list[object] = []
    for chunk in chunks:
        events += core.receive_data(chunk)
    return events


def describe(events: list[object]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for event in events:
        if isinstance(event, (TextMessage, BytesMessage)):
            out.append((type(event).__name__, event.data))
        elif isinstance(event, (CloseReceived, ConnectionFailed)):
            out.append((type(event).__name__, event.code))
    return out


Case = tuple[Callable[[], bytes], list[tuple[str, object]]]

masked = functools.partial(ws_frame, key=b"\x01\x02\x03\x04")  # a fixed key: the same bytes every run


def _peer_messages() -> bytes:
    peer = client()
    return (
        peer.send(WsprotoText(data="héllo"))
        + peer.send(WsprotoBytes(data=b"\x00" * 300))
        + peer.send(WsprotoText(data="frag", message_finished=False))
        + peer.send(Ping(payload=b"in between"))
        + peer.send(WsprotoText(data="mented ✓", message_finished=True))
        + peer.send(WsprotoBytes(data=b"x" * 70000))
        + peer.send(CloseConnection(code=1000, reason="done"))
    )


CASES: dict[str, Case] = {
    "messages-and-close": (
        _peer_messages,
        [
            ("TextMessage", "héllo"),
            ("BytesMessage", b"\x00" * 300),
            ("TextMessage", "fragmented ✓"),
            ("BytesMessage", b"x" * 70000),
            ("CloseReceived", 1000),
        ],
    ),
    "unmasked": (lambda: masked(1, b"x", mask=False), [("ConnectionFailed", 1002)]),
    "bad-opcode": (lambda: masked(5, b"x"), [("ConnectionFailed", 1002)]),
    "rsv-bits": (lambda: masked(1, b"x", rsv=2), [("ConnectionFailed", 1002)]),
    "invalid-utf8": (
        lambda: masked(1, b"ok") + masked(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"),
        [("TextMessage", "ok"), ("ConnectionFailed", 1007)],
    ),
    "invalid-utf8-fails-at-its-fragment": (
        lambda: masked(1, b"ok", fin=False) + masked(0, b"\xff", fin=False) + masked(9, b"late ping"),
        [("ConnectionFailed", 1007)],
    ),
    "utf8-split-across-fragments": (
        lambda: masked(1, "é".encode()[:1], fin=False) + masked(0, "é".encode()[1:]),
        [("TextMessage", "é")],
    ),
    "close-mid-fragments": (
        lambda: masked(1, b"part", fin=False) + masked(8, struct.pack("!H", 1000)),
        [("CloseReceived", 1000)],
    ),
    "close-bad-code": (lambda: masked(8, struct.pack("!H", 1005)), [("ConnectionFailed", 1002)]),
    "close-empty": (lambda: masked(8, b""), [("CloseReceived", 1005)]),
    "nothing-after-close": (lambda: masked(8, b"") + masked(1, b"ignored"), [("CloseReceived", 1005)]),
    "too-big": (lambda: masked(2, b"y" * 2000), [("ConnectionFailed", 1009)]),
    "too-big-in-fragments": (
        lambda: masked(2, b"y" * 800, fin=False) + masked(0, b"y" * 800),
        [("ConnectionFailed", 1009)],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_framing(name: str) -> None:
    make, expected = CASES[name]
    data = make()
    max_size = 1024 if name.startswith("too-big") else 1 << 20
    for chunks in splits(data):
        core = WSConnection(0.0, max_size=max_size)
        assert describe(feed(core, chunks)) == expected
        if expected[-1][0] in ("CloseReceived", "ConnectionFailed"):
            assert core.close_transport
            assert core.receive_data(masked(1, b"more")) == []


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 70_000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(1, 140_000), max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_frames_in_any_reads_are_what_the_librarys_own_reader_gives(
    sizes: list[int], cuts: list[int], seed: int
) -> None:
    """The core reads frames through its own reader (one copy per payload inside a read); split into
    reads of any sizes (small ones merged, large ones viewed, payloads spanning reads joined), the
    messages are those the websockets library gives reading the same bytes with its own reader."""
    rng = random.Random(seed)
    payloads = [rng.randbytes(n) for n in sizes]
    data = b"".join(masked(2, payload, key=rng.randbytes(4)) for payload in payloads)
    points = sorted({cut % len(data) for cut in cuts} - {0})
    reads = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    library = Protocol(Side.SERVER, state=State.OPEN, max_size=None)
    for read in reads:
        library.receive_data(read)
    expected = [("BytesMessage", bytes(frame.data)) for frame in library.events_received()]
    core = WSConnection(0.0, max_size=None)
    got = describe(feed(core, reads))
    assert got == expected == [("BytesMessage", payload) for payload in payloads]
    assert all(type(data) is bytes for _, data in got)


def test_ping_is_answered_and_close_is_echoed() -> None:
    core = WSConnection(0.0)
    peer = client()
    core.receive_data(peer.send(Ping(payload=b"p")) + peer.send(CloseConnection(code=4000, reason="r")))
    out = core.data_to_send()
    peer.receive_data(out)
    events = list(peer.events())
    assert events[0] == Ping(payload=b"p").response()
    assert isinstance(events[1], CloseConnection) and events[1].code == 4000


def test_sending_round_trips_through_an_independent_peer() -> None:
    core = WSConnection(0.0)
    core.send_text("héllo")
    core.send_bytes(b"\x01" * 100000)
    core.send_close(0.0, 4321, "bye")
    peer = client()
    peer.receive_data(core.data_to_send())
    events = list(peer.events())
    assert isinstance(events[0], WsprotoText) and events[0].data == "héllo"
    assert isinstance(events[1], WsprotoBytes) and events[1].data == b"\x01" * 100000
    assert isinstance(events[2], CloseConnection) and (events[2].code, events[2].reason) == (4321, "bye")


def test_compressed_round_trip() -> None:
    header, extensions = negotiate_extensions(["permessage-deflate"], True)
    assert header is not None
    deflate = PerMessageDeflate()
    deflate.finalize(header.decode())  # the client's view of the server's answer
    peer = Connection(ConnectionType.CLIENT, extensions=[deflate])
    core = WSConnection(0.0, extensions=extensions)
    text = "compressible " * 1000
    assert describe(core.receive_data(peer.send(WsprotoText(data=text)))) == [("TextMessage", text)]
    core.send_text(text)
    out = core.data_to_send()
    assert len(out) < len(text) // 10
    peer.receive_data(out)
    assert [e.data for e in peer.events()] == [text]  # type: ignore[attr-defined]


def test_decompression_bomb_stops_at_the_limit() -> None:
    _, extensions = negotiate_extensions(["permessage-deflate"], True)
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"\0" * 10_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = payload[:-4]  # RFC 7692 §7.2.1: the trailing 00 00 ff ff is removed
    assert len(payload) < 20_000
    core = WSConnection(0.0, max_size=1_000_000, extensions=extensions)
    events = core.receive_data(masked(2, payload, rsv=4))
    assert describe(events) == [("ConnectionFailed", 1009)]


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, "1000"])
def test_app_close_code_that_may_not_be_sent(code: object) -> None:
    with pytest.raises(LocalProtocolError):
        WSConnection(0.0).send_close(0.0, code, "")  # type: ignore[arg-type]


def test_close_reason_too_long() -> None:
    with pytest.raises(LocalProtocolError):
        WSConnection(0.0).send_close(0.0, 1000, "é" * 62)


def test_send_after_close_is_refused() -> None:
    core = WSConnection(0.0)
    core.receive_data(masked(8, b""))
    with pytest.raises(LocalProtocolError):
        core.send_text("late")


# -- time -----------------------------------------------------------------------------------------------


def test_keepalive_ping_pong_and_timeout() -> None:
    core = WSConnection(100.0, ping_interval=20.0, ping_timeout=5.0)
    assert core.next_deadline() == 120.0
    assert core.on_timer(119.0) == [] and core.data_to_send() == b""
    assert core.on_timer(120.0) == []
    peer = client()
    peer.receive_data(core.data_to_send())
    (ping,) = peer.events()
    assert isinstance(ping, Ping)
    assert core.next_deadline() == 125.0  # the pong is due
    core.receive_data(peer.send(ping.response()))
    assert core.next_deadline() == 140.0  # answered: the next ping after the interval
    assert core.on_timer(140.0) == []
    assert core.next_deadline() == 145.0
    (failed,) = core.on_timer(145.0)  # not answered in time
    assert isinstance(failed, ConnectionFailed) and failed.code == 1011
    assert core.close_transport
    peer.receive_data(core.data_to_send())
    closes = [e for e in peer.events() if isinstance(e, CloseConnection)]
    assert closes[0].code == CloseReason.INTERNAL_ERROR
    assert core.next_deadline() is None


def test_keepalive_disabled() -> None:
    assert WSConnection(0.0, ping_interval=None).next_deadline() is None
    core = WSConnection(0.0, ping_interval=1.0, ping_timeout=None)
    core.on_timer(1.0)
    assert core.data_to_send()  # a ping, but no deadline for its pong
    assert core.next_deadline() == 2.0


def test_closing_handshake_timeout() -> None:
    core = WSConnection(0.0, ping_interval=None, close_timeout=3.0)
    core.send_close(10.0, 1000)
    assert core.next_deadline() == 13.0
    assert core.on_timer(12.0) == []
    (failed,) = core.on_timer(13.0)
    assert isinstance(failed, ConnectionFailed) and failed.code == 1006
    assert core.close_transport


def test_closing_handshake_completed_by_the_client() -> None:
    core = WSConnection(0.0, ping_interval=None)
    core.send_close(0.0, 4000, "bye")
    core.data_to_send()
    assert describe(core.receive_data(masked(8, struct.pack("!H", 4000)))) == [("CloseReceived", 4000)]
    assert core.close_transport and core.data_to_send() == b""  # no second close frame


def test_defaults_match_the_configuration() -> None:
    assert ws.DEFAULT_MAX_SIZE == config_module.DEFAULT_WS_MAX_SIZE
    assert ws.DEFAULT_MAX_QUEUE == config_module.DEFAULT_WS_MAX_QUEUE
    assert ws.DEFAULT_PING_INTERVAL == config_module.DEFAULT_WS_PING_INTERVAL
    assert ws.DEFAULT_PING_TIMEOUT == config_module.DEFAULT_WS_PING_TIMEOUT
    assert ws.DEFAULT_CLOSE_TIMEOUT == config_module.DEFAULT_WS_CLOSE_TIMEOUT


# -- the ASGI adapter, against a fake channel ------------------------------------------------------------


class FakeChannel:
    def __init__(self) -> None:
        self.write_paused = False
        self.calls: list[tuple[object, ...]] = []

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        if subprotocol == "bad value":
            raise LocalProtocolError("invalid websocket subprotocol")
        self.calls.append(("accept", subprotocol, headers))

    def deny(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.calls.append(("deny", status, headers))

    def deny_body(self, body: bytes, more: bool) -> None:
        self.calls.append(("deny_body", body, more))

    def send_message(self, data: str | bytes) -> None:
        self.calls.append(("send", data))

    async def drain(self) -> None:
        self.calls.append(("drain",))

    def close(self, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def pause_reading(self) -> None:
        self.calls.append(("pause",))

    def resume_reading(self) -> None:
        self.calls.append(("resume",))

    def session_done(self, session: object) -> None:
        self.calls.append(("done",))

    def app_error(self, session: object, message: str, exc: BaseException | None) -> None:
        self.calls.append(("error", message))


def session(max_queue: int = 4) -> tuple[WebSocketSession, FakeChannel]:
    channel = FakeChannel()
    return WebSocketSession(channel, {"type": "websocket"}, max_queue, 1 << 20), channel


def test_session_lifecycle() -> None:
    async def main() -> None:
        s, channel = session()
        assert await s.receive() == {"type": "websocket.connect"}
        await s.send({"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x", b"1")]})
        assert s.state is SessionState.CONNECTED
        s.message("hi")
        s.message(b"\x00")
        assert await s.receive() == {"type": "websocket.receive", "text": "hi"}
        assert await s.receive() == {"type": "websocket.receive", "bytes": b"\x00"}
        await s.send({"type": "websocket.send", "text": "yo"})
        await s.send({"type": "websocket.send", "bytes": bytearray(b"ab")})
        s.closed(4000, "client left")
        for _ in range(2):  # every later call answers the same
            assert await s.receive() == {
                "type": "websocket.disconnect",
                "code": 4000,
                "reason": "client left",
            }
        with pytest.raises(OSError):
            await s.send({"type": "websocket.send", "text": "late"})
        await s.send({"type": "websocket.close"})  # closing what is closed: harmless
        assert channel.calls == [("accept", "chat", [(b"x", b"1")]), ("send", "yo"), ("send", b"ab")]

    asyncio.run(main())


def test_session_backpressure_on_reading() -> None:
    async def main() -> None:
        s, channel = session(max_queue=4)
        await s.receive()
        await s.send({"type": "websocket.accept"})
        for i in range(4):
            s.message(str(i))
        assert channel.calls[-1] == ("pause",)
        await s.receive()
        assert channel.calls[-1] == ("pause",)  # more than half full
        await s.receive()
        assert channel.calls[-1] == ("resume",)  # half empty: read again

    asyncio.run(main())


def test_session_waits_for_a_slow_client() -> None:
    async def main() -> None:
        s, channel = session()
        await s.receive()
        await s.send({"type": "websocket.accept"})
        channel.write_paused = True
        await s.send({"type": "websocket.send", "text": "x"})
        assert channel.calls[-2:] == [("send", "x"), ("drain",)]

    asyncio.run(main())


def test_session_close_before_accept_is_a_403() -> None:
    async def main() -> None:
        s, channel = session()
        await s.receive()
        await s.send({"type": "websocket.close", "code": 1008})
        assert channel.calls == [("deny", 403, [(b"content-length", b"0")]), ("deny_body", b"", False)]
        assert await s.receive() == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        with pytest.raises(LocalProtocolError):
            await s.send({"type": "websocket.send", "text": "x"})

    asyncio.run(main())


def test_session_denial_response() -> None:
    async def main() -> None:
        s, channel = session()
        await s.receive()
        await s.send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"a", b"b")]})
        with pytest.raises(LocalProtocolError):
            await s.send({"type": "websocket.accept"})
        await s.send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await s.send({"type": "websocket.http.response.body", "body": b"pe"})
        assert channel.calls == [
            ("deny", 401, [(b"a", b"b")]),
            ("deny_body", b"no", True),
            ("deny_body", b"pe", False),
        ]
        assert s.state is SessionState.CLOSED

    asyncio.run(main())


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.send", "text": "before the accept"},
        {"type": "websocket.http.response.start", "status": 101},
        {"type": "websocket.http.response.start", "status": "200"},
        {"type": "websocket.accept", "subprotocol": "bad value"},
        {"no type": 1},
    ],
)
def test_session_refuses_bad_messages_before_the_accept(message: dict[str, object]) -> None:
    async def main() -> None:
        s, _ = session()
        await s.receive()
        with pytest.raises(LocalProtocolError):
            await s.send(message)
        assert s.state is SessionState.CONNECTING  # still unanswered: the server can send its 500

    asyncio.run(main())


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.send"},
        {"type": "websocket.send", "bytes": "text in bytes"},
        {"type": "websocket.close", "code": "1000"},
        {"type": "websocket.accept"},
    ],
)
def test_session_refuses_bad_messages_after_the_accept(message: dict[str, object]) -> None:
    async def main() -> None:
        s, _ = session()
        await s.receive()
        await s.send({"type": "websocket.accept"})
        with pytest.raises(LocalProtocolError):
            await s.send(message)

    asyncio.run(main())


def test_session_app_close_then_receive() -> None:
    async def main() -> None:
        s, channel = session()
        await s.receive()
        await s.send({"type": "websocket.accept"})
        s.message("queued before the close")
        await s.send({"type": "websocket.close", "code": 4001, "reason": "bye"})
        s.message("dropped: after the close")
        assert await s.receive() == {"type": "websocket.receive", "text": "queued before the close"}
        assert await s.receive() == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
        await s.send({"type": "websocket.close"})  # a second close is harmless
        with pytest.raises(LocalProtocolError):
            await s.send({"type": "websocket.send", "text": "after the close"})
        assert ("close", 4001, "bye") in channel.calls

    asyncio.run(main())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 16383, 16384, 65535, 65536, 100_000])
def test_message_frame_round_trips(size: int) -> None:
    core = WSConnection(0.0)
    peer = client()
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    text = "é" * (size // 2)
    peer.receive_data(b"".join(core.message_frame(data)) + b"".join(core.message_frame(text)))
    events = list(peer.events())
    assert isinstance(events[0], WsprotoBytes) and events[0].data == data
    assert isinstance(events[1], WsprotoText) and events[1].data == text


def test_message_frame_compressed_and_after_close() -> None:
    header, extensions = negotiate_extensions(["permessage-deflate"], True)
    assert header is not None
    deflate = PerMessageDeflate()
    deflate.finalize(header.decode())
    peer = Connection(ConnectionType.CLIENT, extensions=[deflate])
    core = WSConnection(0.0, extensions=extensions)
    parts = core.message_frame("z" * 100_000)
    assert sum(map(len, parts)) < 1000  # compressed by the library
    peer.receive_data(b"".join(parts))
    assert [e.data for e in peer.events()] == ["z" * 100_000]  # type: ignore[attr-defined]
    core.send_close(0.0)
    with pytest.raises(LocalProtocolError):
        core.message_frame(b"late")
