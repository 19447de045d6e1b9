"""An HTTP/3 client for the tests, on aioquic's client (QuicConnectionProtocol and H3Connection).

``async with H3Client(port, cafile) as client:`` then ``await client.request("GET", "/")``, which returns an
:class:`H3Response` (status, headers, body, trailers, informational responses, the stream's reset code).
Lower-level pieces let a test misbehave: ``open_stream`` sends a head and leaves the stream open,
``send_raw`` writes bytes of its own on a stream, ``reset`` resets one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioquic._buffer import Buffer, BufferReadError
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

Headers = list[tuple[bytes, bytes]]


@dataclass
class H3Response:
    status: int = 0
    headers: Headers = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    trailers: Headers = field(default_factory=list)
    informational: list[tuple[int, Headers]] = field(default_factory=list)
    reset_code: int | None = None  # RESET_STREAM from the server
    stop_code: int | None = None  # STOP_SENDING from the server
    done: asyncio.Event = field(default_factory=asyncio.Event)
    chunks: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    @property
    def body(self) -> bytes:
        return bytes(self.received)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class _H3(H3Connection):
    """aioquic's client H3Connection, which also reads GOAWAY (aioquic drops its payload): the server's
    control stream is read a second time here, frame by frame."""

    goaway: int | None = None
    _control = b""

    def handle_event(self, event: QuicEvent) -> list[Any]:
        if isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self._read_control(event.stream_id, event.data)
        return super().handle_event(event)

    def _read_control(self, stream_id: int, data: bytes) -> None:
        if stream_id != self._peer_control_stream_id and self._peer_control_stream_id is not None:
            return
        self._control += data
        buf = Buffer(data=self._control)
        try:
            if buf.pull_uint_var() != 0:  # not the control stream (QPACK's)
                return
            while True:  # (the whole stream again each time: it is a few small frames)
                frame_type, length = buf.pull_uint_var(), buf.pull_uint_var()
                payload = buf.pull_bytes(length)
                if frame_type == FrameType.GOAWAY:
                    self.goaway = Buffer(data=payload).pull_uint_var()
        except BufferReadError:
            pass  # (a frame not complete yet)


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = _H3(self._quic)
        self.responses: dict[int, H3Response] = {}
        self.terminated: ConnectionTerminated | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for response in self.responses.values():
                response.done.set()
        elif isinstance(event, StreamReset):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.reset_code = event.error_code
                response.done.set()
        elif isinstance(event, StopSendingReceived):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.stop_code = event.error_code
        for h3_event in self.h3.handle_event(event):
            response = self.responses.get(getattr(h3_event, "stream_id", -1))
            if response is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                status_values = [v for k, v in h3_event.headers if k == b":status"]
                if status_values and int(status_values[0]) < 200:
                    response.informational.append((int(status_values[0]), h3_event.headers))
                elif response.status == 0:
                    response.status = int(status_values[0])
                    response.headers = h3_event.headers
                else:
                    response.trailers = h3_event.headers
            elif isinstance(h3_event, DataReceived):
                response.received += h3_event.data
                if h3_event.data:
                    response.chunks.put_nowait(h3_event.data)
            if getattr(h3_event, "stream_ended", False):
                response.done.set()


class H3Client:
    """One QUIC connection to a server on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        port: int,
        cafile: str,
        host: str = "127.0.0.1",
        authority: str = "localhost",
        idle_timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.host = host
        self.authority = authority
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, idle_timeout=idle_timeout)
        configuration.load_verify_locations(cafile)
        configuration.server_name = "localhost"
        self.configuration = configuration
        self._transport: Any = None
        self.protocol: _Protocol = None  # type: ignore[assignment]

    async def __aenter__(self) -> H3Client:
        # (aioquic's connect() is an async generator: one left unfinished by a vanished client would be
        # finalised after the loop is gone; the same steps by hand.)
        loop = asyncio.get_running_loop()
        connection = QuicConnection(configuration=self.configuration)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        self._transport, self.protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(connection), sock=sock
        )
        self.protocol.connect((self.host, self.port))
        await asyncio.wait_for(self.protocol.wait_connected(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.protocol.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.protocol.wait_closed(), 5)
        self._transport.close()

    def vanish(self) -> None:
        """Stop at once without a word: the socket closes, the server hears nothing more."""
        self.protocol._quic._close_pending = False
        timer = self.protocol._timer
        if timer is not None:
            timer.cancel()
        self._transport.close()

    # -- requests
    def open_stream(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        end_stream: bool = False,
        pseudo: Sequence[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, H3Response]:
        protocol = self.protocol
        stream_id = protocol._quic.get_next_available_stream_id()
        response = H3Response()
        protocol.responses[stream_id] = response
        head = (
            list(pseudo)
            if pseudo is not None
            else [
                (b":method", method.encode()),
                (b":scheme", b"https"),
                (b":authority", self.authority.encode()),
                (b":path", path.encode()),
            ]
        )
        protocol.h3.send_headers(stream_id, head + list(headers), end_stream=end_stream)
        protocol.transmit()
        return stream_id, response

    def send(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.protocol.h3.send_data(stream_id, data, end_stream)
        self.protocol.transmit()

    def send_trailers(self, stream_id: int, trailers: Headers) -> None:
        self.protocol.h3.send_headers(stream_id, trailers, end_stream=True)
        self.protocol.transmit()

    def send_raw(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self.protocol._quic.send_stream_data(stream_id, data, end_stream)
        self.protocol.transmit()

    def reset(self, stream_id: int, code: int = 0x10C) -> None:
        """RESET_STREAM and STOP_SENDING (H3_REQUEST_CANCELLED by default)."""
        quic = self.protocol._quic
        quic.reset_stream(stream_id, code)
        quic.stop_stream(stream_id, code)
        self.protocol.transmit()

    @property
    def goaway(self) -> int | None:
        """The stream id of the server's last GOAWAY (new requests belong on a new connection), or None."""
        return self.protocol.h3.goaway

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        body: bytes | AsyncIterator[bytes] | None = None,
        trailers: Headers | None = None,
        timeout: float = 30.0,
    ) -> H3Response:
        if self.protocol.terminated is not None:
            raise ConnectionError(f"the connection is closed ({self.protocol.terminated})")
        bodiless = body is None and trailers is None
        stream_id, response = self.open_stream(method, path, headers, end_stream=bodiless)
        if isinstance(body, bytes):
            await self._send_body(stream_id, body, trailers is None)
        elif body is not None:
            async for part in body:
                await self._send_body(stream_id, part, False)
            if trailers is None:
                self.send(stream_id, b"", end_stream=True)
        if trailers is not None:
            self.send_trailers(stream_id, trailers)
        await asyncio.wait_for(response.done.wait(), timeout)
        return response

    async def _send_body(self, stream_id: int, data: bytes, end: bool) -> None:
        # aioquic buffers whatever is given: feed it in pieces so the server's credit paces the upload.
        step = 65536
        for start in range(0, max(len(data), 1), step):
            piece = data[start : start + step]
            last = start + step >= len(data)
            self.send(stream_id, piece, end_stream=end and last)
            await self.wait_sendable(stream_id)

    async def wait_sendable(self, stream_id: int, limit: int = 1024 * 1024) -> None:
        quic = self.protocol._quic
        for _ in range(10000):
            stream = quic._streams.get(stream_id)
            if stream is None or len(stream.sender._buffer) < limit:
                return
            await asyncio.sleep(0.002)


def cafile_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile)
