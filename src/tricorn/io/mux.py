"""What the streams of a multiplexed connection share, over HTTP/2 (:mod:`tricorn.io.h2`) and HTTP/3
(:mod:`tricorn.io.h3`): each request is a stream object answering its cycle through the
:class:`~tricorn.interfaces.stream.Stream` contract, beside others on one connection. The framing, flow
control and resets differ and stay in each protocol's module; what is the same to the letter lives here once:
the connection's addresses as the cycle reads them, the Content-Length a response may still send, the
steps of a response (a 1xx at once, a final head held until its first body part, trailers after the
body), the read and send deadlines of an app waiting on its client, an app's failure, an error
response's accounting, and how a cycle completes, a stream is given up on and a request is refused
(each protocol's error codes as data: ``APP_FAILED``, ``CANCELLED``, ``STOPPED``). A stream sends through
hooks, each protocol's own: ``send_head`` (HEADERS), ``send_body`` (DATA, within its flow control),
``send_response`` (the two at once, where the protocol has a shorter way), ``send_trailers`` and
``schedule_send`` (the write at the end of the loop turn); a connection resets and forgets its streams
through ``reset_stream``, ``stop_receiving``, ``stop_after_response``, ``stream_done`` and
``forget_stream``."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, Any

from tricorn.errors import ClientTimeout, LocalProtocolError, RemoteProtocolError
from tricorn.interfaces.stream import ABORTED, RESPONSE_DONE, RESPONSE_START, WAIT_READ, Headers
from tricorn.proto.h2 import response_head, response_headers, trailer_fields

if TYPE_CHECKING:
    import socket

    from tricorn.io.runner import AppRunner
    from tricorn.io.tls import TLSInfo
    from tricorn.io.ws import WSProtocol
    from tricorn.proto.forwarded import AllowList
    from tricorn.proto.h1 import Request

INF = float("inf")
# Streams a client may reset before their response in one second (MuxProtocol.reset_flood).
RESET_BUDGET = 200


def error_head(status: int, body: bytes) -> list[tuple[bytes, bytes]]:
    """The head of an error response the server makes itself (plain text ``body``)."""
    return response_headers(
        status, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    )


class MuxStream:
    """The shared part of H2Stream and H3Stream (their own classes hold the slots)."""

    __slots__ = (
        "client",
        "cycle",
        "ended",
        "head",
        "id",
        "length",
        "proto",
        "proxy_trust",
        "read_deadline",
        "reading_paused",
        "received",
        "reset",
        "scheme",
        "send_deadline",
        "server",
        "tls",
        "tunnel",
        "waiter",
    )

    proto: Any  # the connection: H2Protocol or H3Protocol

    def __init__(self, proto: Any, stream_id: int) -> None:
        self.proto = proto
        self.id = stream_id
        # What the cycle reads of the connection, copied as the stream starts (each a slot read, not a
        # property call, for every request's scope: bench h2): the connection has its addresses, scheme,
        # TLS and proxy trust before its first stream, and they do not change.
        self.scheme: str = proto.scheme
        self.client: tuple[str, int] | None = proto.client
        self.server: tuple[str, int] | None = proto.server
        self.tls: TLSInfo | None = proto.tls
        self.proxy_trust: AllowList | None = proto.proxy_trust
        self.cycle: Any = None
        # A final response head, held until its first body part.
        self.head: list[tuple[bytes, bytes]] | None = None
        self.received = 0  # request body bytes
        self.length: int | None = None  # what is left of the response's Content-Length (-1: no body)
        self.reading_paused = False
        self.ended = False  # the request body is complete
        self.reset = False  # reset (either side), or the connection is gone
        self.waiter: asyncio.Future[None] | None = None
        self.tunnel: WSProtocol | None = None  # a WebSocket over this stream (RFC 8441, RFC 9220)
        self.read_deadline = INF  # when the app's wait for body bytes runs out (inf: not waiting)
        self.send_deadline = INF  # when its wait for room to send more runs out

    # -- what the cycle reads
    @property
    def scope_base(self) -> Any:
        return self.proto.scope_base

    @scope_base.setter
    def scope_base(self, value: Any) -> None:
        self.proto.scope_base = value

    @property
    def wsgi_environ(self) -> Any:
        return self.proto.wsgi_environ

    @wsgi_environ.setter
    def wsgi_environ(self, value: Any) -> None:
        self.proto.wsgi_environ = value

    def set_length(self, status: int, length: int | None) -> None:
        """What a final response head whose Content-Length is ``length`` lets the body be: none for HEAD,
        204 and 304 (RFC 9110 §6.4.1), its Content-Length, or unbounded."""
        cycle = self.cycle
        if cycle is not None and (status == 204 or status == 304 or cycle.request.method == b"HEAD"):
            self.length = -1
        else:
            self.length = length

    def count_body(self, data: bytes) -> bytes:
        """``data`` as the response may carry it: nothing after a bodiless head; LocalProtocolError past
        its Content-Length."""
        length = self.length
        if length is not None:
            if length < 0:
                return b""  # HEAD, 204, 304: the body is not sent
            length -= len(data)
            if length < 0:
                raise LocalProtocolError("response body longer than its content-length")
            self.length = length
        return data

    # -- the response: the same steps over both protocols; the frames are each protocol's own (the hooks)
    def response_start(self, status: int, headers: Headers) -> None:
        fields, length = response_head(status, headers)
        if status < 200:
            # An informational response (103 Early Hints) goes out at once and does not end the exchange.
            if not self.reset:
                self.send_head(fields, False)
                self.schedule_send()
            return
        self.set_length(status, length)
        self.head = fields  # held until the first body part: the two go out together

    def response_informational(self, status: int, headers: Headers) -> None:
        self.response_start(status, headers)  # (a 1xx goes out at once)

    def response_whole(self, status: int, headers: Headers, body: bytes) -> None:
        self.response_start(status, headers)
        self.response_body(body, False)

    def response_body(self, data: bytes, more: bool) -> None:
        data = self.count_body(data)
        if self.reset:
            return
        head = self.head
        if head is not None:
            self.head = None
            if not more and not data:  # a response without a body: the head ends the stream
                self.send_head(head, True)
            else:
                self.send_response(head, data, not more)
        else:
            self.send_body(data, not more)
        self.schedule_send()

    def response_trailers(self, headers: Headers) -> None:
        fields = trailer_fields(headers)
        if self.reset:
            return
        if self.head is not None:  # no body part went out: the head first
            self.response_body(b"", True)
        self.send_trailers(fields)

    def response_continue(self) -> None:
        if not self.reset:
            self.send_head([(b":status", b"100")], False)
            self.schedule_send()

    def sendfile_start(self, status: int, headers: Headers) -> tuple[socket.socket, bytes] | None:
        self.response_start(status, headers)
        return None  # every byte is framed (and, over QUIC, encrypted): the body goes through response_body

    async def sendfile(self, fd: int, offset: int, count: int) -> int | None:
        return None  # (the same: the cycle sends the file in pieces, interfaces/files.py)

    def send_tunnel_head(self, headers: Headers) -> None:
        """RFC 8441 §5 (RFC 9220 §3 over HTTP/3): a 2xx to the extended CONNECT opens a WebSocket
        tunnel (io/ws.py); the stream stays open."""
        if not self.reset:
            self.send_head(response_headers(200, headers), False)
            self.schedule_send()

    def sendfile_done(self, sent: int) -> None:  # pragma: no cover - sendfile_start never offers it
        raise LocalProtocolError("sendfile on a multiplexed (http/2, http/3) stream")

    def cycle_complete(self, cycle: Any) -> None:
        proto = self.proto
        proto.state.request_done(proto, cycle)
        if cycle.state is ABORTED:
            proto.reset_stream(self, proto.APP_FAILED if not self.reset else None)
        elif not self.ended and not self.reset:
            # RFC 9113 §8.1, RFC 9114 §4.1: a complete response before the whole request: the client is
            # asked to stop sending it, and the response stands.
            proto.stop_after_response(self)
        proto.stream_done(self)

    # -- the hooks: each protocol's frames
    def send_head(self, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        """A HEADERS frame of ``fields`` (ending the stream with ``end``)."""
        raise NotImplementedError

    def send_body(self, data: bytes, end: bool) -> None:
        """``data`` as DATA frames, as the protocol's flow control lets it go (ending the stream with
        ``end``; ``data`` may be empty)."""
        raise NotImplementedError

    def send_response(self, fields: list[tuple[bytes, bytes]], data: bytes, end: bool) -> None:
        """The head, then the first body part, ``data`` (not empty, or ``end``): ``send_head`` and
        ``send_body``, unless the protocol has a shorter way."""
        self.send_head(fields, False)
        self.send_body(data, end)

    def send_trailers(self, fields: list[tuple[bytes, bytes]]) -> None:
        """The trailer section, after whatever of the body is still queued; it ends the stream."""
        raise NotImplementedError

    def schedule_send(self) -> None:
        """Have what the frames queued written out once this loop turn is over."""
        raise NotImplementedError

    def pause_reading(self) -> None:
        self.reading_paused = True

    # -- events from the connection
    def end(self) -> None:
        """The request body is complete (END_STREAM, or its trailers)."""
        if self.ended:
            return  # (a request whose head ended the stream: its cycle started complete)
        self.ended = True
        if self.cycle is not None:
            self.cycle.end_body()
        tunnel = self.tunnel
        if tunnel is not None and not tunnel.eof_received():
            tunnel.transport.close()

    def gone(self, reason: ClientTimeout | None = None) -> None:
        """Reset by the client, or the connection is lost (or the server gave up on the client: ``reason``)."""
        self.reset = True
        self.wake()
        if self.cycle is not None:
            self.cycle.disconnect(reason)
        tunnel = self.tunnel
        if tunnel is not None:
            self.tunnel = None
            tunnel.connection_lost(None)

    # -- deadlines (interfaces/stream.py): kept per stream, the connection's is the earliest
    def wait_started(self, kind: int) -> None:
        if self.reset:
            return
        proto = self.proto
        state = proto.state
        if kind == WAIT_READ:
            deadline = self.read_deadline = state.loop.time() + state.timeout_read
        else:
            deadline = self.send_deadline = state.loop.time() + state.timeout_send
        if deadline < proto.deadline:
            proto.deadline = deadline

    def wait_ended(self, kind: int) -> None:
        # The connection's deadline is left as it is: its timeout() finds what is really due (a scan of the
        # streams once per expired deadline, rather than one per wait).
        if kind == WAIT_READ:
            self.read_deadline = INF
        else:
            self.send_deadline = INF

    def wake(self) -> None:
        """Let an app waiting in ``drain`` go on (there is room again, or the stream is gone)."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def app_error(self, cycle: Any, message: str, exc: BaseException | None) -> None:
        proto = self.proto
        proto.state.log_app_error(message, exc)
        if cycle.state is RESPONSE_START and not self.reset:
            cycle.state = RESPONSE_DONE
            proto.reply_error(self, cycle, 500, "internal server error")
        elif cycle.state is not RESPONSE_DONE:
            cycle.state = ABORTED
            self.cycle_complete(cycle)


class MuxProtocol:
    """The shared part of H2Protocol and H3Protocol."""

    __slots__ = ("reset_count", "reset_window")

    state: Any  # the worker's ServerState (a slot of each protocol's own)
    runner: AppRunner
    closed: bool
    reset_count: int  # streams reset by the client before their response, since reset_window
    reset_window: float

    # Each protocol's error codes for what is decided here: a stream whose app failed, one given up on (a
    # timeout, a body over the limit while its app runs), and a complete response's "stop sending".
    APP_FAILED: Any
    CANCELLED: Any
    STOPPED: Any

    # -- the hooks: each protocol's frames and bookkeeping
    def error_response(self, stream: Any, status: int, body: bytes) -> None:
        """A complete response of the server's own (``error_head``, then ``body``) on ``stream``."""
        raise NotImplementedError

    def reset_stream(self, stream: Any, code: Any) -> None:
        """End the response side of ``stream`` with ``code`` (None: it is over already, no frame), and
        mark it reset."""
        raise NotImplementedError

    def stop_receiving(self, stream: Any, code: Any) -> None:
        """Ask the client to stop sending the request of ``stream``, with ``code``."""
        raise NotImplementedError

    def stop_after_response(self, stream: Any) -> None:
        """The same with :attr:`STOPPED` once a complete response is out, where the protocol asks it."""
        raise NotImplementedError

    def stream_done(self, stream: Any) -> None:
        """``stream``'s response is complete: it leaves the connection (once what it holds is sent)."""
        raise NotImplementedError

    def forget_stream(self, stream: Any) -> None:
        """``stream`` leaves the connection now, whatever it holds."""
        raise NotImplementedError

    def reset_flood(self) -> bool:
        """Count a stream the client reset before its response: True once it has reset more than
        RESET_BUDGET in a second, making the server start work it never takes (CVE-2023-44487, "rapid
        reset"; nginx bounds this by its per-connection request count, h2o by a budget like this one)."""
        now = self.state.loop.time()
        if now - self.reset_window > 1.0:
            self.reset_window = now
            self.reset_count = 0
        self.reset_count += 1
        return self.reset_count > RESET_BUDGET

    def _start_stream(self, stream: Any, request: Request) -> None:
        """Hand ``request`` to its app through a new cycle (an extended CONNECT, RFC 8441 and RFC 9220: to
        a WebSocket; only websocket is offered)."""
        state = self.state
        if request.upgrade is not None:
            from tricorn.io.ws import start_websocket_h2

            # (H3Protocol and H3Stream offer what the RFC 8441 path uses of H2Protocol and H2Stream)
            start_websocket_h2(self, stream, request)  # type: ignore[arg-type]
            return
        cycle = state.new_cycle(stream, request)  # (io/dispatch.py: the app, a mount, static files, CGI)
        stream.cycle = cycle
        if stream.ended:
            cycle.body_complete = True
        if state.timed:  # (the clock the access log and the metrics read at the request's end)
            cycle.start_time = perf_counter()
        if not state.admit(cycle):
            self.reply_error(stream, cycle, 503, "service unavailable: too many requests in progress")
            return
        state.start_cycle(cycle, self.runner)

    def reply_error(self, stream: Any, cycle: Any, status: int, message: str) -> None:
        """Answer ``stream`` with ``status`` and ``message`` in place of its app, and account for it."""
        self.answer(stream, cycle, status, message)
        stream.cycle_complete(cycle)

    def answer(self, stream: Any, cycle: Any, status: int, message: str) -> None:
        """Send ``status`` and ``message`` as the response of ``cycle``, which is done with."""
        cycle.state = RESPONSE_DONE
        cycle.status = status
        body = (message + "\n").encode()
        cycle.response_bytes = len(body)
        self.error_response(stream, status, body)

    # -- the deadlines of apps waiting on their client (--timeout-read, --timeout-send)
    def expire_streams(self, streams: dict[int, Any], now: float) -> float | None:
        """Time out each stream of ``streams`` whose app waited past its deadline; the nearest deadline
        left (the connection's next, for the server's tick), or None if a timeout closed the connection."""
        nearest = INF
        for stream in list(streams.values()):
            if stream.read_deadline <= now:
                self.read_timeout(stream)
            elif stream.send_deadline <= now:
                self.send_timeout(stream)
            else:
                nearest = min(nearest, stream.read_deadline, stream.send_deadline)
            if self.closed:
                return None
        return nearest

    def read_timeout(self, stream: Any) -> None:
        """A stream's app waited for body bytes past --timeout-read: 408 if its response has not begun, else
        the stream is reset. Other streams go on."""
        state = self.state
        cycle = stream.cycle
        reason = ClientTimeout.reading(state.timeout_read)
        stream.read_deadline = stream.send_deadline = INF
        if cycle is not None and (cycle.state is RESPONSE_START or stream.head is not None):
            state.log_timeout(self, f"408 {reason}")
            stream.head = None  # (a head held until the first body part: never sent)
            # (a response complete before its request: HTTP/3 asks the client to stop sending the rest)
            self.reply_error(stream, cycle, 408, "request body not received in time")
            cycle.disconnect(reason)
        else:
            state.log_timeout(self, f"{reason}: stream reset")
            self.cancel_stream(stream, reason)

    def send_timeout(self, stream: Any) -> None:  # (each protocol's own)
        raise NotImplementedError

    def cancel_stream(self, stream: Any, reason: ClientTimeout) -> None:
        """Give up on ``stream`` (its app waited on its client too long): reset both ways, its app told
        why; the connection serves on."""
        self.reset_stream(stream, self.CANCELLED)
        if not stream.ended:
            self.stop_receiving(stream, self.CANCELLED)
        stream.gone(reason)
        self.forget_stream(stream)

    def refuse_stream(self, stream: Any, exc: RemoteProtocolError) -> None:
        """A request refused before its app ran (or its body over the limit): its status, then the stream
        is closed; the connection serves on."""
        self.state.log_protocol_error(self, exc)
        cycle = stream.cycle
        if cycle is not None:
            # The app is running (its body went over the limit): the client gets the status if nothing
            # was answered yet, the app gets http.disconnect, and the request is counted as done now.
            if cycle.state is RESPONSE_START:
                self.answer(stream, cycle, exc.status, str(exc))
                if not stream.ended:
                    self.stop_receiving(stream, self.STOPPED)
            else:
                cycle.state = ABORTED
                self.reset_stream(stream, self.CANCELLED)
                if not stream.ended:
                    self.stop_receiving(stream, self.CANCELLED)
            stream.gone()
            self.state.request_done(self, cycle)
        else:
            self.error_response(stream, exc.status, (str(exc) + "\n").encode())
            if not stream.ended:
                self.stop_after_response(stream)
            stream.reset = True  # (nothing more goes out)
        self.forget_stream(stream)
