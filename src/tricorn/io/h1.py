"""The asyncio shell for HTTP/1.1: moves bytes between a transport and an :class:`H1Connection`.

Decisions about the protocol live in the core; this class owns the socket-side concerns: which cycle
receives the body, starting apps in request order (pipelining), read and write flow control, the
connection's deadlines, and closing.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from tricorn.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from tricorn.interfaces.asgi import ABORTED, RESPONSE_DONE, RESPONSE_START, HTTPCycle, build_scope
from tricorn.io.flow import WriteFlow
from tricorn.io.runner import AppRunner
from tricorn.proto.h1 import RS_HEAD, EndOfMessage, Event, H1Connection, Request, error_response

if TYPE_CHECKING:
    from tricorn.io.server import ServerState


class Phase(Enum):
    IDLE = 0  # no request in progress and no bytes of one: the keep-alive deadline runs
    HEAD = 1  # part of a request head has arrived: the request-header deadline runs
    ACTIVE = 2  # a request is being served: no deadline (the app decides)
    CLOSED = 3


PHASE_IDLE, PHASE_HEAD, PHASE_ACTIVE, PHASE_CLOSED = Phase


class H1Protocol(WriteFlow, asyncio.Protocol):
    __slots__ = (
        "_drain_waiter",
        "client",
        "closing",
        "conn",
        "cycle",
        "deadline",
        "pending_upgrade",
        "phase",
        "pipeline",
        "reading_paused",
        "receiving",
        "refusal",
        "runner",
        "server",
        "state",
        "transport",
        "write_paused",
        "wsgi_environ",
    )

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.conn = H1Connection(state.limits, state.backend, state.upgrades)  # type: ignore[arg-type]  # checked by io.loop.http_backend
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.cycle: HTTPCycle | None = None  # the cycle whose app is running (responses go in order)
        self.receiving: HTTPCycle | None = None  # the cycle body bytes belong to (may be a queued one)
        self.pipeline: deque[HTTPCycle] = deque()  # complete or partial requests waiting their turn
        self.write_paused = False
        self.reading_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.closing = False
        self.phase = PHASE_IDLE
        self.deadline = 0.0
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.runner = AppRunner(state.loop)
        self.pending_upgrade: Request | None = None  # a WebSocket handshake waiting for earlier responses
        # Bad input that came after whole requests in one read: answered once those are (see _finish).
        self.refusal: RemoteProtocolError | None = None
        self.wsgi_environ: dict[str, object] | None = None  # the WSGI adapter's per-connection environ keys

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        state = self.state
        state.connections.add(self)
        self.client = _address(transport.get_extra_info("peername"))
        self.server = state.server_address(transport.get_extra_info("sockname"))
        self.deadline = state.loop.time() + state.timeout_keep_alive
        if state.shutting_down:
            self.closing = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = PHASE_CLOSED
        self.runner.close()
        self.state.connections.discard(self)
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.disconnect()
        self.pipeline.clear()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        # The client half-closed. A request already received is still answered; nothing more can come.
        cycle = self.cycle
        if cycle is not None and cycle.body_complete and cycle.state is not ABORTED:
            self.closing = True
            cycle.peer_closed()  # an app waiting in receive() learns the client is gone (it may still send)
            return True
        return False

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if self.phase is PHASE_IDLE:
            # The fast lane: one whole bodyless request while the connection waits (see receive_simple).
            request = conn.receive_simple(data)
            if request is not None:
                cycle = self._new_cycle(request)
                cycle.body_complete = True  # no body: end_body() with nobody yet to wake
                self.receiving = cycle
                self._start(cycle)
                return
        if self.refusal is not None:
            return  # nothing after bad input is read (the core would only repeat the error)
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
                cycle = self._new_cycle(event)  # type: ignore[arg-type]
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

    def _new_cycle(self, request: Request) -> HTTPCycle:
        state = self.state
        if state.wsgi is not None:
            # A WSGICycle offers the shell HTTPCycle's interface (duck-typed): the one interface check.
            return state.wsgi.new_cycle(self, self.conn, request)  # type: ignore[return-value]
        scope = build_scope(request, self.server, self.client, "http", state.root_path, state.lifespan_state)
        return HTTPCycle(self, self.conn, request, scope)

    def _start(self, cycle: HTTPCycle) -> None:
        state = self.state
        if self.phase is PHASE_CLOSED:
            return
        self.cycle = cycle
        self.phase = PHASE_ACTIVE
        self.conn.start_request(cycle.request)
        if self.closing:
            self.conn.keep_alive = False
        if state.access_log is not None:
            cycle.start_time = state.loop.time()
        limit = state.limit_concurrency
        if limit is not None and state.active >= limit:
            self._reply_error(cycle, 503, "service unavailable: too many requests in progress")
            return
        state.active += 1
        cycle.counted = True
        wsgi = state.wsgi
        if wsgi is not None:
            wsgi.start(cycle)  # type: ignore[arg-type]  # a WSGI cycle runs on the pool: no coroutine
        else:
            self.runner.run(cycle.run(state.app))

    # -- Channel protocol, used by the cycles
    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, data: Iterable[bytes]) -> None:
        self.transport.writelines(data)

    async def drain(self) -> None:
        if not self.write_paused or self.phase is PHASE_CLOSED:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():
            waiter = self._drain_waiter = self.state.loop.create_future()
        await waiter

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
        if cycle.counted:
            state.active -= 1
            state.completed += 1
            if state.completed == state.request_limit:  # a pre-fork worker's max-requests
                state.on_request_limit()
            cycle.counted = False
        if state.access_log is not None and cycle.state is RESPONSE_DONE:
            state.log_access(self, cycle)
        if cycle.state is ABORTED:
            self.close()
            return
        if cycle.body_complete:
            self._finish(cycle)
        elif self.phase is not PHASE_CLOSED:
            # The app answered without reading the whole body; rather than reading and discarding an
            # unknown amount, end the connection (the response said nothing about reuse).
            self.close()

    def _finish(self, cycle: HTTPCycle) -> None:
        if self.cycle is not cycle:
            return
        self.cycle = None
        conn = self.conn
        if not conn.keep_alive or self.closing or self.phase is PHASE_CLOSED:
            self.close()
            return
        conn.finish_cycle()
        if self.pipeline:
            nxt = self.pipeline.popleft()
            if not self.pipeline:
                self.resume_reading()
            # Not from inside this request's own step (we may be in its send()): next loop turn.
            self.cycle = nxt
            self.state.loop.call_soon(self._start, nxt)
            return
        self.receiving = None
        refusal = self.refusal
        if refusal is not None:  # every request before the bad input is answered: now its answer
            self.transport.write(error_response(refusal.status, str(refusal)))
            self.close()
            return
        self.phase = PHASE_IDLE
        self.deadline = self.state.loop.time() + self.state.timeout_keep_alive
        if self.reading_paused:
            if self.pending_upgrade is not None:  # (reading is paused while a handshake waits its turn)
                request, self.pending_upgrade = self.pending_upgrade, None
                self._upgrade(request, None)
                return
            self.resume_reading()

    # -- WebSocket (only for requests whose `upgrade` is set: nothing here runs for plain HTTP)
    def _upgrade(self, request: Request, start: HTTPCycle | None) -> None:
        """A WebSocket handshake: hand the connection over once the requests before it are answered."""
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
        from tricorn.io.ws import start_websocket

        self.phase = PHASE_ACTIVE
        start_websocket(self, request)

    def close_for_upgrade(self) -> None:
        """The transport now belongs to another protocol: this one lets go of it without closing it."""
        self.phase = PHASE_CLOSED
        self.state.connections.discard(self)
        self.runner.close()

    def app_error(self, cycle: HTTPCycle, message: str, exc: BaseException | None) -> None:
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
            self.transport.write(error_response(exc.status, str(exc)))
            self.close()
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
            self.transport.write(error_response(exc.status, str(exc)))
            self.close()
            return
        self.refusal = exc

    def timeout(self, now: float) -> None:
        """Called by the server's tick when ``deadline`` has passed."""
        if self.phase is PHASE_IDLE:
            self.close()
        elif self.phase is PHASE_HEAD:
            self.state.log_protocol_error(self, RemoteProtocolError("request head timed out", status=408))
            self.transport.write(error_response(408, "request head not received in time"))
            self.close()

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


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None
