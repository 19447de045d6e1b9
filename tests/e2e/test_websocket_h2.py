"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT), end to end with the h2 library as client.

The frames inside the stream are built and read here (client frames masked, RFC 6455 §5.3); the server
side is the same WSProtocol and WebSocketSession as over HTTP/1.1, so these tests hold what differs: the
SETTINGS, the handshake (no key, 200 not 101), the tunnel's DATA, denials and errors as HTTP/2 responses,
and the stream's end.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from tests.conftest import TricornProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


OPEN: list[Client] = []


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    proc = TricornProcess(["tests.apps.ws_apps:app", "--ws-max-size", "65536"]).wait_ready()
    yield proc
    proc.close()


def mask_frame(payload: bytes, opcode: int = 1, fin: bool = True, rsv1: bool = False) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if len(payload) < 126:
        head = bytes([first, 0x80 | len(payload)])
    elif len(payload) < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", len(payload))
    return head + key + masked


def read_frames(data: bytearray) -> list[tuple[int, bytes]]:
    """Whole unmasked server frames taken off the front of ``data``."""
    frames = []
    while len(data) >= 2:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if length == 126:
            if len(data) < 4:
                break
            length, offset = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            if len(data) < 10:
                break
            length, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + length:
            break
        frames.append((opcode | (data[0] & 0x40), bytes(data[offset : offset + length])))
        del data[: offset + length]
    return frames


class Client:
    """An HTTP/2 client connection that opens WebSocket streams."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        OPEN.append(self)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.data: dict[int, bytearray] = {}
        self.responses: dict[int, list[tuple[bytes, bytes]]] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        while self.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) != 1:
            assert self.pump(), "connection closed before the server's SETTINGS"

    def pump(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        for event in self.conn.receive_data(chunk):
            if isinstance(event, h2.events.ResponseReceived):
                self.responses[event.stream_id] = event.headers
            elif isinstance(event, h2.events.DataReceived):
                self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.reset[event.stream_id] = event.error_code
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)
        return True

    def open(self, path: str, extra: list[tuple[str, str]] | None = None) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("sec-websocket-version", "13"),
            *(extra or []),
        ]
        self.conn.send_headers(stream_id, headers)
        self.sock.sendall(self.conn.data_to_send())
        while stream_id not in self.responses and stream_id not in self.reset:
            assert self.pump(), "connection closed before the response"
        return stream_id

    def status(self, stream_id: int) -> int:
        return int(dict(self.responses[stream_id])[b":status"])

    def send(self, stream_id: int, frame: bytes) -> None:
        """``frame`` as DATA, in pieces the frame size and the windows allow."""
        while frame:
            window = self.conn.local_flow_control_window(stream_id)
            if window <= 0:
                assert self.pump(), "connection closed"
                continue
            size = min(window, self.conn.max_outbound_frame_size, len(frame))
            self.conn.send_data(stream_id, frame[:size])
            self.sock.sendall(self.conn.data_to_send())
            frame = frame[size:]

    def frames(self, stream_id: int, count: int) -> list[tuple[int, bytes]]:
        got: list[tuple[int, bytes]] = []
        buffer = self.data.setdefault(stream_id, bytearray())
        while True:
            got += read_frames(buffer)
            if len(got) >= count or stream_id in self.ended:
                return got
            assert self.pump(), "connection closed"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_settings_announce_extended_connect(server: TricornProcess) -> None:
    client = Client(server.port)
    assert client.conn.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
    client.close()


def test_echo_over_h2_and_other_streams_served_beside_it(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/echo")
    assert client.status(ws) == 200
    headers = dict(client.responses[ws])
    assert b"sec-websocket-accept" not in headers  # RFC 8441 §5
    client.send(ws, mask_frame(b"hello over h2"))
    assert client.frames(ws, 1) == [(1, b"hello over h2")]
    # A second WebSocket on the same connection, and a big binary message (several DATA frames).
    ws2 = client.open("/echo")
    big = os.urandom(60000)
    client.send(ws2, mask_frame(big, opcode=2))
    assert client.frames(ws2, 1) == [(2, big)]
    client.send(ws, mask_frame(b"\x03\xe8", opcode=8))
    frames = client.frames(ws, 1)
    assert frames[0][0] == 8 and frames[0][1][:2] == b"\x03\xe8"
    while ws not in client.ended:
        assert client.pump()
    client.close()


def test_scope_over_h2(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/scope?x=1", [("sec-websocket-protocol", "chat")])
    (_, payload), *_ = client.frames(ws, 1)
    scope: dict[str, Any] = json.loads(payload)
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope" and scope["query_string"] == "x=1"
    assert scope["subprotocols"] == ["chat"]
    assert ["host", "localhost"] in scope["headers"]
    client.close()


def test_subprotocol_chosen(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/subprotocol", [("sec-websocket-protocol", "a, b")])
    assert dict(client.responses[ws])[b"sec-websocket-protocol"] == b"b"
    client.close()


def test_permessage_deflate_over_h2(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/echo", [("sec-websocket-extensions", "permessage-deflate")])
    assert b"permessage-deflate" in dict(client.responses[ws])[b"sec-websocket-extensions"]
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"squeeze me " * 100) + compressor.flush(zlib.Z_SYNC_FLUSH)
    client.send(ws, mask_frame(payload[:-4], rsv1=True))
    (opcode, data), *_ = client.frames(ws, 1)
    assert opcode & 0x40  # compressed
    assert zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff") == b"squeeze me " * 100
    client.close()


def test_denial_is_an_http2_response(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/deny")
    assert client.status(ws) == 401
    while ws not in client.ended:
        assert client.pump()
    assert bytes(client.data[ws]) == b"go away"
    # The connection serves on.
    ws2 = client.open("/echo")
    assert client.status(ws2) == 200
    client.close()


def test_app_error_before_accept_is_500_and_missing_version_is_refused(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/error-before-accept")
    assert client.status(ws) == 500
    stream_id = client.conn.get_next_available_stream_id()
    client.conn.send_headers(
        stream_id,
        [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", "/echo"),
            (":authority", "x"),
        ],
    )
    client.sock.sendall(client.conn.data_to_send())
    while stream_id not in client.responses:
        assert client.pump()
    assert client.status(stream_id) == 426
    client.close()


def test_message_over_the_size_limit_closes_1009(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/echo")
    client.send(ws, mask_frame(b"x" * 70000, opcode=2))
    frames = client.frames(ws, 1)
    assert frames[0][0] == 8 and struct.unpack("!H", frames[0][1][:2])[0] == 1009
    client.close()


def test_client_reset_ends_the_session(server: TricornProcess) -> None:
    client = Client(server.port)
    ws = client.open("/echo")
    client.conn.reset_stream(ws)
    client.sock.sendall(client.conn.data_to_send())
    ws2 = client.open("/echo")
    client.send(ws2, mask_frame(b"still here"))
    assert client.frames(ws2, 1) == [(1, b"still here")]
    client.close()
