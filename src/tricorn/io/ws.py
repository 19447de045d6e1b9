"""The asyncio shell for WebSocket: the handshake, then a Protocol that owns the byte stream.

Over HTTP/1.1, :func:`start_websocket` is called by the HTTP/1.1 shell for a request whose ``upgrade`` is
``websocket``; it hands the transport to a :class:`WSProtocol` with ``transport.set_protocol``. Over
HTTP/2 (RFC 8441), :func:`start_websocket_h2` is called for an extended CONNECT with ``:protocol
websocket``; the WSProtocol's transport is then an :class:`H2Tunnel`, whose bytes travel as DATA frames of
that one stream while the connection serves others. Either way it validates the handshake (a refusal is a
400 or 426 response), then runs the application's :class:`~tricorn.interfaces.asgi_ws.WebSocketSession`.

The WSProtocol is the session's channel: before the application accepts, it can still answer with HTTP
(the 101 or, on HTTP/2, a 200; a 403, or the application's own denial response), through the
protocol's :class:`H1Reply` or :class:`H2Reply`; after that it moves bytes between its transport and a
:class:`~tricorn.proto.ws.WSConnection`, applies flow control both ways, and arms one timer for the
keepalive ping and the closing-handshake deadline.

Bytes the client sends before the application accepts (which the handshake allows: RFC 6455 §4.1 lets a
client send frames as soon as it has sent its handshake) are held, up to a bound, and parsed after the 101.
"""

from __future__ import annotations

import asyncio
import math
from enum import Enum
from time import perf_counter
from typing import TYPE_CHECKING, Any

from tricorn.errors import LocalProtocolError, RemoteProtocolError
from tricorn.interfaces.asgi_ws import CLOSED as SESSION_CLOSED
from tricorn.interfaces.asgi_ws import WebSocketSession, build_ws_scope
from tricorn.io.dispatch import ASGITarget
from tricorn.io.flow import WriteFlow
from tricorn.proto.h1 import H1Connection, Request, error_response
from tricorn.proto.ws import (
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    WS_OPEN,
    BytesMessage,
    CloseReceived,
    Handshake,
    HandshakeError,
    TextMessage,
    WSConnection,
    accept_headers,
    check_handshake,
    h1_accept_response,
    h1_refusal_response,
    negotiate_extensions,
)

if TYPE_CHECKING:
    from websockets.extensions.base import Extension

    from tricorn.io.h1 import H1Protocol
    from tricorn.io.h2 import H2Protocol, H2Stream
    from tricorn.io.server import ServerState
    from tricorn.io.tls import TLSInfo
    from tricorn.proto.forwarded import AllowList

IMPLEMENTATIONS = ("websockets",)
# Bytes held from a client that sends frames before the application has accepted; reading pauses past
# this (the same high-water mark as a request body, uvicorn's 64 KiB).
HANDSHAKE_BUFFER = 65536


def ws_implementation(name: str) -> str | None:
    """The WebSocket implementation for the ``ws`` setting: None when WebSocket is off."""
    if name == "none":
        return None
    try:
        import websockets.protocol  # noqa: F401
    except ImportError:  # pragma: no cover - a main dependency
        if name == "auto":
            return None
        from tricorn.errors import ConfigError

        raise ConfigError(
            "ws", f"{name} is not installed (pip install websockets), use auto or none"
        ) from None
    return "websockets"


class WSPhase(Enum):
    HANDSHAKE = 0  # the application has not answered the handshake yet
    DENYING = 1  # an HTTP response (403, 500 or the app's denial) is being written
    OPEN = 2  # after the 101: frames
    CLOSED = 3  # the transport is closed or closing


HANDSHAKE, DENYING, OPEN, CLOSED = WSPhase


def start_websocket(h1: H1Protocol, request: Request) -> None:
    """Take over ``h1``'s connection for the WebSocket handshake ``request`` (see the module docstring)."""
    state = h1.state
    transport = h1.transport
    try:
        handshake = check_handshake(request.method, request.headers)
        extensions_header, extensions = negotiate_extensions(
            handshake.extensions, state.config.ws_per_message_deflate
        )
    except HandshakeError as exc:
        state.log_protocol_error(h1, RemoteProtocolError(str(exc), status=exc.status))
        transport.write(h1_refusal_response(exc))
        h1.close()
        return
    reply = H1Reply(transport, h1.conn, request)
    ws = WSProtocol(state, transport, reply, request, handshake, extensions_header, extensions)
    ws.inherit(h1)
    # The HTTP/1.1 shell is done with this transport: it no longer reads, times out or closes it.
    h1.close_for_upgrade()
    state.connections.add(ws)
    transport.set_protocol(ws)
    ws.start(h1.conn.trailing_data, h1.reading_paused)


def start_websocket_h2(h2: H2Protocol, stream: H2Stream, request: Request) -> None:
    """Serve the extended CONNECT ``request`` (RFC 8441 §4) on ``stream`` as a WebSocket."""
    state = h2.state
    try:
        handshake = check_handshake(request.method, request.headers, check_upgrade=False)
        extensions_header, extensions = negotiate_extensions(
            handshake.extensions, state.config.ws_per_message_deflate
        )
    except HandshakeError as exc:
        h2.refuse_stream(stream, RemoteProtocolError(str(exc), status=exc.status))
        return
    tunnel: Any = H2Tunnel(stream)  # the part of a transport a WSProtocol uses
    ws = WSProtocol(state, tunnel, H2Reply(stream), request, handshake, extensions_header, extensions)
    ws.inherit(h2)
    stream.tunnel = ws
    state.connections.add(ws)
    ws.start(b"", False)


class H1Reply:
    """A handshake's HTTP answers over HTTP/1.1: the 101, or a response framed by the connection's core
    (the connection ends after it: its parser stopped at the upgrade)."""

    method = "GET"
    http_version = "1.1"

    def __init__(self, transport: asyncio.Transport, conn: H1Connection, request: Request) -> None:
        self.transport = transport
        self.conn = conn
        self.request = request
        self.head = b""

    def accept(self, headers: list[tuple[bytes, bytes]]) -> int:
        response = h1_accept_response(headers)
        self.transport.write(response)
        return len(response)

    def error(self, status: int, message: str) -> int:
        body = error_response(status, message)
        self.transport.write(body)
        return len(body)

    def deny_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        conn = self.conn
        conn.start_request(self.request)
        conn.keep_alive = False
        self.head = conn.response_head(status, headers)

    def deny_body(self, body: bytes, more: bool) -> None:
        data = self.conn.response_body(body, more)
        if self.head:
            data = self.head + data
            self.head = b""
        if data:
            self.transport.write(data)

    def deny_failed(self) -> None:
        """The app failed during its denial response: a 500 if its head has not gone out."""
        if self.head:
            self.head = b""
            self.error(500, "internal server error")


class H2Reply:
    """A handshake's HTTP answers over HTTP/2 (RFC 8441 §5): a 200 opens the tunnel, any other response
    ends the stream."""

    method = "CONNECT"
    http_version = "2"

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream

    def accept(self, headers: list[tuple[bytes, bytes]]) -> int:
        self.stream.send_tunnel_head(headers)
        return 0

    def error(self, status: int, message: str) -> int:
        body = (message + "\n").encode()
        self.stream.proto.error_response(self.stream, status, body)
        return len(body)

    def deny_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.stream.response_start(status, headers)

    def deny_body(self, body: bytes, more: bool) -> None:
        self.stream.response_body(body, more)

    def deny_failed(self) -> None:
        if self.stream.head is not None:
            self.stream.head = None
            self.error(500, "internal server error")


class H2Tunnel:
    """What a WSProtocol uses of a transport, over one HTTP/2 stream: its bytes are the stream's DATA."""

    def __init__(self, stream: H2Stream) -> None:
        self.stream = stream
        self.closing = False

    def write(self, data: bytes) -> None:
        if data and not self.closing:
            self.stream.tunnel_write(data)

    def writelines(self, parts: list[bytes] | tuple[bytes, ...]) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.stream.tunnel_close()

    def is_closing(self) -> bool:
        return self.closing or self.stream.reset

    def pause_reading(self) -> None:
        self.stream.pause_reading()

    def resume_reading(self) -> None:
        self.stream.resume_reading()

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.stream.proto.transport.get_extra_info(name, default)


class WSProtocol(WriteFlow, asyncio.Protocol):
    """One WebSocket connection's transport side; the channel of its WebSocketSession."""

    websocket = True  # counted among the WebSocket sessions open (io/metrics.py)
    __slots__ = (
        "_drain_waiter",
        "_timer",
        "_timer_at",
        "buffer",
        "client",
        "core",
        "counted",
        "deadline",
        "extensions",
        "extensions_header",
        "handshake",
        "phase",
        "protocol_label",
        "proxy_trust",
        "reading_paused",
        "reply",
        "request",
        "scheme",
        "scope_base",
        "server",
        "session",
        "start_time",
        "state",
        "task",
        "tls",
        "transport",
        "write_paused",
    )

    def __init__(
        self,
        state: ServerState,
        transport: asyncio.Transport,
        reply: H1Reply | H2Reply,
        request: Request,
        handshake: Handshake,
        extensions_header: bytes | None,
        extensions: list[Extension],
    ) -> None:
        self.state = state
        self.transport = transport
        self.reply = reply
        # Its kind among the open connections; over an HTTP/2 stream it is no connection of its own.
        self.protocol_label = "websocket" if type(reply) is H1Reply else None
        self.scheme = "http"
        self.tls: TLSInfo | None = None  # the ASGI tls extension, on a TLS connection
        self.request = request
        self.handshake = handshake
        self.extensions_header = extensions_header
        self.extensions = extensions
        self.phase = HANDSHAKE
        self.core: WSConnection | None = None
        self.buffer = bytearray()
        self.write_paused = False
        self.reading_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.proxy_trust: AllowList | None = None
        self.scope_base: Any = None  # (interfaces/asgi.py build_scope: one scope a connection here)
        self.task: asyncio.Task[None] | None = None  # the session's, held here (the loop holds it weakly)
        self.counted = False
        self.start_time = perf_counter()
        # The server's tick times out idle HTTP connections by `deadline`; a WebSocket has its own timers.
        self.deadline = math.inf
        self.session: WebSocketSession = None  # type: ignore[assignment]  # set in start()

    @property
    def cycle(self) -> WebSocketSession | None:
        """The session while its application runs (what the server's shutdown waits for)."""
        session = self.session
        return session if session is not None and session.running else None

    def inherit(self, conn: H1Protocol | H2Protocol) -> None:
        """Take the addresses, scheme, TLS and proxy trust of the connection the handshake came on."""
        self.client = conn.client
        self.server = conn.server
        self.scheme = conn.scheme
        self.tls = conn.tls
        self.proxy_trust = conn.proxy_trust

    def start(self, held: bytes, reading_paused: bool) -> None:
        state = self.state
        config = state.config
        self.reading_paused = reading_paused
        if held:
            self.buffer += held
        target = state.dispatch.match(self.request.path)  # (io/dispatch.py)
        app = target.websocket
        if app is None:
            # A path served by static files or CGI: no WebSocket there, and the client is told so.
            state.log_protocol_error(
                self, RemoteProtocolError(f"websocket to a {target.kind} path", status=404)
            )
            self._refuse(404, "not found: no websocket endpoint at this path")
            return
        assert isinstance(target, ASGITarget)  # the one kind that takes WebSocket scopes
        scope = build_ws_scope(target.scope(self, self.request), self.handshake.subprotocols)
        max_size = config.ws_max_size
        self.session = WebSocketSession(self, scope, config.ws_max_queue, max(max_size, 1 << 20))
        if state.shutting_down:
            self._refuse(503, "service unavailable: shutting down")
            return
        limit = state.limit_concurrency
        if limit is not None and state.active >= limit:
            self._refuse(503, "service unavailable: too many requests in progress")
            return
        state.active += 1
        self.counted = True
        if state.metrics is not None:
            state.metrics.websocket_started()
        if reading_paused and len(self.buffer) < HANDSHAKE_BUFFER:
            self.resume_reading()
        # A task of its own, not the connection runner's host task (io/runner.py): a session lives as
        # long as its connection, and each message resumes it directly, without the runner's layer
        # (bench "websocket": 1.3k fewer instructions a message).
        self.task = state.loop.create_task(self.session.run(app))

    # -- asyncio callbacks
    def data_received(self, data: bytes) -> None:
        core = self.core
        if core is None:
            if self.phase is HANDSHAKE:
                self.buffer += data
                if len(self.buffer) >= HANDSHAKE_BUFFER:
                    self.pause_reading()
            return
        events = core.receive_data(data)
        out = core.data_to_send()
        if out:
            self.transport.write(out)
        if events:
            session = self.session
            for event in events:
                kind = type(event)
                if kind is TextMessage or kind is BytesMessage:
                    session.message(event.data)  # type: ignore[union-attr]
                elif kind is CloseReceived:
                    session.closed(event.code, event.reason)  # type: ignore[union-attr]
                else:  # ConnectionFailed: we closed it (bad frame, bad utf-8, too big)
                    self.state.log_protocol_error(
                        self,
                        RemoteProtocolError(f"websocket: {event.reason}", status=event.code),  # type: ignore[union-attr]
                    )
                    session.closed(event.code, event.reason)  # type: ignore[union-attr]
        if core.close_transport:
            self._close()

    def eof_received(self) -> bool:
        core = self.core
        if core is not None and self.phase is OPEN and core.state is WS_OPEN:
            core.receive_eof()
            out = core.data_to_send()
            if out:
                self.transport.write(out)
        return False  # close the transport; connection_lost reports the end to the session

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self._cancel_timer()
        self.state.connections.discard(self)
        session = self.session
        if session is not None:
            session.closed(1006, "")
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the channel, used by the session
    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        if self.phase is not HANDSHAKE:
            raise LocalProtocolError("websocket.accept after the connection was closed")
        size = self.reply.accept(accept_headers(self.handshake, subprotocol, self.extensions_header, headers))
        state = self.state
        config = state.config
        loop = state.loop
        self.core = WSConnection(
            loop.time(),
            config.ws_max_size,
            self.extensions,
            config.ws_ping_interval,
            config.ws_ping_timeout,
            config.ws_close_timeout,
        )
        self.phase = OPEN
        if state.access_log is not None:
            self._log_access(101 if self.reply.http_version == "1.1" else 200, size)
        self._arm()
        held = self.buffer
        if held:
            # Frames sent before the 101 (the session is already CONNECTED, so they reach it).
            self.buffer = bytearray()
            self.data_received(bytes(held))
        if self.reading_paused and self.phase is OPEN and not self.session.reading_paused:
            self.resume_reading()

    def deny(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.phase is not HANDSHAKE:
            raise LocalProtocolError("websocket denial response after the connection was closed")
        self.reply.deny_start(status, headers)
        self.phase = DENYING
        if self.state.access_log is not None:
            self._log_access(status, 0)

    def deny_body(self, body: bytes, more: bool) -> None:
        if self.phase is not DENYING:
            raise LocalProtocolError("websocket denial response body without a response start")
        self.reply.deny_body(body, more)
        if not more:
            self._close()

    def send_message(self, data: str | bytes) -> None:
        core = self.core
        if core is None or self.phase is not OPEN:
            raise LocalProtocolError("websocket.send on a connection that is not open")
        parts = core.message_frame(data)
        if len(parts) == 1:
            self.transport.write(parts[0])
        else:
            self.transport.writelines(parts)

    async def drain(self) -> None:
        if not self.write_paused or self.phase is CLOSED:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.state.loop.create_future()
        await waiter

    def close(self, code: int, reason: str) -> None:
        core = self.core
        if core is None or self.phase is not OPEN:
            return
        core.send_close(self.state.loop.time(), code, reason)
        self.transport.write(core.data_to_send())
        if self.reading_paused:
            self.resume_reading()  # the client's close frame must still be read
        self._arm()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.phase is not CLOSED:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.phase is not CLOSED:
            self.reading_paused = False
            self.transport.resume_reading()

    def session_done(self, session: WebSocketSession) -> None:
        state = self.state
        if self.counted:
            self.counted = False
            state.active -= 1
        if self.phase is HANDSHAKE:
            return  # app_error has answered
        core = self.core
        if self.phase is OPEN and core is not None and session.state is not SESSION_CLOSED:
            # The app returned without closing: close normally (RFC 6455 §7.1.2), the client answers.
            self.close(NORMAL_CLOSURE, "")
            session.closed(NORMAL_CLOSURE)

    def app_error(self, session: WebSocketSession, message: str, exc: BaseException | None) -> None:
        self.state.log_app_error(message, exc)
        phase = self.phase
        if phase is HANDSHAKE:
            self._refuse(500, "internal server error")
        elif phase is DENYING:
            self.reply.deny_failed()
            self._close()
        elif phase is OPEN:
            core = self.core
            assert core is not None
            core.fail(INTERNAL_ERROR, "")
            self.transport.write(core.data_to_send())
            session.closed(INTERNAL_ERROR)
            self._close()

    # -- shutdown and timeouts (called by ServerState)
    def timeout(self, now: float) -> None:
        """Never called (``deadline`` is infinite): a WebSocket keeps its own timers."""

    def shutdown(self) -> None:
        """Graceful stop begins: open WebSockets are left to their applications until the timeout."""

    def abort(self) -> None:
        """The graceful timeout is over: close with 1001 (going away) and drop the connection."""
        phase = self.phase
        if phase is OPEN:
            core = self.core
            assert core is not None
            core.send_close(self.state.loop.time(), GOING_AWAY, "server shutting down")
            self.transport.write(core.data_to_send())
            self.session.closed(GOING_AWAY, "server shutting down")
            self._close()
        elif phase is HANDSHAKE:
            self._refuse(503, "service unavailable: shutting down")
        else:
            self._close()

    # -- internals
    def _refuse(self, status: int, message: str) -> None:
        """Answer the handshake with an error response and close (the app never accepted)."""
        if self.phase is not HANDSHAKE:
            return
        size = self.reply.error(status, message)
        if self.state.access_log is not None:
            self._log_access(status, size)
        session = self.session
        if session is not None:
            session.closed(1006)
        self._close()

    def _close(self) -> None:
        if self.phase is not CLOSED:
            self.phase = CLOSED
            self._cancel_timer()
            self.transport.close()

    def _arm(self) -> None:
        core = self.core
        if core is None or self.phase is CLOSED:
            return
        deadline = core.next_deadline()
        if deadline is None:
            self._cancel_timer()
        elif deadline != self._timer_at:
            self._cancel_timer()
            self._timer_at = deadline
            self._timer = self.state.loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            self._timer_at = math.inf
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        core = self.core
        if core is None or self.phase is not OPEN:
            return
        events = core.on_timer(self.state.loop.time())
        out = core.data_to_send()
        if out:
            self.transport.write(out)
        for event in events:
            self.session.closed(event.code, event.reason)  # type: ignore[union-attr]
        if core.close_transport:
            self._close()
        else:
            self._arm()

    def _log_access(self, status: int, size: int) -> None:
        formatter = self.state.access_log
        assert formatter is not None
        scope = self.session.scope
        from tricorn.io.server import access_log

        access_log.info(
            formatter.format(
                client=scope["client"],  # behind a trusted proxy, the client it names
                method=self.reply.method,
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                http_version=self.reply.http_version,
                status=status,
                response_bytes=size,
                request_headers=scope["headers"],
                response_headers=[],
                duration=perf_counter() - self.start_time,
            )
        )
