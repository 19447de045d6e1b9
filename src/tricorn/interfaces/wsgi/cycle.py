"""One WSGI request: :class:`WSGICycle`, which runs the application on a worker thread, and the
sendfile helpers of its file responses.

Theory of operation
-------------------
A request's stream (HTTP/1.1 or HTTP/2, :mod:`tricorn.interfaces.stream`) drives a WSGICycle as it drives
an ASGI ``HTTPCycle``: the loop calls ``feed_body`` / ``end_body`` / ``disconnect`` / ``peer_closed`` and
reads ``state``, ``status``, ``response_bytes`` and ``response_headers`` for the connection's fate and the
access log. Only the start differs: :meth:`WSGIServer.start` hands the cycle to the thread pool (there is
no coroutine to step). The cycle answers through the same Stream calls (``response_start``,
``response_body``, ``cycle_complete``, ``app_error``...); framing and validation are the stream's.

What differs is where the application runs. A WSGI app blocks, so it runs on a thread of a
:class:`WorkerPool` (``--threads``) while the event loop goes on serving other connections. The two sides
share a cycle by these rules:

- The core and the transport are touched on the loop thread only. A worker hands its response to the
  loop as operations posted to a :class:`Mailbox` (a deque drained by one ``call_soon_threadsafe`` per
  batch, not one per operation); the loop frames and writes them, in order.
- Each counter has one writer: body bytes ``received`` (loop) and ``consumed`` (worker), response bytes
  ``submitted`` (worker) and ``written`` (loop), so either side reads them without a lock.
- A worker that must wait (for body bytes, or for a slow client to drain the response) sets ``waiting``
  under its own Condition and re-checks what it waits for; the loop, after changing what a worker may
  wait for, notifies under that Condition if ``waiting`` is set. Set-then-check on one side and
  change-then-check on the other: no wakeup is lost.
- Backpressure both ways: the request body is buffered up to :data:`HIGH_WATER` bytes before the loop
  stops reading the socket (resumed as the app reads), and a worker runs at most
  :data:`WRITE_HIGH_WATER` bytes ahead of the loop, and waits while the transport is paused. Neither
  body is ever held whole in memory (unless the app itself asks for ``read()`` of everything).
- A disconnect marks the cycle ``abandoned`` and wakes the worker: a blocked ``wsgi.input`` read raises
  :class:`~tricorn.errors.ClientDisconnected` (an ``OSError``), iteration of the response stops, and the
  iterable's ``close()`` is called as always.
- Deadlines are kept on the loop, by the stream, as for ASGI: the loop brackets the worker's waits on the
  client with ``wait_started``/``wait_ended`` (for body bytes: told by the worker with one posted
  operation per wait; for the client to drain: seen by the loop itself). A client that stalls past
  ``--timeout-read`` or ``--timeout-send`` is disconnected with a
  :class:`~tricorn.errors.ClientTimeout` reason, which the worker's read or write then raises: a stalled
  client never pins a thread. (The one wait the loop cannot see, a worker's sendfile, keeps its own
  ``--timeout-send`` in the worker.)

Every cycle ends with exactly one final operation (response complete, or error, or abandoned), so the
shell's accounting (active requests, keep-alive, graceful shutdown) is the same as for ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import stat
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tricorn.errors import ClientDisconnected, ClientTimeout, LocalProtocolError
from tricorn.interfaces.asgi import build_scope
from tricorn.interfaces.files import FileSend
from tricorn.interfaces.forwarded import apply_environ, apply_scope
from tricorn.interfaces.stream import (
    ABORTED,
    HIGH_WATER,
    RESPONSE_BODY,
    RESPONSE_DONE,
    RESPONSE_START,
    WAIT_READ,
    WAIT_SEND,
    CycleState,
)
from tricorn.interfaces.wsgi.environ import (
    LAST_START,
    ConnectionEnviron,
    ExcInfo,
    Pairs,
    _parse_start,
    connection_environ,
)
from tricorn.interfaces.wsgi.streams import NO_BODY, FileWrapper, WSGIInput
from tricorn.logs import escape_for_log, peer_for_log
from tricorn.proto.h1 import Request

if TYPE_CHECKING:
    from tricorn.interfaces.asgi import Scope
    from tricorn.interfaces.stream import Stream
    from tricorn.interfaces.wsgi import WSGIServer
    from tricorn.proto.forwarded import Forwarded

error_log = logging.getLogger("tricorn.error")

# Response bytes a worker may hand to the loop before it waits for them to be written (and, when the
# client is slow, for the transport to drain): one socket buffer's worth.
WRITE_HIGH_WATER = 65536

# -- the cycle ------------------------------------------------------------------------------------------

_NO_BODY_STATUS = frozenset((204, 304))


class WSGICycle:
    """One request/response exchange with a WSGI application (see the module docstring).

    Attributes the shell reads (``state``, ``status``, ``response_*``, ``counted``, ``start_time``,
    ``task``, ``body_complete``) are owned by the loop thread; the worker thread owns the app's side
    (``start_response``, ``write``, ``wsgi.input``).
    """

    # Class-level defaults for what a request may never touch; what every request reads is set by
    # WSGIServer.new_cycle, below.
    status = 0
    response_headers: Any = ()
    response_bytes = 0
    start_time = 0.0
    task: asyncio.Task[None] | None = None  # never set: a WSGI request has no task
    counted = False
    body_complete = False
    peer_eof = False
    reason: ClientDisconnected | None = None  # why the server gave up on the client (a ClientTimeout)
    read_armed = False  # the stream's read deadline runs (the worker waits for body bytes)
    # loop -> worker
    received = 0
    written = 0
    write_blocked = False
    read_paused = False
    continue_sent = False
    sendfile_answer: Any = None
    sendfile_sock: socket.socket | None = None
    # worker
    waiting = False
    send_timed_out = False  # a sendfile waited past --timeout-send
    cond: threading.Condition | None = None
    consumed = 0
    submitted = 0
    continue_asked = False
    resume_asked = False
    _file: tuple[int, int, int] = (-1, 0, 0)  # a sendfile's descriptor, offset and byte count
    whole: tuple[int, Pairs, bytes]  # a whole response, for loop_run (set before it is posted)
    # Set for every request by WSGIServer.new_cycle, which makes the cycle (there is no __init__: see there).
    server: WSGIServer
    stream: Stream
    request: Request
    state: CycleState
    abandoned: bool  # the loop takes no more output: client gone, or the response was refused
    disconnected: bool
    forwarded: Forwarded | None  # what a trusted proxy's headers say
    started: tuple[int, Pairs, int | None] | None  # start_response's, parsed
    headers_sent: bool
    chunks: deque[bytes] | None

    @property
    def scope(self) -> Scope:
        """The request as an ASGI-style scope, for the access log."""
        path_root = self.server.path_root
        scope = build_scope(self.request, _Unproxied(self.stream), path_root, path_root, None)
        if self.forwarded is not None:  # the request's one resolution (WSGIServer.new_cycle), not a second
            apply_scope(scope, self.forwarded)
        return scope

    # -- events from the connection (loop thread)
    def feed_body(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is None:
            chunks = self.chunks = deque()
        chunks.append(data)
        self.received += len(data)
        if self.received - self.consumed > HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.resume_asked = False
            self.stream.pause_reading()
        if self.read_armed:
            self.read_armed = False
            self.stream.wait_ended(WAIT_READ)
        if self.waiting:
            self._notify()

    def end_body(self) -> None:
        self.body_complete = True
        if self.read_armed:
            self.read_armed = False
            self.stream.wait_ended(WAIT_READ)
        if self.waiting:
            self._notify()

    def disconnect(self, reason: ClientDisconnected | None = None) -> None:
        if reason is not None:
            self.reason = reason  # (set before `abandoned`, which the worker reads first)
        if self.read_armed:
            self.read_armed = False
            self.stream.wait_ended(WAIT_READ)
        self.disconnected = True
        self.abandoned = True
        sock = self.sendfile_sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the worker blocked in poll() or sendfile()
        self._notify()

    def peer_closed(self) -> None:
        # The client half-closed after its whole request: nothing changes for a WSGI app (the response
        # is still sent; a half-closed client still reads it).
        self.peer_eof = True

    def _notify(self) -> None:
        cond = self.cond
        if self.waiting and cond is not None:
            with cond:
                cond.notify()

    # -- the application (worker thread)
    def execute(self, cond: threading.Condition | None) -> None:
        self.cond = cond
        server = self.server
        post = server.post
        if self.abandoned:  # the client left while the request waited for a thread
            post(self._loop_final_error, "", None, True)
            return
        stream = self.stream
        result: Any = None
        try:
            shared = stream.wsgi_environ
            if shared is None:
                shared = stream.wsgi_environ = ConnectionEnviron(
                    connection_environ(server.base, stream.server, stream.client, stream.scheme)
                )
            # Complete with no byte received: the body is empty, and nothing is left to wait for.
            wsgi_input = NO_BODY if self.body_complete and self.chunks is None else WSGIInput(self)
            # (Each callable read into a local first: a call of an instance attribute as a method is
            # looked up the generic way on Python 3.11; bench wsgi "hello".)
            environ_of = server.request_environ
            environ = environ_of(self.request, shared, wsgi_input)
            if self.forwarded is not None:
                apply_environ(environ, self.forwarded)
            app = server.app
            result = app(environ, self.start_response)
            if type(result) is list or type(result) is tuple:  # (no close() to call)
                body = result[0] if len(result) == 1 else b"".join(result)
                if type(body) is not bytes:
                    body = _check_bytes(body)
                started = self.started
                if (
                    started is not None
                    and started[2] is not None
                    and started[2] >= len(body)
                    and not self.headers_sent
                    and not self.abandoned
                ):  # (what _final does for a body within its Content-Length, inline: bench wsgi "hello")
                    self.headers_sent = True
                    # (posted as the cycle itself: no bound method made, nor called with op(*args))
                    self.whole = (started[0], started[1], body)
                    post_run = server.post_run
                    post_run(self)
                    return
                if self.headers_sent and body:
                    self._send(body)
                post(*self._final(None if self.headers_sent else body))
                return
            try:
                if type(result) is FileWrapper and self._can_sendfile(result):
                    final = self._sendfile(result)
                else:
                    for chunk in result:
                        if chunk:
                            self._send(chunk if type(chunk) is bytes else _check_bytes(chunk))
                        if self.abandoned:
                            break
                    final = self._final(None if self.headers_sent else b"")
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            # The exchange completes only after close(): a keep-alive client's next request starts after
            # the previous one's cleanup, as with gunicorn.
            post(*final)
        except ClientDisconnected:
            post(self._loop_final_error, "", None, True)
        except BaseException as exc:  # the app's failure is reported, never raised into the pool
            quiet = self.abandoned and isinstance(exc, OSError)
            post(self._loop_final_error, f"exception in wsgi application: {exc!r:.200}", exc, quiet)
            del exc

    def _final(self, body: bytes | None) -> tuple[Any, ...]:
        """The operation that ends the response; ``body`` is the whole body when nothing has been sent
        yet (then a missing Content-Length is added), else None."""
        if self.abandoned:
            return (self._loop_final_error, "", None, True)
        if body is None:
            return (self._loop_send, None, None, b"", False)
        started = self.started
        if started is None:
            raise LocalProtocolError("wsgi application returned without calling start_response()")
        status, headers, length = started
        self.headers_sent = True
        if length is None:
            if self._has_body(status):
                # PEP 3333 lets a server add Content-Length when it knows the whole body: no chunked framing.
                headers = (*headers, (b"content-length", b"%d" % len(body)))
        elif length < len(body):  # refused by the stream once the head is out (response_whole's rule)
            return (self._loop_send, status, headers, body, False)
        return (self._loop_respond, status, headers, body)

    def _has_body(self, status: int) -> bool:
        return status >= 200 and status not in _NO_BODY_STATUS and self.request.method != b"HEAD"

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's start_response. Headers go out with the first non-empty body chunk. With
        ``exc_info``: replaces the response if nothing has been sent yet, re-raises it otherwise."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.started is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        last = LAST_START[0]
        if status == last[0] and headers == last[1]:  # the last call again (bench wsgi "hello")
            self.started = last[2]
        else:
            self.started = _parse_start(status, headers)
        # The write() callable is the cycle itself (its __call__): no bound method made for each request,
        # where most apps never write (bench wsgi "hello").
        return self

    def write(self, data: bytes) -> None:
        """PEP 3333's write() callable (for legacy apps): sends ``data`` before returning."""
        if type(data) is not bytes:
            data = _check_bytes(data)
        if data:
            self._send(data)

    __call__ = write

    def _gone(self, message: str = "client disconnected") -> ClientDisconnected:
        """The exception a worker raises once the client is gone (worker thread)."""
        reason = self.reason
        if reason is not None:
            return type(reason)(*reason.args)  # a fresh one: the loop's instance is not raised across threads
        return ClientDisconnected(message)

    def _send(self, data: bytes) -> None:
        if self.abandoned:
            raise self._gone()
        if self.headers_sent:
            self.server.post(self._loop_send, None, None, data, True)
        else:
            started = self.started
            if started is None:
                raise AssertionError("response body before start_response()")
            self.headers_sent = True
            self.server.post(self._loop_send, started[0], started[1], data, True)
        self.submitted += len(data)
        if self.submitted - self.written > WRITE_HIGH_WATER or self.write_blocked:
            self._wait(self._writable)
            if self.abandoned:
                raise self._gone()

    def _writable(self) -> bool:
        return self.abandoned or (
            self.submitted - self.written <= WRITE_HIGH_WATER and not self.write_blocked
        )

    def _wait(self, ready: Callable[[], bool]) -> None:
        cond = self.cond
        if cond is None:  # pragma: no cover - inline use never waits
            raise RuntimeError("a wsgi request would wait on the event loop thread")
        with cond:
            self.waiting = True
            try:
                while not ready():
                    cond.wait()
            finally:
                self.waiting = False

    # -- the body, for WSGIInput (worker thread)
    def next_chunk(self) -> bytes | None:
        """The next piece of the body, waiting for it if need be; None at its end."""
        chunks = self.chunks
        if not chunks:
            if self.body_complete:
                # The loop appends a body's last bytes before it marks it complete: look once more.
                chunks = self.chunks
                if not chunks:
                    return None
            else:
                self._need_body()
                chunks = self.chunks
                if not chunks:
                    if self.body_complete:
                        return None
                    raise self._gone("client disconnected before the request body was complete")
        assert chunks is not None
        data = chunks.popleft()
        self.consumed += len(data)
        if self.read_paused and not self.resume_asked and self.received - self.consumed <= HIGH_WATER:
            self.resume_asked = True
            self.server.post(self._loop_resume_reading)
        return data

    def _need_body(self) -> None:
        if self.request.expect_continue and not self.continue_asked:
            # RFC 9110 §10.1.1: the client waits for 100 Continue before it sends the body; it is sent
            # when the app first reads, so an app may answer without reading (and without a 100).
            self.continue_asked = True
            self.server.post(self._loop_continue)
        if self.read_paused and not self.resume_asked:
            self.resume_asked = True
            self.server.post(self._loop_resume_reading)
        # The loop keeps the deadline of this wait (--timeout-read), not a timed cond.wait() here: one clock
        # (the server's tick) for ASGI and WSGI, and the stream alone decides between a 408, a closed
        # connection and a reset HTTP/2 stream; this thread is woken as by any disconnect. The cost is
        # one posted operation per wait for body bytes, none when the body is there.
        self.server.post(self._loop_wait_body)
        self._wait(self._body_ready)

    def _body_ready(self) -> bool:
        return bool(self.chunks) or self.body_complete or self.disconnected

    # -- sendfile (worker thread)
    def _can_sendfile(self, wrapper: FileWrapper) -> bool:
        """Whether a FileWrapper result is a real file at a known position (else it is iterated)."""
        if self.started is None or self.headers_sent:
            return False
        try:
            fileno = wrapper.filelike.fileno()
            info = os.fstat(fileno)
            offset = os.lseek(fileno, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        self.sendfile_answer = None
        self._file = (fileno, offset, max(0, info.st_size - offset))
        return True

    def _sendfile(self, wrapper: FileWrapper) -> tuple[Any, ...]:
        """Send a real file's bytes with os.sendfile; return the operation that ends the response."""
        assert self.started is not None
        status, headers, length = self.started
        fileno, offset, count = self._file
        if status < 200 or status in _NO_BODY_STATUS:
            count = 0
        else:
            if length is None:  # the file's size is the body's (a HEAD response announces it too)
                headers = (*headers, (b"content-length", b"%d" % count))
            else:
                count = min(count, length)
            if self.request.method == b"HEAD":
                count = 0
        self.headers_sent = True
        if not count:
            return (self._loop_respond, status, headers, b"")
        self.server.post(self._loop_sendfile_start, status, headers)
        self._wait(self._sendfile_answered)
        answer = self.sendfile_answer
        if answer is None or self.abandoned:
            raise self._gone()
        if answer == "fallback":  # the head is out; the body goes through the transport
            remaining = count
            read = wrapper.filelike.read
            while remaining > 0:
                block = read(min(remaining, max(wrapper.blksize, 65536)))
                if not block:
                    break
                remaining -= len(block)
                self._send(block)
            return (self._loop_send, None, None, b"", False)
        sent = _sendfile_all(answer[0], answer[1], fileno, offset, count, self)
        return (self._loop_sendfile_done, sent)

    def _sendfile_answered(self) -> bool:
        return self.sendfile_answer is not None or self.abandoned

    # -- operations run on the loop thread (posted by the worker)
    def _loop_send(self, status: int | None, headers: Pairs | None, data: bytes, more: bool) -> None:
        state = self.state
        if state is RESPONSE_DONE or state is ABORTED:
            return
        stream = self.stream
        if self.disconnected:
            if not more:
                self.state = ABORTED
                stream.cycle_complete(self)
            return
        try:
            if headers is not None:
                stream.response_start(status, headers)  # type: ignore[arg-type]  # set with headers
                self.status = status  # type: ignore[assignment]
                self.response_headers = headers
                self.state = RESPONSE_BODY
            stream.response_body(data, more)
        except LocalProtocolError as exc:
            self._refuse(exc)
            return
        self.response_bytes += len(data)
        self.written += len(data)
        if not more:
            self.state = RESPONSE_DONE
            stream.cycle_complete(self)
        elif stream.write_paused and not self.write_blocked:
            self.write_blocked = True
            self.server.loop.create_task(self._drained())
        if self.waiting:
            self._notify()

    def _loop_respond(self, status: int, headers: Pairs, body: bytes) -> None:
        self.whole = (status, headers, body)
        self.loop_run()

    def loop_run(self) -> None:
        """``_loop_send`` of the whole response in ``whole`` (the worker checked that its body fits its
        Content-Length): one call into the stream, head and body. What ``Mailbox.post_run`` runs."""
        status, headers, body = self.whole
        state = self.state
        if state is RESPONSE_DONE or state is ABORTED:
            return
        stream = self.stream
        if self.disconnected:
            self.state = ABORTED
            stream.cycle_complete(self)
            return
        try:
            stream.response_whole(status, headers, body)
        except LocalProtocolError as exc:
            self._refuse(exc)
            return
        self.status = status
        self.response_headers = headers
        self.response_bytes = len(body)  # (not `written`: no worker waits on a whole response)
        self.state = RESPONSE_DONE
        stream.cycle_complete(self)

    def _refuse(self, exc: LocalProtocolError) -> None:
        """The core refused the app's response (bad status or header, body longer than its length)."""
        self.abandoned = True
        self._notify()
        self.stream.app_error(self, f"invalid response from wsgi application: {exc}", None)

    async def _drained(self) -> None:
        stream = self.stream
        stream.wait_started(WAIT_SEND)  # the worker's next write waits on this: --timeout-send runs
        try:
            await stream.drain()
        finally:
            stream.wait_ended(WAIT_SEND)
        self.write_blocked = False
        self._notify()

    def _loop_final_error(self, message: str, exc: BaseException | None, quiet: bool) -> None:
        state = self.state
        if state is RESPONSE_DONE or state is ABORTED:
            if exc is not None and not quiet:
                self.server_log(message, exc)
            return
        if quiet or self.disconnected:
            self.state = ABORTED
            self.stream.cycle_complete(self)
            return
        self.stream.app_error(self, message, exc)

    def server_log(self, message: str, exc: BaseException | None) -> None:
        # The response was already complete or refused (e.g. close() raised after the last byte).
        error_log.error("%s", escape_for_log(message), exc_info=exc)

    def _loop_continue(self) -> None:
        if self.state is RESPONSE_START and not self.body_complete and not self.continue_sent:
            self.continue_sent = True
            self.stream.response_continue()

    def _loop_wait_body(self) -> None:
        # Unless bytes came (or the body ended, or the client left) since the worker looked.
        state = self.state
        if (
            not self.read_armed
            and self.received == self.consumed
            and not self.body_complete
            and not self.disconnected
            and state is not RESPONSE_DONE
            and state is not ABORTED
        ):
            self.read_armed = True
            self.stream.wait_started(WAIT_READ)

    def _loop_resume_reading(self) -> None:
        if self.read_paused and self.received - self.consumed <= HIGH_WATER:
            self.read_paused = False
            self.stream.resume_reading()
        else:
            self.resume_asked = False  # asked too early: the worker asks again as it reads on

    def _loop_sendfile_start(self, status: int, headers: Pairs) -> None:
        state = self.state
        if state is RESPONSE_DONE or state is ABORTED or self.disconnected:
            self.abandoned = True
            self._notify()
            return
        try:
            answer: Any = self.stream.sendfile_start(status, headers)
        except LocalProtocolError as exc:
            self._refuse(exc)
            return
        self.status = status
        self.response_headers = headers
        self.state = RESPONSE_BODY
        if answer is None:
            answer = "fallback"  # the head is held by the stream; the body goes through response_body
        else:
            self.sendfile_sock = answer[0]
        self.sendfile_answer = answer
        self._notify()

    def _loop_sendfile_done(self, sent: int) -> None:
        sock = self.sendfile_sock
        self.sendfile_sock = None
        if sock is not None:
            sock.close()
        state = self.state
        if state is RESPONSE_DONE or state is ABORTED:
            return
        self.response_bytes += sent
        if self.send_timed_out and not self.disconnected:
            error_log.info(
                "%s %s: connection closed",
                peer_for_log(self.stream.client),
                ClientTimeout.sending(self.server.timeout_send),
            )
            self.disconnected = True
        if self.disconnected:
            self.state = ABORTED
            self.stream.cycle_complete(self)
            return
        self.stream.sendfile_done(sent)
        self.state = RESPONSE_DONE
        self.stream.cycle_complete(self)


def _sendfile_all(
    sock: socket.socket, head: bytes, fileno: int, offset: int, count: int, cycle: WSGICycle
) -> int:
    """Send ``head`` then ``count`` bytes of ``fileno`` from ``offset`` on the non-blocking ``sock``,
    waiting for it to be writable in this (worker) thread; return the file bytes sent (fewer than
    ``count`` when the client went away or the file shrank)."""
    job = FileSend(sock, head, fileno, offset, count)
    poller = select.poll()
    poller.register(job.sock_fd, select.POLLOUT)
    try:
        while not job.step():
            _wait_writable(poller, cycle)
    except OSError:  # gone or timed out while waiting (ClientDisconnected, ClientTimeout)
        pass
    return job.sent


def _wait_writable(poller: select.poll, cycle: WSGICycle) -> None:
    """Wait for room in the socket; ClientTimeout after --timeout-send without any (worker thread)."""
    timeout = cycle.server.timeout_send
    deadline = time.monotonic() + timeout
    while not cycle.abandoned:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            cycle.send_timed_out = True
            raise ClientTimeout.sending(timeout)
        if poller.poll(min(1000, max(1, int(remaining * 1000)))):
            return
    raise cycle._gone()


def _check_bytes(data: object) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"wsgi response body must be bytes, got {type(data).__name__}")


class _Unproxied:
    """A stream as :func:`build_scope` reads it, without its proxy trust: a WSGI request's proxy headers
    were resolved once, for its environ, and the access log's scope takes that result."""

    __slots__ = ("client", "scheme", "server", "stream", "tls")
    proxy_trust = None

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.server = stream.server
        self.client = stream.client
        self.scheme = stream.scheme
        self.tls = stream.tls

    # What the stream's scopes share is the same here (its addresses and scheme, not its proxy trust).
    @property
    def scope_base(self) -> Any:
        return self.stream.scope_base

    @scope_base.setter
    def scope_base(self, value: Any) -> None:
        self.stream.scope_base = value
