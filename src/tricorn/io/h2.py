"""The asyncio shell for HTTP/2: one :class:`H2Protocol` per connection, one :class:`H2Stream` per request.

Theory of operation
-------------------
:class:`tricorn.proto.h2conn.H2Connection` is the connection's sans-io core: bytes in, events out; calls
in, bytes to send. This module moves bytes between it and the transport and turns its events into the
same per-request calls the HTTP/1.1 shell makes (``feed_body``, ``end_body``, ``disconnect``), so the
ASGI and WSGI cycles serve HTTP/2 streams unchanged: each :class:`H2Stream` is the
:class:`~tricorn.interfaces.stream.Stream` of one request.

- **Writes** go through the core's output buffer; one flush per loop turn writes whatever every stream
  produced in it (ten concurrent "hello" streams: one write, not ten).
- **Flow control, receiving**: the connection window is opened at start to hold every stream's window, so
  a stream whose app does not read can never starve the others; a stream's window reopens as its body is
  handed on, and stops reopening while its cycle has asked to pause (a slow app holds at most about
  HIGH_WATER plus one window of body).
- **Flow control, sending**: a stream sends what its window and the connection's allow, keeps the rest
  (one body part at most, as ``write_paused`` holds the app until it is sent) and sends it as
  WINDOW_UPDATE frames arrive. A stream whose peer stops reading holds its cycle, never the connection.
- **Hostile peers**: the core enforces framing, HPACK and field rules (RFC 9113 §8.2, §8.3), resetting
  the stream or closing the connection with the error code the RFC asks for. This shell adds what it does not bound: streams reset by
  the client faster than they can be served (CVE-2023-44487), floods of control frames, and a client that
  stops reading while it makes the server answer (PING, SETTINGS). Each ends the connection with GOAWAY
  ENHANCE_YOUR_CALM and one log line.
- **Deadlines**: a stream whose app waits on its client (for body bytes, or for window to send more) keeps
  its own read and send deadlines; the connection's ``deadline`` is the earliest of them (the keep-alive
  deadline once no stream is left). On expiry the stream alone gets 408 (nothing of its response sent) or
  RST_STREAM CANCEL, and the connection serves on; a connection the client does not read at all is closed.
- **Shutdown**: GOAWAY with the last stream id taken; streams in flight finish, later ones are refused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tricorn.errors import ClientTimeout, LocalProtocolError, RemoteProtocolError
from tricorn.interfaces.stream import RESPONSE_DONE
from tricorn.io.flow import WriteFlow
from tricorn.io.mux import INF, MuxProtocol, MuxStream, error_head
from tricorn.io.runner import AppRunner
from tricorn.proto.h1 import Request
from tricorn.proto.h2 import request_from_headers
from tricorn.proto.h2conn import (
    ConnectionTerminated,
    DataReceived,
    ErrorCode,
    H2Connection,
    H2ConnectionError,
    PingAckReceived,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

if TYPE_CHECKING:
    from tricorn.io.server import ServerState
    from tricorn.io.tls import TLSInfo
    from tricorn.proto.forwarded import AllowList

error_log = logging.getLogger("tricorn.error")

# Seconds a closing connection waits: for the client to see a first GOAWAY before the final one, and for
# a client that caused a connection error to stop sending before the socket closes (nginx lingering_time
# is 30 s, lingering_timeout 5 s: an answer to a client that misbehaves need not wait that long).
LINGER = 1.0
# ... and at most this much of what it sends meanwhile is read (a flood is not read to its end). A flood is
# stopped after the read that takes it over CONTROL_BUDGET, as little as 17 KB into it when reads are
# small; what the client had in flight beyond that must still be drained for the GOAWAY to reach it
# (test_http2_hostile: 340 KB of PINGs). Reading and dropping 1 MiB costs about a millisecond.
LINGER_BYTES = 1024 * 1024
_DRAIN_PING = b"tricorn\x00"

# Control frames (PING, SETTINGS, PRIORITY, WINDOW_UPDATE without data waiting, empty DATA, RST_STREAM)
# a client may send in one second. Real clients send a handful; a flood makes the server spend CPU and
# queue answers (CVE-2019-9512/9515/9518 class). nginx and h2o bound the same frames.
CONTROL_BUDGET = 1000
# Bytes the server may have queued for a client that does not read before it stops serving it (answers
# to PING and SETTINGS pile up otherwise).
OUTPUT_LIMIT = 4 * 1024 * 1024


class H2Stream(MuxStream):
    """One request on an HTTP/2 connection: the Stream its cycle answers through."""

    __slots__ = ("bodiless", "conn", "outbuf", "outbuf_end", "pending_trailers", "unacked")

    def __init__(self, proto: H2Protocol, stream_id: int) -> None:
        MuxStream.__init__(self, proto, stream_id)
        self.conn = proto.conn
        self.outbuf = b""  # body bytes the windows did not let out yet
        self.outbuf_end = False  # ... and whether END_STREAM follows them
        self.pending_trailers: list[tuple[bytes, bytes]] | None = None  # sent once outbuf is out
        self.unacked = 0  # flow-controlled bytes received and not yet given back to the peer
        self.bodiless = False  # a GET or HEAD: no body worth asking the client to stop

    # -- what the cycle reads (and io/mux.py's MuxStream)
    @property
    def write_paused(self) -> bool:
        return bool(self.outbuf) or self.proto.write_paused

    # -- the frames (io/mux.py's hooks)
    def send_head(self, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.conn.send_headers(self.id, fields, end_stream=end)

    def send_body(self, data: bytes, end: bool) -> None:
        if self.outbuf:  # (behind what the windows hold back)
            self.outbuf += data
            self.outbuf_end = end
        else:
            self._send(data, end)

    def send_response(self, fields: list[tuple[bytes, bytes]], data: bytes, end: bool) -> None:
        if not self.conn.send_response(self.id, fields, data, end):  # (the head and, if it fits, the body)
            self._send(data, end)

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        if self.outbuf:
            self.pending_trailers = fields  # (sent by window_opened once the body is out)
        else:
            self.conn.send_headers(self.id, fields, end_stream=True)
            self.proto.schedule_flush()

    def schedule_send(self) -> None:
        self.proto.schedule_flush()

    def _send(self, data: bytes, end: bool) -> None:
        """Send what the windows allow of ``data``; keep the rest in ``outbuf``."""
        conn = self.conn
        stream_id = self.id
        while data:
            window = conn.local_flow_control_window(stream_id)
            if window <= 0:
                break
            size = min(window, conn.max_outbound_frame_size, len(data))
            if size == len(data):
                conn.send_data(stream_id, data, end_stream=end)
                self.outbuf = b""
                return
            conn.send_data(stream_id, data[:size])
            data = data[size:]
        if data:
            self.outbuf = data
            self.outbuf_end = end
        else:
            self.outbuf = b""
            if end:
                conn.end_stream(stream_id)

    def window_opened(self) -> None:
        if self.outbuf and not self.reset:
            self._send(self.outbuf, self.outbuf_end)
            if not self.outbuf:
                self.wake()
                trailers = self.pending_trailers
                if trailers is not None:
                    self.pending_trailers = None
                    self.conn.send_headers(self.id, trailers, end_stream=True)
                tunnel = self.tunnel
                if tunnel is not None:
                    tunnel.resume_writing()
                    if self.outbuf_end:
                        self.proto.stream_done(self)
                cycle = self.cycle
                if cycle is not None and cycle.state is RESPONSE_DONE:
                    if not self.ended:
                        self.proto.stop_after_response(self)  # (held back while the response went out)
                    self.proto.stream_done(self)

    # -- Stream calls (the response itself: io/mux.py)
    async def drain(self) -> None:
        while self.write_paused and not self.reset:
            if self.outbuf:
                waiter = self.waiter
                if waiter is None or waiter.done():
                    waiter = self.waiter = self.proto.state.loop.create_future()
                await waiter
            else:
                await self.proto.drain()

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self.unacked and not self.reset:
            unacked, self.unacked = self.unacked, 0
            self.conn.acknowledge_received_data(unacked, self.id)
            self.proto.schedule_flush()

    # -- a WebSocket tunnel (io/ws.py H2Tunnel; its head: io/mux.py)
    def tunnel_write(self, data: bytes) -> None:
        if self.reset:
            return
        if self.outbuf:
            self.outbuf += data
        else:
            self._send(data, False)
        self.proto.schedule_flush()
        if self.outbuf and self.tunnel is not None:
            self.tunnel.pause_writing()

    def tunnel_close(self) -> None:
        """The WebSocket is done with the stream: END_STREAM after what is queued, then it is gone."""
        proto = self.proto
        if not self.reset:
            if self.outbuf:
                self.outbuf_end = True
            else:
                self.conn.end_stream(self.id)  # (a no-op if a response already ended it)
                proto.schedule_flush()
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel = None
            proto.state.loop.call_soon(tunnel.connection_lost, None)
        if not self.outbuf:
            proto.stream_done(self)

    # -- events from the connection
    def data(self, data: bytes, flow_controlled: int) -> None:
        self.received += len(data)
        proto = self.proto
        limit = proto.state.limits.body
        if limit is not None and self.received > limit:
            proto.refuse_stream(self, RemoteProtocolError("request body too large", status=413))
            return
        if self.reading_paused:
            self.unacked += flow_controlled
        elif flow_controlled:
            self.conn.acknowledge_received_data(flow_controlled, self.id)
        cycle = self.cycle
        if cycle is not None and data:
            cycle.feed_body(data)
        elif self.tunnel is not None and data:
            self.tunnel.data_received(data)

    def gone(self, reason: ClientTimeout | None = None) -> None:
        self.outbuf = b""  # (nothing more goes out)
        MuxStream.gone(self, reason)


class H2Protocol(MuxProtocol, WriteFlow, asyncio.Protocol):
    """One HTTP/2 connection (see the module docstring)."""

    protocol_label = "h2"  # its kind among the open connections (io/metrics.py)
    APP_FAILED = ErrorCode.INTERNAL_ERROR  # (io/mux.py: the codes of what it decides)
    CANCELLED = ErrorCode.CANCEL
    STOPPED = ErrorCode.NO_ERROR
    __slots__ = (
        "_drain_waiter",
        "client",
        "closed",
        "closing",
        "conn",
        "control_count",
        "control_window",
        "deadline",
        "drain_timer",
        "flush_handle",
        "last_head",
        "last_request",
        "last_stream_id",
        "linger",
        "proxy_trust",
        "runner",
        "scheme",
        "scope_base",
        "server",
        "state",
        "streams",
        "tls",
        "transport",
        "write_paused",
        "wsgi_environ",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.conn = H2Connection(
            max_concurrent_streams=state.h2_max_streams,
            initial_window_size=state.h2_window,
            max_frame_size=state.h2_max_frame_size,
            max_header_list_size=state.h2_max_header_list_size,
            connect_protocol=bool(state.h2_connect_protocols),  # WebSocket over HTTP/2 (RFC 8441 §3)
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.streams: dict[int, H2Stream] = {}
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closing = False  # GOAWAY sent: no new streams
        self.closed = False
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.runner = AppRunner(state.loop)
        self.flush_handle: asyncio.Handle | None = None
        self.deadline = 0.0
        self.last_stream_id = 0
        self.last_head: list[tuple[bytes, bytes]] | None = None  # the request head parsed last, and the
        self.last_request: Request | None = None  # request made of it (given again for the same head)
        self.drain_timer: asyncio.TimerHandle | None = None
        self.linger: int | None = None  # bytes still read and dropped while closing after an error
        self.wsgi_environ: Any = None  # the WSGI adapter's per-connection environ
        self.scope_base: Any = None  # what its ASGI scopes share (interfaces/asgi.py build_scope)
        self.tls: TLSInfo | None = None  # the ASGI tls extension, on a TLS connection
        self.proxy_trust: AllowList | None = None  # set by the H1Protocol that hands over
        self.reset_count = 0
        self.reset_window = 0.0
        self.control_count = 0
        self.control_window = 0.0

    # -- starting: by ALPN, by the prior-knowledge preface, or by an HTTP/1.1 Upgrade: h2c
    def start(
        self,
        transport: asyncio.Transport,
        client: tuple[str, int] | None,
        server: tuple[str, int] | None,
        scheme: str,
        upgrade: tuple[Request, bytes] | None = None,
    ) -> None:
        self.transport = transport
        self.client = client
        self.server = server
        self.scheme = scheme
        state = self.state
        state.connections.add(self)
        conn = self.conn
        if upgrade is not None:
            request, settings_header = upgrade
            try:
                conn.initiate_upgrade_connection(settings_header)
            except H2ConnectionError as exc:  # (io/h1.py checked the header before answering 101)
                self._protocol_error(exc)
                return
        else:
            conn.initiate_connection()
        # Room in the connection window for every stream's whole window (see the module docstring).
        extra = state.h2_max_streams * state.h2_window
        conn.increment_flow_control_window(extra)
        self.deadline = state.loop.time() + state.timeout_request_header
        if state.shutting_down:
            self.shutdown()
        self.flush()
        if upgrade is not None:
            # RFC 9113 §3.2 (RFC 7540 §3.2): the upgraded request is stream 1, half-closed (remote).
            stream = H2Stream(self, 1)
            self.streams[1] = stream
            self.last_stream_id = 1
            stream.ended = True
            request.http_version = "2"  # asked in HTTP/1.1, answered in HTTP/2
            request.upgrade = None  # (its Upgrade: h2c is done with)
            self._start_stream(stream, request)
            if stream.cycle is not None:
                stream.cycle.end_body()

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover - see start()
        raise RuntimeError("H2Protocol is started by its connection's first protocol")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.runner.close()
        self.state.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.gone()
        self.streams.clear()
        self.release_drain()
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        super().pause_writing()
        for stream in self.streams.values():
            if stream.tunnel is not None:
                stream.tunnel.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        for stream in list(self.streams.values()):
            if stream.tunnel is not None and not stream.outbuf:
                stream.tunnel.resume_writing()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            if self.linger is not None:  # closing after an error: the client's bytes are read and dropped
                self.linger -= len(data)
                if self.linger < 0:
                    self.linger = None
                    self.transport.close()
            return
        try:
            events = self.conn.receive_data(data)
        except H2ConnectionError as exc:
            self._protocol_error(exc)
            return
        for event in events:
            kind = type(event)
            if kind is RequestReceived:
                self._request(event)  # type: ignore[arg-type]
            elif kind is DataReceived:
                stream = self.streams.get(event.stream_id)  # type: ignore[union-attr]
                if stream is not None:
                    stream.data(event.data, event.flow_controlled_length)  # type: ignore[union-attr]
                    if event.end_stream:  # type: ignore[union-attr]
                        stream.end()
                else:  # a stream whose response is done: nobody reads the rest of its body
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)  # type: ignore[union-attr]
                if not event.data:  # type: ignore[union-attr]
                    self._control()
            elif kind is WindowUpdated:
                self._window_updated(event.stream_id)  # type: ignore[union-attr]
            elif kind is TrailersReceived:
                stream = self.streams.get(event.stream_id)  # type: ignore[union-attr]
                if stream is not None:
                    stream.end()
            elif kind is StreamReset:
                self._stream_reset(event)  # type: ignore[arg-type]
            elif kind is ConnectionTerminated:
                self.close()
                return
            else:  # PING, SETTINGS, PRIORITY and their acknowledgements
                if kind is PingAckReceived and event.ping_data == _DRAIN_PING:  # type: ignore[union-attr]
                    self._final_goaway()
                self._control()
            if self.closed:
                return
        self.flush()
        if self.transport.get_write_buffer_size() > OUTPUT_LIMIT:
            self._calm("client does not read what it asks for")

    def _request(self, event: RequestReceived) -> None:
        stream_id = event.stream_id
        state = self.state
        self.last_stream_id = stream_id  # (the core takes a new stream only above every id before it)
        if self.closing:
            # After GOAWAY: refused, so the client may retry it elsewhere (RFC 9113 §6.8).
            self.conn.reset_stream(stream_id, ErrorCode.REFUSED_STREAM)
            return
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        if len(self.streams) == 1:
            self.deadline = INF  # no longer idle; while streams run, the deadline is their earliest wait's
        headers = event.headers
        template = self.last_request
        if template is not None and headers is self.last_head:
            # The core hands out the same list for a repeat of the same header block under the same HPACK
            # table (h2conn._HeadCache): the same request, parsed once (bench http2: 15% of a hello request),
            # and the same Request again, as a Request is not changed once made (proto/h1/events.py).
            request = template
        else:
            try:
                request = request_from_headers(headers, state.limits, state.h2_connect_protocols)
            except RemoteProtocolError as exc:
                self.refuse_stream(stream, exc)
                return
            self.last_head = headers
            self.last_request = request
        if event.end_stream:
            stream.ended = True
        else:
            stream.bodiless = request.method in (b"GET", b"HEAD")
        self._start_stream(stream, request)

    def _window_updated(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                stream.window_opened()
            else:
                self._control()
        else:
            for stream in list(self.streams.values()):
                stream.window_opened()

    def _stream_reset(self, event: StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if not event.remote:
            # A stream error the core answered (RFC 9113 §5.4.2): malformed request, window misuse...
            # (REFUSED_STREAM is no error of the client's: it opened a stream before our SETTINGS arrived.)
            if event.error_code != ErrorCode.REFUSED_STREAM:
                self.state.log_protocol_error(
                    self, RemoteProtocolError(f"http/2: {event.reason}", status=400)
                )
            if stream is not None:
                stream.gone()
                self._maybe_idle()
            return
        self._control()
        if stream is not None:
            if stream.cycle is not None and stream.cycle.state is not RESPONSE_DONE and self.reset_flood():
                stream.gone()
                self._calm("too many streams reset (rapid reset)")
                return
            stream.gone()
            self._maybe_idle()

    def _control(self) -> None:
        now = self.state.loop.time()
        if now - self.control_window > 1.0:
            self.control_window = now
            self.control_count = 0
        self.control_count += 1
        if self.control_count > CONTROL_BUDGET:
            self._calm("control frame flood")

    # -- used by the streams
    def schedule_flush(self) -> None:
        if self.flush_handle is None and not self.closed:
            self.flush_handle = self.state.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_handle = None
        if self.closed:
            return
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)
        if self.closing and not self.streams:
            self.close()

    async def drain(self) -> None:
        if not self.write_paused or self.closed:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.state.loop.create_future()
        await waiter

    def error_response(self, stream: H2Stream, status: int, body: bytes) -> None:
        try:
            self.conn.send_headers(stream.id, error_head(status, body))
            self.conn.send_data(stream.id, body, end_stream=True)
        except LocalProtocolError:  # (a window too small for the body)
            self.reset_stream(stream, ErrorCode.INTERNAL_ERROR)
        self.schedule_flush()

    def reset_stream(self, stream: H2Stream, code: ErrorCode | None) -> None:
        if code is not None and not self.closed:
            self.conn.reset_stream(stream.id, code)  # (a no-op once it is closed both ways)
            self.schedule_flush()
        stream.reset = True

    def stop_receiving(self, stream: H2Stream, code: ErrorCode) -> None:
        if not stream.reset:  # (RST_STREAM ends both directions: once reset, there is nothing to stop)
            self.reset_stream(stream, code)

    def stop_after_response(self, stream: H2Stream) -> None:
        if stream.outbuf:
            return  # the response is still going out (window_opened asks once it is)
        if stream.bodiless:
            # A GET or HEAD has no body to stop (RFC 9110 §9.3.1, §9.3.2): the stream stays half-closed
            # until the client ends it, rather than racing its next frames with a RST_STREAM (h2spec 6.9.1/3).
            return
        self.reset_stream(stream, ErrorCode.NO_ERROR)

    def stream_done(self, stream: H2Stream) -> None:
        if stream.outbuf and not stream.reset:
            return  # finished once its last bytes are out (see window_opened)
        # The stream and its cycle refer to each other: undone here, both go when the app is done with
        # the cycle, not at the garbage collector's next pass (bench h2: its passes cost more than this).
        stream.cycle = None
        self.streams.pop(stream.id, None)  # (forget_stream's two lines: one call less for every request)
        self._maybe_idle()

    def forget_stream(self, stream: H2Stream) -> None:
        self.streams.pop(stream.id, None)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.streams:
            if self.closing:
                self.schedule_flush()  # flush() closes a draining connection with nothing left in flight
            else:
                self.deadline = self.state.loop.time() + self.state.timeout_keep_alive

    # -- errors, timeouts and closing
    def _protocol_error(self, exc: H2ConnectionError) -> None:
        self.state.log_protocol_error(self, RemoteProtocolError(f"http/2: {exc}", status=400))
        self.flush()  # the core queued its GOAWAY
        self._linger()

    def _calm(self, reason: str, code: ErrorCode = ErrorCode.ENHANCE_YOUR_CALM) -> None:
        self.state.log_protocol_error(self, RemoteProtocolError(f"http/2: {reason}", status=400))
        if not self.closed:
            self.conn.close_connection(code, last_stream_id=self.last_stream_id)
            self.flush()
            self._linger()

    def _linger(self) -> None:
        """Close after a connection error so that its GOAWAY reaches the client (RFC 9113 §6.8: it SHOULD
        precede the close): closing with unread input makes the kernel reset the connection and drop what
        is still queued, so the client's further bytes are read and dropped, our side is shut for writing,
        and the connection closes at the client's EOF or after LINGER seconds (nginx's lingering close)."""
        if self.closed:
            return
        self.closed = True
        self.linger = LINGER_BYTES
        for stream in list(self.streams.values()):
            stream.gone()
        self.streams.clear()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
        self.state.loop.call_later(LINGER, transport.close)

    def timeout(self, now: float) -> None:
        """The connection has been idle (no stream) past its keep-alive deadline, or the client's preface
        and first request did not come in time; or a stream's app has waited on its client too long."""
        if not self.streams:
            self.shutdown()
            return
        nearest = self.expire_streams(self.streams, now)
        if nearest is not None and self.streams:  # (with none left, the connection's idle deadline stands)
            self.deadline = nearest

    def send_timeout(self, stream: H2Stream) -> None:
        """A stream's app waited past --timeout-send for the client to take more of its response: the stream
        is reset (CANCEL) and the others go on, unless the client reads nothing of the connection at all
        (its transport is paused): then the connection is closed."""
        state = self.state
        reason = ClientTimeout.sending(state.timeout_send)
        stream.read_deadline = stream.send_deadline = INF
        if self.write_paused:
            state.log_timeout(self, f"{reason}: connection closed")
            stream.gone(reason)
            self.close(abort=True)
            return
        state.log_timeout(self, f"{reason}: stream reset")
        self.cancel_stream(stream, reason)

    def shutdown(self) -> None:
        """Graceful stop in two steps (RFC 9113 §6.8): a GOAWAY with the largest stream id says no new
        streams, and a PING measures a round trip; once its ACK is back (or after LINGER seconds) the
        final GOAWAY names the last stream taken. Requests the client sent before it saw the first GOAWAY
        are served, not refused; the streams in flight finish, then the connection closes."""
        if self.drain_timer is not None or self.closing or self.closed:
            return
        self._goaway(0x7FFFFFFF)
        self.conn.ping(_DRAIN_PING)
        self.schedule_flush()
        self.drain_timer = self.state.loop.call_later(LINGER, self._final_goaway)

    def _final_goaway(self) -> None:
        if self.closing or self.closed:
            return
        self.closing = True
        if self.drain_timer is not None:
            self.drain_timer.cancel()
        self._goaway(self.last_stream_id)
        self.schedule_flush()  # (and flush() closes when no stream is left)

    def _goaway(self, last_stream_id: int) -> None:
        self.conn.close_connection(ErrorCode.NO_ERROR, last_stream_id=last_stream_id)  # (streams carry on)

    def abort(self) -> None:
        for stream in list(self.streams.values()):
            stream.gone()
        self.close()

    def close(self, abort: bool = False) -> None:
        """Close the connection; with ``abort``, at once, dropping what a client that does not read has
        not taken (``transport.close()`` waits to flush it)."""
        if not self.closed:
            self.closed = True
            if abort:
                self.transport.abort()
            else:
                self.transport.close()
            for stream in self.streams.values():
                stream.gone()

    @property
    def cycle(self) -> object | None:
        """Something is in flight (for the server's shutdown wait)."""
        return self.streams or None
