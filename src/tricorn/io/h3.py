"""The asyncio shell for HTTP/3: one :class:`H3Protocol` per QUIC connection, one :class:`H3Stream` per request.

Theory of operation
-------------------
aioquic's QuicConnection (its packets, TLS, recovery) and H3Connection (frames, QPACK, the field rules of
RFC 9114 §4.2 and §4.3) are the sans-io cores; :mod:`tricorn.io.quic` routes datagrams to this shell,
which turns their events into the per-request calls the HTTP/1.1 and HTTP/2 shells make (``feed_body``,
``end_body``, ``disconnect``), so the ASGI and WSGI cycles serve HTTP/3 streams unchanged. A request head
gets the same checks as on HTTP/2 (:func:`tricorn.proto.h2.request_from_headers`: 501, 414, 431, 413, the
authority), and a response the same treatment (connection-specific fields dropped, RFC 9114 §4.2).

- **Sending**: the cycle's calls become HEADERS and DATA frames in aioquic's stream buffers; one transmit
  per loop turn sends what every stream produced. A stream whose client has not acknowledged
  :data:`SEND_HIGH` bytes has ``write_paused`` set (its app waits in ``drain``), so a client that stops
  reading holds its own stream, never the server's memory.
- **Receiving**: a request stream's credit is what its cycle took plus one window (see io/quic.py); while
  the cycle asks to pause, what arrives is held and not credited.
- **Errors**: a malformed request is refused on its own stream with its status (400, 413, 414, 431, 501);
  what aioquic finds malformed (frames, QPACK, pseudo-headers) closes the connection with the HTTP/3 error
  code it names (RFC 9114 §8 allows a stream error to be treated as a connection error). RESET_STREAM and
  STOP_SENDING from the client, a connection that goes silent past the idle timeout, or one closed by
  the client become ``http.disconnect`` for the apps of its streams, and the streams are freed. Streams
  reset faster than :data:`tricorn.io.mux.RESET_BUDGET` a second end the connection with H3_EXCESSIVE_LOAD.
- **Shutdown** (RFC 9114 §5.2): a GOAWAY that allows every stream, a PING to learn when the client has
  seen it, then a GOAWAY naming the first stream not served; the streams in flight finish, later ones are
  rejected with H3_REQUEST_REJECTED (which a client may retry), and the connection closes with
  CONNECTION_CLOSE H3_NO_ERROR.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import ErrorCode, FrameType, FrameUnexpected, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    PingAcknowledged,
    ProtocolNegotiated,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode

from tricorn.errors import ClientTimeout, RemoteProtocolError
from tricorn.interfaces.stream import RESPONSE_DONE
from tricorn.io.mux import INF, MuxProtocol, MuxStream, error_head
from tricorn.io.quic import STREAM_WINDOW
from tricorn.io.runner import AppRunner
from tricorn.proto.h2 import request_from_headers

if TYPE_CHECKING:
    import asyncio

    from tricorn.io.quic import QuicEndpoint
    from tricorn.io.tls import TLSInfo
    from tricorn.proto.forwarded import AllowList

error_log = logging.getLogger("tricorn.error")
# Response bytes a client may leave unacknowledged on one stream before its app waits (HTTP/2's
# equivalent is the stream window, 64 KiB by default; QUIC's pacing wants a little more in hand).
SEND_HIGH = 256 * 1024
# The largest request head, as the bytes of one HEADERS frame, before it is decoded (431 past it): the
# HTTP/2 header list limit's default, which HTTP/3 would advertise as SETTINGS_MAX_FIELD_SECTION_SIZE.
_PING_UID = 0x7472696300  # the shutdown PING (its acknowledgement sends the final GOAWAY)
_MAX_PUSH_STREAM = (1 << 62) - 4
# Seconds the first GOAWAY waits for the PING's acknowledgement before the final one goes anyway.
GOAWAY_WAIT = 1.0


class _QuicInfo:
    """What io/ws.py asks of a transport (``get_extra_info``), for a QUIC connection."""

    __slots__ = ("proto",)

    def __init__(self, proto: H3Protocol) -> None:
        self.proto = proto

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "peername":
            return self.proto.client
        if name == "sockname":
            return self.proto.server
        return default


class H3Stream(MuxStream):
    """One request on an HTTP/3 connection: the Stream its cycle answers through. It offers what
    io/ws.py's H2Reply and H2Tunnel use of an HTTP/2 stream, so WebSocket (RFC 9220) rides it the same way."""

    __slots__ = ("h3", "held")

    def __init__(self, proto: H3Protocol, stream_id: int) -> None:
        MuxStream.__init__(self, proto, stream_id)
        self.h3 = proto.h3
        self.held = 0  # stream bytes received while the cycle asked to pause: not credited yet

    # -- what the cycle reads (and io/mux.py's MuxStream)
    @property
    def write_paused(self) -> bool:
        return not self.reset and self.proto.unacked(self.id) > SEND_HIGH

    # -- the frames (io/mux.py's hooks)
    def send_head(self, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.h3.send_headers(self.id, fields, end_stream=end)

    def send_body(self, data: bytes, end: bool) -> None:
        if data or end:
            self.h3.send_data(self.id, data, end_stream=end)

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.h3.send_headers(self.id, fields, end_stream=True)
        self.proto.schedule_transmit()

    def schedule_send(self) -> None:
        self.proto.schedule_transmit()

    # -- Stream calls (the response itself: io/mux.py)
    async def drain(self) -> None:
        while self.write_paused:
            waiter = self.waiter
            if waiter is None or waiter.done():
                waiter = self.waiter = self.proto.state.loop.create_future()
                self.proto.blocked.add(self)
            await waiter

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self.held and not self.reset:
            held, self.held = self.held, 0
            self.proto.credit(self.id, held)
            self.proto.schedule_transmit()

    # -- a WebSocket tunnel (io/ws.py H2Tunnel, H2Reply; its head: io/mux.py)
    def tunnel_write(self, data: bytes) -> None:
        if self.reset:
            return
        self.h3.send_data(self.id, data, end_stream=False)
        self.proto.schedule_transmit()
        if self.tunnel is not None and self.write_paused:
            self.tunnel.pause_writing()
            self.proto.blocked.add(self)

    def tunnel_close(self) -> None:
        proto = self.proto
        if not self.reset:
            # (a response that already ended the stream makes aioquic raise FrameUnexpected)
            with contextlib.suppress(FrameUnexpected):
                self.h3.send_data(self.id, b"", end_stream=True)
            proto.schedule_transmit()
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel = None
            proto.state.loop.call_soon(tunnel.connection_lost, None)
        proto.stream_done(self)

    # -- events from the connection
    def data(self, data: bytes) -> None:
        self.received += len(data)
        proto = self.proto
        limit = proto.state.limits.body
        if limit is not None and self.received > limit:
            proto.refuse_stream(self, RemoteProtocolError("request body too large", status=413))
            return
        cycle = self.cycle
        if cycle is not None:
            if data:
                cycle.feed_body(data)
        elif self.tunnel is not None and data:
            self.tunnel.data_received(data)


class H3Protocol(MuxProtocol):
    """One QUIC connection speaking HTTP/3 (see the module docstring)."""

    APP_FAILED = ErrorCode.H3_INTERNAL_ERROR  # (io/mux.py: the codes of what it decides)
    CANCELLED = ErrorCode.H3_REQUEST_CANCELLED
    STOPPED = ErrorCode.H3_NO_ERROR  # RFC 9114 §4.1: "stop sending", the response stands

    __slots__ = (
        "blocked",
        "client",
        "closed",
        "closing",
        "deadline",
        "endpoint",
        "goaway_timer",
        "h3",
        "last_stream_id",
        "proxy_trust",
        "quic",
        "runner",
        "scope_base",
        "server",
        "started",
        "started_below",
        "state",
        "streams",
        "timer",
        "timer_at",
        "tls",
        "transmit_handle",
        "transport",
        "wsgi_environ",
    )

    def __init__(self, endpoint: QuicEndpoint, quic: Any, addr: Any) -> None:
        state = endpoint.state
        self.endpoint = endpoint
        self.state = state
        self.quic = quic
        quic.credit = {}
        quic.uni_buffered = self._uni_buffered
        # The streams a client may open at once (initial_max_streams_bidi); aioquic adds one as each closes.
        limit = quic._local_max_streams_bidi
        limit.value = limit.sent = (
            state.config.h3_max_concurrent_streams
        )  # (sent: in the transport parameters)
        self.h3: H3Connection = None  # type: ignore[assignment]  # made once ALPN says h3
        self.client: tuple[str, int] | None = (str(addr[0]), int(addr[1]))
        sockname = endpoint.sock.getsockname()
        self.server: tuple[str, int] | None = (str(sockname[0]), int(sockname[1]))
        self.transport = _QuicInfo(self)
        self.streams: dict[int, H3Stream] = {}
        self.blocked: set[H3Stream] = set()  # streams whose app waits for the client to acknowledge
        self.started: set[int] = set()  # request stream ids seen, above started_below
        self.started_below = 0
        self.last_stream_id = -4
        self.runner = AppRunner(state.loop)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.transmit_handle: asyncio.Handle | None = None
        self.deadline = INF
        self.closing = False  # GOAWAY sent
        self.closed = False
        self.goaway_timer: asyncio.TimerHandle | None = None
        self.wsgi_environ: Any = None  # the WSGI adapter's per-connection environ
        self.scope_base: Any = None  # what its ASGI scopes share (interfaces/asgi.py build_scope)
        self.tls: TLSInfo | None = None
        # Whether this peer's proxy headers are believed (--forwarded-allow-ips), once for the connection.
        self.proxy_trust: AllowList | None = None
        allow = state.forwarded_allow
        if allow is not None and allow.trusts_peer(self.client[0]):
            self.proxy_trust = allow
        self.reset_count = 0
        self.reset_window = 0.0
        state.connections.add(self)

    @property
    def scheme(self) -> str:
        return "https"

    @property
    def cycle(self) -> object | None:
        """Something is in flight (for the server's shutdown wait)."""
        return self.streams or None

    # -- datagrams and timers
    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.closed:
            return
        self.quic.receive_datagram(data, addr, self.state.loop.time())
        self._process_events()
        self.transmit()

    def _on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        if self.closed:
            return
        self.quic.handle_timer(self.state.loop.time())
        self._process_events()
        self.transmit()

    def schedule_transmit(self) -> None:
        if self.transmit_handle is None and not self.closed:
            self.transmit_handle = self.state.loop.call_soon(self.transmit)

    def transmit(self) -> None:
        """Send what aioquic has to send, and set its timer (loss detection, acks, idle timeout)."""
        handle = self.transmit_handle
        if handle is not None:
            handle.cancel()
            self.transmit_handle = None
        if self.closed:
            return
        loop = self.state.loop
        quic = self.quic
        sendto = self.endpoint.sendto
        for data, addr in quic.datagrams_to_send(now=loop.time()):
            sendto(data, addr)
        timer_at = quic.get_timer()
        if timer_at != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = timer_at
            self.timer = loop.call_at(timer_at, self._on_timer) if timer_at is not None else None
        if self.closing and not self.streams and self.goaway_timer is None and self._all_acknowledged():
            self.close()  # every response is out and acknowledged: CONNECTION_CLOSE can go
            return
        if self.blocked:
            for stream in list(self.blocked):
                if not stream.write_paused:
                    self.blocked.discard(stream)
                    stream.wake()
                    if stream.tunnel is not None:
                        stream.tunnel.resume_writing()

    def unacked(self, stream_id: int) -> int:
        stream = self.quic._streams.get(stream_id)
        return len(stream.sender._buffer) if stream is not None else 0

    def credit(self, stream_id: int, taken: int) -> None:
        credit = self.quic.credit
        if stream_id in credit:
            credit[stream_id] += taken

    def _uni_buffered(self, stream_id: int) -> int:
        h3 = self.h3
        stream = h3._stream.get(stream_id) if h3 is not None else None
        return len(stream.buffer) if stream is not None else 0

    # -- events
    def _process_events(self) -> None:
        quic = self.quic
        while True:
            event = quic.next_event()
            if event is None:
                return
            kind = type(event)
            if kind is StreamDataReceived:
                self._stream_data(event)
            elif kind is StreamReset or kind is StopSendingReceived:
                self._stream_reset(event)
            elif kind is ConnectionIdIssued:
                self.endpoint.cid_issued(event.connection_id, self)
            elif kind is ConnectionIdRetired:
                self.endpoint.cid_retired(event.connection_id)
            elif kind is ProtocolNegotiated:
                if event.alpn_protocol == "h3" and self.h3 is None:
                    self.h3 = H3Connection(quic)
            elif kind is HandshakeCompleted:
                self.tls = self._tls_info()
                if self.state.shutting_down:
                    self.shutdown()
            elif kind is PingAcknowledged:
                if event.uid == _PING_UID:
                    self._final_goaway()
            elif kind is ConnectionTerminated:
                self._terminated(event)
                return
            if self.closed:
                return

    def _stream_data(self, event: StreamDataReceived) -> None:
        h3 = self.h3
        if h3 is None:
            return
        stream_id = event.stream_id
        request_stream = not stream_id & 2
        if request_stream:
            stream = self.streams.get(stream_id)
            credit = self.quic.credit
            if stream_id not in credit:
                if stream is None and self._was_started(stream_id):
                    return  # a stream whose exchange is over (or was refused): its bytes are dropped
                credit[stream_id] = STREAM_WINDOW
            if stream is not None and stream.reading_paused:
                stream.held += len(event.data)
            else:
                credit[stream_id] += len(event.data)
        for h3_event in h3.handle_event(event):
            if type(h3_event) is DataReceived:
                stream = self.streams.get(h3_event.stream_id)
                if stream is not None:
                    stream.data(h3_event.data)
                    if h3_event.stream_ended:
                        stream.end()
            elif type(h3_event) is HeadersReceived:
                sid = h3_event.stream_id
                stream = self.streams.get(sid)
                if stream is None and not self._was_started(sid):
                    self._request(h3_event)
                elif stream is not None and h3_event.stream_ended:
                    stream.end()  # trailers (checked by aioquic, not passed on: ASGI has no message)
        if request_stream and not self.closed:
            pending = h3._stream.get(stream_id)
            if pending is not None and len(pending.buffer) > self.state.h2_max_header_list_size:
                # A HEADERS frame larger than any head we take, still arriving: refused before it is whole.
                stream = self.streams.get(stream_id) or self._new_stream(stream_id)
                pending.buffer = b""
                self.refuse_stream(stream, RemoteProtocolError("request head too large", status=431))

    def _was_started(self, stream_id: int) -> bool:
        return stream_id < self.started_below or stream_id in self.started

    def _mark_started(self, stream_id: int) -> None:
        started = self.started
        started.add(stream_id)
        below = self.started_below
        while below in started:  # (ids come in order, give or take a reordered packet: the set stays small)
            started.discard(below)
            below += 4
        self.started_below = below

    def _new_stream(self, stream_id: int) -> H3Stream:
        self._mark_started(stream_id)
        self.last_stream_id = max(self.last_stream_id, stream_id)
        stream = H3Stream(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def _request(self, event: HeadersReceived) -> None:
        stream_id = event.stream_id
        state = self.state
        if self.closing and stream_id > self.last_stream_id:
            # After the final GOAWAY: not processed, so the client may retry it (RFC 9114 §5.2).
            self._mark_started(stream_id)
            self.quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            self.quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            self.quic.credit.pop(stream_id, None)
            return
        stream = self._new_stream(stream_id)
        stream.ended = event.stream_ended
        try:
            request = request_from_headers(event.headers, state.limits, state.h2_connect_protocols, "3")
        except RemoteProtocolError as exc:
            self.refuse_stream(stream, exc)
            return
        self._start_stream(stream, request)

    def _stream_reset(self, event: StreamReset | StopSendingReceived) -> None:
        h3 = self.h3
        if h3 is not None:
            h3.handle_event(event)  # (aioquic frees its state of the stream; a critical stream is an error)
        stream_id = event.stream_id
        stream = self.streams.pop(stream_id, None)
        self.quic.credit.pop(stream_id, None)
        if stream is None:
            return
        if stream.cycle is not None and stream.cycle.state is not RESPONSE_DONE and self.reset_flood():
            stream.gone()
            self._calm("too many streams reset (rapid reset)")
            return
        if type(event) is StopSendingReceived and not stream.ended:
            self.quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        stream.gone()
        self._maybe_done()

    def _tls_info(self) -> TLSInfo:
        context = self.state.ssl_context
        cipher = None
        key_schedule = getattr(self.quic.tls, "key_schedule", None)
        if key_schedule is not None:
            cipher = int(key_schedule.cipher_suite)
        return {
            "server_cert": context.server_cert if context is not None else None,
            "client_cert_chain": [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": 0x0304,  # QUIC is TLS 1.3 only (RFC 9001 §4.2)
            "cipher_suite": cipher,
        }

    # -- used by the streams (and MuxProtocol.reply_error)
    def error_response(self, stream: H3Stream, status: int, body: bytes) -> None:
        if stream.reset or self.closed:
            return
        stream.head = None
        self.h3.send_headers(stream.id, error_head(status, body))
        self.h3.send_data(stream.id, body, end_stream=True)
        self.schedule_transmit()

    def reset_stream(self, stream: H3Stream, code: int | None) -> None:
        """Reset the response side of ``stream`` (``code`` None: the client already did)."""
        if code is not None and not self.closed and not stream.reset:
            self.quic.reset_stream(stream.id, code)
            self.schedule_transmit()
        stream.reset = True

    def stop_receiving(self, stream: H3Stream, code: int) -> None:
        """Ask the client to stop sending the request (STOP_SENDING); what it still sends is dropped."""
        if not self.closed:
            self.quic.stop_stream(stream.id, code)
            self.quic.credit.pop(stream.id, None)
            self.schedule_transmit()

    def stop_after_response(self, stream: H3Stream) -> None:
        self.stop_receiving(stream, self.STOPPED)

    def stream_done(self, stream: H3Stream) -> None:
        self.streams.pop(stream.id, None)
        stream.cycle = None  # (the two refer to each other: see H2Protocol.stream_done)
        self.blocked.discard(stream)
        if stream.ended or stream.reset:
            self.quic.credit.pop(stream.id, None)
        self._maybe_done()

    def forget_stream(self, stream: H3Stream) -> None:
        self.streams.pop(stream.id, None)
        self.quic.credit.pop(stream.id, None)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.closing and not self.streams and self.goaway_timer is None:
            # Closed once what is queued is acknowledged (a CONNECTION_CLOSE now would drop it): see transmit().
            self.schedule_transmit()

    def _all_acknowledged(self) -> bool:
        return not any(stream.sender._buffer for stream in self.quic._streams.values())

    # -- errors, timeouts and closing
    def _calm(self, reason: str) -> None:
        self.state.log_protocol_error(self, RemoteProtocolError(f"http/3: {reason}", status=400))
        self.close(ErrorCode.H3_EXCESSIVE_LOAD, reason)

    def timeout(self, now: float) -> None:
        """A stream's app has waited on its client past --timeout-read or --timeout-send (the idle
        timeout of the whole connection is aioquic's: ConnectionTerminated)."""
        nearest = self.expire_streams(self.streams, now)
        if nearest is not None:
            self.deadline = nearest

    def send_timeout(self, stream: H3Stream) -> None:
        reason = ClientTimeout.sending(self.state.timeout_send)
        stream.read_deadline = stream.send_deadline = INF
        self.state.log_timeout(self, f"{reason}: stream reset")
        self.cancel_stream(stream, reason)

    def shutdown(self) -> None:
        """Graceful stop in two steps (RFC 9114 §5.2): a GOAWAY allowing every stream and a PING; once the
        PING is acknowledged (or after GOAWAY_WAIT), a GOAWAY naming the first stream not served. The
        streams in flight finish, then CONNECTION_CLOSE."""
        if self.closing or self.closed:
            return
        self.closing = True
        if self.h3 is None or self.h3._local_control_stream_id is None:
            self.close()  # (still in its handshake: nothing to finish)
            return
        self._goaway(_MAX_PUSH_STREAM)
        self.quic.send_ping(_PING_UID)
        self.goaway_timer = self.state.loop.call_later(GOAWAY_WAIT, self._final_goaway)
        self.schedule_transmit()

    def _final_goaway(self) -> None:
        timer = self.goaway_timer
        if timer is None or self.closed:
            return
        timer.cancel()
        self.goaway_timer = None
        self._goaway(self.last_stream_id + 4)
        self.schedule_transmit()
        self._maybe_done()

    def _goaway(self, stream_id: int) -> None:
        self.quic.send_stream_data(
            self.h3._local_control_stream_id, encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id))
        )

    def abort(self) -> None:
        for stream in list(self.streams.values()):
            stream.gone()
        self.streams.clear()
        self.close()

    def close(self, code: int = ErrorCode.H3_NO_ERROR, reason: str = "") -> None:
        """CONNECTION_CLOSE now; the connection is done with (what the client sends after is dropped)."""
        if self.closed:
            return
        quic = self.quic
        quic.close(error_code=code, reason_phrase=reason)
        sendto = self.endpoint.sendto
        for data, addr in quic.datagrams_to_send(now=self.state.loop.time()):
            sendto(data, addr)
        self._finish()

    def _terminated(self, event: ConnectionTerminated) -> None:
        code = event.error_code
        # (aioquic ends a connection silent past the idle timeout with INTERNAL_ERROR "Idle timeout": the
        # client went away, which is no error to log)
        idle = event.reason_phrase == "Idle timeout" and code == QuicErrorCode.INTERNAL_ERROR
        if code not in (0, ErrorCode.H3_NO_ERROR) and not idle and not self.closed:
            reason = event.reason_phrase or "no reason given"
            self.state.log_protocol_error(
                self,
                RemoteProtocolError(f"http/3: connection closed: error 0x{code:x} ({reason})", status=400),
            )
        self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream.gone()
        self.streams.clear()
        self.blocked.clear()
        self.runner.close()
        for handle in (self.timer, self.transmit_handle, self.goaway_timer):
            if handle is not None:
                handle.cancel()
        self.timer = self.transmit_handle = self.goaway_timer = None
        self.endpoint.forget(self)
        self.state.connections.discard(self)
