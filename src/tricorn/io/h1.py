"""The asyncio shell for HTTP/1.1: moves bytes between a transport and an :class:`H1Connection`.

Decisions about the protocol live in the core; this class owns the socket-side concerns: which cycle
receives the body, starting apps in request order (pipelining), read and write flow control, the
connection's deadlines, and closing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from enum import Enum
from time import perf_counter
from typing import TYPE_CHECKING, Any

from tricorn.errors import (
    ClientDisconnected,
    ClientTimeout,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from tricorn.interfaces.asgi import HTTPCycle
from tricorn.interfaces.files import FileSend
from tricorn.interfaces.stream import ABORTED, RESPONSE_DONE, RESPONSE_START, WAIT_READ, WAIT_SEND, Headers
from tricorn.io.flow import WriteFlow
from tricorn.io.runner import AppRunner
from tricorn.io.tls import alpn_protocol, looks_like_tls_client_hello, proxied_tls_info, tls_scope_info
from tricorn.proto.h1 import (
    CONTINUE_RESPONSE,
    RS_HEAD,
    EndOfMessage,
    Event,
    H1Connection,
    Request,
    error_response,
)

if TYPE_CHECKING:
    from tricorn.io.server import ServerState
    from tricorn.io.tls import TLSInfo
    from tricorn.proto.forwarded import AllowList
    from tricorn.proto.proxy_protocol import ProxyHeader


class Phase(Enum):
    IDLE = 0  # no request in progress and no bytes of one: the keep-alive deadline runs
    HEAD = 1  # part of a request head has arrived: the request-header deadline runs
    ACTIVE = 2  # a request is being served: deadlines only while its app waits on the client (read, send)
    CLOSED = 3


PHASE_IDLE, PHASE_HEAD, PHASE_ACTIVE, PHASE_CLOSED = Phase

INF = float("inf")


_PRI_LINE = b"PRI * HTTP/2.0"
# Below this size the head is copied in front of the body to make one write; above it, the two go out
# together with writelines (writev) instead of copying the body (bench "post1m").
_COPY_LIMIT = 16384
# Streamed parts are batched into one write until this much is pending (the size of a socket buffer).
WRITE_BATCH = 65536


class H1Protocol(WriteFlow, asyncio.Protocol):
    """One HTTP/1.1 connection, and the :class:`~tricorn.interfaces.stream.Stream` of the request it is
    answering (requests are answered one at a time, in order)."""

    protocol_label = "http/1.1"  # its kind among the open connections (io/metrics.py)
    __slots__ = (
        "_drain_waiter",
        "client",
        "closing",
        "conn",
        "cycle",
        "deadline",
        "head",
        "origin",
        "pending",
        "pending_size",
        "pending_upgrade",
        "phase",
        "pipeline",
        "preface_part",
        "proxy_trust",
        "read_deadline",
        "reading_paused",
        "receiving",
        "refusal",
        "runner",
        "scheme",
        "scope_base",
        "send_deadline",
        "server",
        "state",
        "tls",
        "transport",
        "write_paused",
        "wsgi_environ",
    )

    def __init__(self, state: ServerState, origin: ProxyHeader | None = None) -> None:
        self.state = state
        self.origin = origin  # the connection's PROXY protocol header (io/accept.py), if it had to send one
        self.proxy_trust: AllowList | None = None  # see connection_made
        self.conn = H1Connection(state.limits, state.backend, state.upgrades, state.fast_lane)  # type: ignore[arg-type]  # checked by io.loop.http_backend
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.cycle: HTTPCycle | None = None  # the cycle whose app is running (responses go in order)
        self.receiving: HTTPCycle | None = None  # the cycle body bytes belong to (may be a queued one)
        # Complete or partial requests waiting their turn: a few at most (reading pauses while any wait),
        # so a list, not a deque (624 bytes for every connection, most of which never pipeline).
        self.pipeline: list[HTTPCycle] = []
        self.write_paused = False
        self.reading_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closing = False
        self.phase = PHASE_IDLE
        self.deadline = 0.0
        # While ACTIVE, `deadline` is the earlier of these: when the app's wait for body bytes, or for the
        # client to take more of the response, runs out (inf: no such wait). Two, as an app may wait for
        # both at once (Starlette's StreamingResponse reads while it streams).
        self.read_deadline = INF
        self.send_deadline = INF
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.runner = AppRunner(state.loop, state.hosts)
        self.pending_upgrade: Request | None = None  # a WebSocket handshake waiting for earlier responses
        # Bad input that came after whole requests in one read: answered once those are (see cycle_complete).
        self.refusal: RemoteProtocolError | None = None
        self.scope_base: Any = None  # what its ASGI scopes share (interfaces/asgi.py build_scope)
        self.wsgi_environ: Any = None  # the WSGI adapter's per-connection environ (its ConnectionEnviron)
        self.preface_part = b""  # the start of an HTTP/2 preface's first line, held (see data_received)
        self.scheme = "http"
        self.tls: TLSInfo | None = None  # the ASGI tls extension, on a TLS connection
        self.head = b""  # the response head, held until the first body part
        self.pending: list[bytes] | None = None  # streamed body parts not yet written (see response_body)
        self.pending_size = 0

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        state = self.state
        state.connections.add(self)
        self.client = address(transport.get_extra_info("peername"))
        self.server = state.server_address(transport.get_extra_info("sockname"))
        origin = self.origin
        if origin is not None:
            if origin.client is not None:  # (None: a LOCAL or UNKNOWN header, the socket's addresses hold)
                self.client, self.server = origin.client, origin.server
            if origin.ssl is not None:  # the client's TLS, ended by the proxy in front
                self.scheme = "https"
                self.tls = proxied_tls_info(origin.ssl)
        # Whether this peer's proxy headers are believed: decided once for all the connection's requests.
        allow = state.forwarded_allow
        if allow is not None and allow.trusts_peer(self.client[0] if self.client is not None else None):
            self.proxy_trust = allow
        self.deadline = state.loop.time() + state.timeout_keep_alive
        if state.shutting_down:
            self.closing = True
        if state.ssl_context is not None:
            self._tls_made(transport)

    def _tls_made(self, transport: asyncio.BaseTransport) -> None:
        """A TLS connection, its handshake done (io/accept.py): HTTP/2 if the client chose it by ALPN."""
        ssl_object = transport.get_extra_info("ssl_object")
        self.scheme = "https"
        self.tls = tls_scope_info(ssl_object)
        if self.state.http2 and alpn_protocol(ssl_object) == "h2":
            self.switch_to_h2(b"", None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = PHASE_CLOSED
        self.conn.release()
        self.runner.close()
        self.state.connections.discard(self)
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.disconnect()
        self.pipeline.clear()
        self.receiving = None  # it refers back to this protocol: freed now, not by the cyclic collector
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        # The client half-closed. A request already received is still answered; nothing more can come.
        cycle = self.cycle
        if cycle is not None and cycle.body_complete and cycle.state is not ABORTED:
            self.closing = True
            cycle.peer_closed()  # an app waiting in receive() learns the client is gone (it may still send)
            return True  # half-open until the response is out (on TLS too: io/tlsconn.py)
        return False

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if self.phase is PHASE_IDLE:
            # The fast lane: one whole bodyless request while the connection waits (see receive_simple).
            request = conn.receive_simple(data)
            if request is not None:
                # (Read first, then called: Python 3.11 looks a call of an instance attribute, such as
                # this bound method of the target's, up the generic way.)
                new_cycle = self.state.new_cycle
                cycle = new_cycle(self, request)
                cycle.body_complete = True  # no body: end_body() with nobody yet to wake
                self.receiving = cycle
                self._start(cycle)
                return
        if self.refusal is not None:
            return  # nothing after bad input is read (the core would only repeat the error)
        part = self.preface_part
        if part:
            self.preface_part = b""
            self.phase = PHASE_IDLE
            data = part + data
        if (
            self.phase is PHASE_IDLE
            and self.state.http2
            and data[:1] == b"P"
            and self.cycle is None
            and not self.pipeline
            and not self.conn.in_head
        ):
            # RFC 9113 §3.3: HTTP/2 by prior knowledge; the preface stands where a request would. Its
            # first line may come in pieces: they are held (no deadline but the request head's) until
            # they are the line or something else.
            if data[:14] == _PRI_LINE:
                self.switch_to_h2(data, None)
                return
            if len(data) < 14 and _PRI_LINE.startswith(data):
                self.preface_part = data
                self.phase = PHASE_HEAD
                self.deadline = self.state.loop.time() + self.state.timeout_request_header
                return
        if self.phase is PHASE_IDLE and data[0] == 0x16 and looks_like_tls_client_hello(data):
            # A TLS client on a cleartext port: say so, rather than "400 invalid method".
            self.state.log_protocol_error(self, RemoteProtocolError("TLS handshake on a plain-HTTP port"))
            self.close()
            return
        try:
            events = conn.receive_data(data)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return
        if events:
            self._handle(events)
        if conn.their_error is not None:
            self._refuse_after(conn.their_error)
            return
        if self.phase is PHASE_IDLE and conn.in_head:
            # Bytes of a head arrived but not all of it: from now on the head must complete in time.
            self.phase = PHASE_HEAD
            self.deadline = self.state.loop.time() + self.state.timeout_request_header

    def _handle(self, events: list[Event]) -> None:
        # All events of one read are dispatched before an app starts, so a request whose body arrived
        # with its head is complete when its app first runs.
        start = None
        for event in events:
            kind = type(event)
            if kind is Request:
                if event.upgrade is not None:  # type: ignore[union-attr]
                    # The core stops after an accepted upgrade (WebSocket), so this is the last request.
                    self._upgrade(event, start)  # type: ignore[arg-type]
                    return
                cycle = self.state.new_cycle(self, event)  # type: ignore[arg-type]
                self.receiving = cycle
                if self.cycle is None and start is None:
                    start = cycle
                else:
                    self.pipeline.append(cycle)
            elif kind is EndOfMessage:
                if self.receiving is not None:
                    self.receiving.end_body()
            elif self.receiving is not None:
                self.receiving.feed_body(event.data)  # type: ignore[union-attr]
        if self.pipeline:
            # Hold further requests until the ones before are answered (bounded buffering).
            self.pause_reading()
        if start is not None:
            self._start(start)

    def _start(self, cycle: HTTPCycle) -> None:
        state = self.state
        if self.phase is PHASE_CLOSED:
            return
        self.cycle = cycle
        self.phase = PHASE_ACTIVE
        self.conn.start_request(cycle.request)
        if self.closing:
            self.conn.keep_alive = False
        if state.timed:
            cycle.start_time = perf_counter()  # (uvloop's loop.time() is per loop turn, in ms)
        if state.limit_concurrency is None:
            # ServerState.admit's count, inline where there is no limit to check (bench "hello8": -0.9%).
            state.active += 1
            cycle.counted = True
        elif not state.admit(cycle):
            self._reply_error(cycle, 503, "service unavailable: too many requests in progress")
            return
        app = state.sole_app
        if app is not None:  # the ASGI app alone: its target's start, without the call (bench "hello")
            self.runner.run(cycle.run(app))
        else:
            start_cycle = state.start_cycle  # (io/dispatch.py: bound once to the target's own start)
            start_cycle(cycle, self.runner)

    # -- the Stream of the request being answered (interfaces/stream.py)
    def response_start(self, status: int, headers: Headers) -> None:
        self.head = self.conn.response_head(status, headers)

    def response_body(self, data: bytes, more: bool) -> None:
        data = self.conn.response_body(data, more)
        head = self.head
        if head:
            self.head = b""
            if len(data) < _COPY_LIMIT:
                data = head + data
                head = b""
        if not more:
            pending = self.pending
            if pending is not None:
                self.pending = None
                pending.append(data)
                self.transport.writelines(pending)
            elif head:
                self.transport.writelines((head, data))  # a large body is not copied (bench "post1m")
            elif data:
                self.transport.write(data)  # head and a small body in one write (bench "hello")
            return
        if data or head:
            # Parts sent without waiting in between go out in one write at the end of this loop turn
            # (or sooner past WRITE_BATCH): one syscall instead of one per part (bench "stream").
            pending = self.pending
            if pending is None:
                pending = self.pending = [head, data] if head else [data]
                self.pending_size = len(head) + len(data)
                self.state.loop.call_soon(self._flush)
            else:
                pending.append(data)
                self.pending_size += len(data)
            if self.pending_size > WRITE_BATCH:
                self._flush()

    def response_whole(self, status: int, headers: Headers, body: bytes) -> None:
        # response_start and response_body(body, False) in one call (interfaces/stream.py): no head held
        # in between (bench wsgi "hello"). Nothing of this response was sent, so nothing is pending.
        conn = self.conn
        head = conn.response_head(status, headers)
        data = conn.response_body(body, False)
        if len(data) < _COPY_LIMIT:
            self.transport.write(head + data)
        else:
            self.transport.writelines((head, data))

    def _flush(self) -> None:
        pending = self.pending
        if pending is not None:
            self.pending = None
            if self.phase is not PHASE_CLOSED:
                self.transport.writelines(pending)

    def response_continue(self) -> None:
        self.transport.write(CONTINUE_RESPONSE)

    def response_informational(self, status: int, headers: Headers) -> None:
        cycle = self.cycle
        # RFC 9110 §15.2: a server MUST NOT send a 1xx response to an HTTP/1.0 client.
        if cycle is not None and cycle.request.http_version == "1.1":
            self.transport.write(self.conn.response_head(status, headers))

    def response_trailers(self, headers: Headers) -> None:
        data = self.conn.response_trailers(headers)
        pending = self.pending
        if pending is not None:
            self.pending = None
            pending.append(data)
            self.transport.writelines(pending)
        elif data:
            self.transport.write(data)

    async def sendfile(self, fd: int, offset: int, count: int) -> int | None:
        # Zero copy on a cleartext connection with nothing queued before the file (interfaces/files.py).
        transport = self.transport
        room = self.conn.body_room
        if self.state.ssl_context is not None or room is None or self.phase is PHASE_CLOSED:
            return None
        if self.pending is not None:
            self._flush()  # body parts before the file (a multipart/byteranges part's head)
        if count > room:
            raise LocalProtocolError("response body longer than its content-length")
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_write_buffer_size():
            return None
        head = self.head
        self.head = b""
        job = FileSend(sock, head, fd, offset, count)
        if not job.step():
            await self._sendfile_wait(job)
        self.conn.response_body_sent(job.sent)
        if job.gone or self.phase is PHASE_CLOSED:
            raise ClientDisconnected("client disconnected")
        return job.sent

    async def _sendfile_wait(self, job: FileSend) -> None:
        """Step ``job`` each time the socket has room, until it is done or the connection closes; a
        client that takes nothing for --timeout-send is cut. The loop watches a duplicate of the socket's
        descriptor (the transport's own is registered with the loop already), and steps the job in its
        callback: one sendfile per wakeup, no coroutine resumed until the end (bench static "file1m")."""
        loop = self.state.loop
        waiter = self._drain_waiter = loop.create_future()  # (connection_lost sets it too)

        def writable() -> None:
            if self.phase is PHASE_CLOSED or job.step():
                _wake(waiter)
            else:
                self.wait_started(WAIT_SEND)  # the client took more: its deadline starts again

        fd = os.dup(job.sock_fd)
        try:
            loop.add_writer(fd, writable)
            self.wait_started(WAIT_SEND)
            await waiter
        finally:
            self.wait_ended(WAIT_SEND)
            loop.remove_writer(fd)
            os.close(fd)

    def sendfile_start(self, status: int, headers: Headers) -> tuple[socket.socket, bytes] | None:
        head = self.conn.response_head(status, headers)
        transport = self.transport
        sock = transport.get_extra_info("socket")
        if sock is not None and self.state.ssl_context is None and transport.get_write_buffer_size() == 0:
            try:
                # The worker sends on its own descriptor of the socket: it stays valid even if the
                # transport closes meanwhile (a closed and reused descriptor number would be another
                # client's), and the loop writes nothing on this connection until the worker is done.
                return socket.socket(fileno=os.dup(sock.fileno())), head
            except OSError:
                pass
        self.head = head
        return None

    def sendfile_done(self, sent: int) -> None:
        conn = self.conn
        conn.response_body_sent(sent)
        conn.response_body(b"", False)  # cut short (the client went away, the file shrank): no keep-alive

    async def drain(self) -> None:
        if not self.write_paused or self.phase is PHASE_CLOSED:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.state.loop.create_future()
        await waiter

    def wait_started(self, kind: int) -> None:
        if self.phase is PHASE_ACTIVE:
            state = self.state
            if kind == WAIT_READ:
                self.read_deadline = state.loop.time() + state.timeout_read
            else:
                self.send_deadline = state.loop.time() + state.timeout_send
            self.deadline = min(self.read_deadline, self.send_deadline)

    def wait_ended(self, kind: int) -> None:
        if kind == WAIT_READ:
            self.read_deadline = INF
        else:
            self.send_deadline = INF
        if self.phase is PHASE_ACTIVE:  # (not a keep-alive deadline set since)
            self.deadline = min(self.read_deadline, self.send_deadline)

    def pause_reading(self) -> None:
        if not self.reading_paused and self.phase is not PHASE_CLOSED:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if (
            self.reading_paused
            and not self.pipeline
            and self.refusal is None
            and self.phase is not PHASE_CLOSED
            and self.pending_upgrade is None
        ):
            self.reading_paused = False
            self.transport.resume_reading()

    def cycle_complete(self, cycle: HTTPCycle) -> None:
        """The cycle's response is complete (or was aborted)."""
        state = self.state
        if state.timed:  # an access line or metrics to give: ServerState.request_done does it all
            state.request_done(self, cycle)
        elif cycle.counted:
            # ServerState.request_done's count, inline where nothing is timed (bench "hello8": -1.4%).
            state.active -= 1
            state.completed += 1
            if state.completed == state.request_limit:
                state.on_request_limit()
            cycle.counted = False
        if cycle.state is ABORTED:
            self.close()
            return
        if not cycle.body_complete:
            if self.phase is not PHASE_CLOSED:
                # The app answered without reading the whole body; rather than reading and discarding an
                # unknown amount, end the connection (the response said nothing about reuse).
                self.close()
            return
        # The exchange is over: the connection takes its next request, or ends.
        if self.cycle is not cycle:
            return
        self.cycle = None
        conn = self.conn
        if not conn.keep_alive or self.closing or self.phase is PHASE_CLOSED:
            self.close()
            return
        conn.finish_cycle()
        if self.pipeline:
            nxt = self.pipeline.pop(0)
            if not self.pipeline:
                self.resume_reading()
            # Not from inside this request's own step (we may be in its send()): next loop turn.
            self.cycle = nxt
            self.state.loop.call_soon(self._start, nxt)
            return
        self.receiving = None
        refusal = self.refusal
        if refusal is not None:  # every request before the bad input is answered: now its answer
            self._refuse(refusal.status, str(refusal))
            return
        self.phase = PHASE_IDLE
        self.deadline = state.loop.time() + state.timeout_keep_alive
        if self.reading_paused:
            if self.pending_upgrade is not None:  # (reading is paused while a handshake waits its turn)
                request, self.pending_upgrade = self.pending_upgrade, None
                self._upgrade(request, None)
                return
            self.resume_reading()

    # -- protocol switches (only for requests whose `upgrade` is set: nothing here runs for plain HTTP)
    def switch_to_h2(self, data: bytes, upgrade: tuple[Request, bytes] | None) -> None:
        """Hand the connection to HTTP/2: ``data`` is what arrived after the switch point."""
        from tricorn.io.h2 import H2Protocol

        h2 = H2Protocol(self.state)
        transport = self.transport
        self.close_for_upgrade()
        transport.set_protocol(h2)
        h2.tls = self.tls
        h2.proxy_trust = self.proxy_trust
        h2.start(transport, self.client, self.server, self.scheme, upgrade)
        if self.reading_paused:
            transport.resume_reading()
        if data:
            h2.data_received(data)

    def _upgrade(self, request: Request, start: HTTPCycle | None) -> None:
        """A WebSocket or h2c handshake: switch once the requests before it are answered."""
        self.receiving = None
        if start is not None:
            self._start(start)
        if self.cycle is not None or self.pipeline:
            self.pending_upgrade = request
            self.pause_reading()
            return
        if self.phase is PHASE_CLOSED or self.closing:
            self.close()
            return
        if request.upgrade == b"h2c":
            self._upgrade_h2c(request)
            return
        from tricorn.io.ws import start_websocket

        self.phase = PHASE_ACTIVE
        start_websocket(self, request)

    def _upgrade_h2c(self, request: Request) -> None:
        """RFC 7540 §3.2 (kept by RFC 9113 §3.1 for servers that offer it): ``Upgrade: h2c`` with exactly
        one HTTP2-Settings; the request is answered on stream 1. Without valid settings the request is
        served over HTTP/1.1, and the connection closes after it (the core has stopped parsing)."""
        settings = [v for n, v in request.headers if n == b"http2-settings"]
        connection = b",".join(v for n, v in request.headers if n == b"connection").lower()
        if len(settings) == 1 and b"http2-settings" in connection:
            try:
                _check_h2_settings(settings[0])
            except ValueError:
                pass
            else:
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
                )
                self.switch_to_h2(self.conn.trailing_data, (request, settings[0]))
                return
        self.closing = True
        self.conn.keep_alive = False
        request.upgrade = None
        cycle = self.state.new_cycle(self, request)
        cycle.body_complete = True
        self._start(cycle)

    def close_for_upgrade(self) -> None:
        """The transport now belongs to another protocol: this one lets go of it without closing it."""
        self.phase = PHASE_CLOSED
        self.conn.release()
        self.state.connections.discard(self)
        self.runner.close()

    def app_error(self, cycle: HTTPCycle, message: str, exc: BaseException | None) -> None:
        self._flush()  # what the app sent before failing still reaches the client, then the cut
        self.head = b""
        self.state.log_app_error(message, exc)
        if cycle.state is RESPONSE_START and self.phase is not PHASE_CLOSED:
            cycle.state = RESPONSE_DONE
            self._reply_error(cycle, 500, "internal server error")
        elif cycle.state is not RESPONSE_DONE:
            # Part of the response is out: the only honest signal left is to cut the connection.
            cycle.state = ABORTED
            self.cycle_complete(cycle)

    # -- errors and closing
    def _reply_error(self, cycle: HTTPCycle, status: int, message: str) -> None:
        """Answer the current request with an error response and close after it."""
        cycle.state = RESPONSE_DONE
        cycle.status = status
        body = error_response(status, message)
        cycle.response_bytes = len(body)
        self.transport.write(body)
        self.conn.keep_alive = False
        self.cycle_complete(cycle)

    def protocol_error(self, exc: ProtocolError) -> None:
        """A request that cannot be parsed: answer its status (if nothing is being answered) and close."""
        self.state.log_protocol_error(self, exc)
        self.pause_reading()
        if self.cycle is None and not isinstance(exc, LocalProtocolError):
            self._refuse(exc.status, str(exc))
        else:
            # A response is in progress for an earlier request: let it finish, then close.
            self.closing = True
            self.conn.keep_alive = False  # its head, if not sent yet, says so
            self.pipeline.clear()
            if self.receiving is not None and self.receiving is not self.cycle:
                self.receiving = None
            elif self.receiving is not None and not self.receiving.body_complete:
                cycle = self.receiving
                cycle.disconnect()
                if cycle.state is RESPONSE_START and not isinstance(exc, LocalProtocolError):
                    # Its own body broke the rules (a chunked body over the limit: 413) before the app
                    # answered: the client is owed that status, not the app's reaction to the disconnect.
                    self._reply_error(cycle, exc.status, str(exc))

    def _refuse_after(self, exc: RemoteProtocolError) -> None:
        """Bad input followed whole requests in the same read (pipelining): those are answered first, in
        order, then the bad input's status, and the connection closes (RFC 9112 §9.3.2: responses in the
        order of the requests)."""
        self.state.log_protocol_error(self, exc)
        self.pause_reading()
        if self.phase is PHASE_CLOSED:
            return
        if self.cycle is None and not self.pipeline:  # those requests were all answered already
            self._refuse(exc.status, str(exc))
            return
        self.refusal = exc

    def _refuse(self, status: int, message: str) -> None:
        """Answer input that is no request the app can see with ``status``, log it, and close."""
        body = error_response(status, message)
        self.transport.write(body)
        self.state.log_refused(self, status, len(body))
        self.close()

    def timeout(self, now: float) -> None:
        """Called by the server's tick when ``deadline`` has passed."""
        phase = self.phase
        if phase is PHASE_IDLE:
            self.close()
        elif phase is PHASE_HEAD:
            self.state.log_protocol_error(self, RemoteProtocolError("request head timed out", status=408))
            self._refuse(408, "request head not received in time")
        elif phase is PHASE_ACTIVE:
            if self.read_deadline <= now:
                self._read_timeout()
            elif self.send_deadline <= now:
                self._send_timeout()
            else:  # a deadline left from before the request: nothing is due until the app waits
                self.deadline = min(self.read_deadline, self.send_deadline)

    def _read_timeout(self) -> None:
        """The app waited for body bytes longer than --timeout-read: 408 if the response has not begun (its
        head is held until the first body part), else the connection is cut. The app is told the client
        left."""
        state = self.state
        cycle = self.cycle
        reason = ClientTimeout.reading(state.timeout_read)
        self.read_deadline = self.send_deadline = INF
        if cycle is not None and (cycle.state is RESPONSE_START or self.head):
            state.log_timeout(self, f"408 {reason}")
            self.head = b""
            self._reply_error(cycle, 408, "request body not received in time")
        else:
            state.log_timeout(self, f"{reason}: connection closed")
            self.abort_transport()
        if cycle is not None:
            cycle.disconnect(reason)

    def _send_timeout(self) -> None:
        """The app waited for the client to take more of the response longer than --timeout-send: the
        connection is cut (what is queued for it is dropped, not flushed to a client that does not read)."""
        state = self.state
        reason = ClientTimeout.sending(state.timeout_send)
        self.read_deadline = self.send_deadline = INF
        state.log_timeout(self, f"{reason}: connection closed")
        self.abort_transport()
        if self.cycle is not None:
            self.cycle.disconnect(reason)

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the response in progress."""
        self.closing = True
        if self.cycle is None:
            self.close()
        elif self.conn.response_state is RS_HEAD:  # its head is not written yet
            self.conn.keep_alive = False

    def abort(self) -> None:
        """The graceful timeout is over: tell the app the client is gone and drop the connection."""
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.disconnect()
        self.close()

    def close(self) -> None:
        if self.phase is not PHASE_CLOSED:
            self.phase = PHASE_CLOSED
            self.transport.close()

    def abort_transport(self) -> None:
        """Close now, dropping unsent bytes (``close`` would wait for a client that does not read)."""
        if self.phase is not PHASE_CLOSED:
            self.phase = PHASE_CLOSED
            self.transport.abort()


def _check_h2_settings(value: bytes) -> None:
    """RFC 7540 §3.2.1: HTTP2-Settings is the base64url payload of a SETTINGS frame (6 bytes a setting)."""
    import base64
    import binascii

    try:
        payload = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid http2-settings") from exc
    if len(payload) % 6:
        raise ValueError("invalid http2-settings")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
