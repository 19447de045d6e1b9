"""The listeners: accept connections, and hand each to its protocol (for TLS, after the handshake).

Both listeners run their own accept loop (``loop.add_reader`` on the listening socket, then ``accept()``
in a bounded batch), not the loop's ``create_server``, for two reasons. One is what happens when
``accept()`` fails for lack of resources (EMFILE: the process is at its ``ulimit -n``; ENFILE: the system
is; ENOBUFS, ENOMEM): asyncio's loop (3.11) goes on calling ``accept()`` for the rest of its batch, logging
each failure with a traceback and scheduling a retry for each (270,000 log lines in 10 s), and uvloop
(libuv) accepts the waiting connections with a descriptor it keeps in reserve and closes them at once: the
clients are reset, and nothing is logged. Here a listener stops accepting for :data:`ACCEPT_PAUSE` and
tries again, so the connections already open are served and the new ones wait in the kernel's queue (the
``backlog``), and a warning names the limit, at most once per :data:`WARN_INTERVAL` for the process.

A cleartext listener is a :class:`Listener` giving each connection an
:class:`~tricorn.io.h1.H1Protocol`, where the in-band switches happen (the HTTP/2 preface, ``Upgrade:
h2c``, ``Upgrade: websocket``, and a TLS ClientHello told apart from a bad request). The loop's
``connect_accepted_socket`` builds the transport, the same one ``create_server`` would; its coroutine is
stepped directly (:func:`_connect`), not in a task as asyncio's own accept loop does.

A TLS listener is a :class:`TLSListener`: the same accept loop, with each connection's TLS run by
tricorn over the plain transport (:mod:`tricorn.io.tlsconn`), so that a failed or stalled handshake is
logged in one line (the loop's own TLS server mode drops them silently) and a client that half-closes
still gets its response. The HTTP protocol learns the ALPN protocol in ``connection_made`` and hands over
to HTTP/2 for "h2" (RFC 7301; RFC 9113 §3.2), so the choice of a connection's protocol is made in
:meth:`H1Protocol.connection_made` and its in-band switches, nowhere else.

With ``--proxy-protocol``, both listeners read each connection's PROXY protocol header
(:func:`read_proxy_header`) before anything else, the TLS handshake included, and give it to the
connection's protocol; a peer outside ``--proxy-allow-from``, or a connection whose header is missing,
malformed or late, is closed with one log line before any protocol sees it.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from tricorn.io.tlsconn import TLSConnection
from tricorn.logs import escape_for_log, peer_for_log
from tricorn.proto.proxy_protocol import ProxyHeader, ProxyProtocolError, parse

if TYPE_CHECKING:
    from tricorn.io.server import ServerState

error_log = logging.getLogger("tricorn.error")

# Connections accepted per readiness callback before the loop serves others (gunicorn's and uvloop's
# accept loops take a bounded batch the same way).
ACCEPT_BATCH = 64
# Errors that say the process or the system is out of something, not that a client is wrong: accepting
# pauses briefly (the ones asyncio's own accept loop pauses on).
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
# How long accepting stops then. nginx disables its accept events for accept_mutex_delay (500 ms) after
# EMFILE or ENFILE; asyncio's loop retries after 1 s.
ACCEPT_PAUSE = 0.5
# At most one warning per this many seconds for the whole process, with a count of the pauses between.
WARN_INTERVAL = 1.0


def _describe(exc: OSError) -> str:
    if exc.errno == errno.EMFILE:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        shown = "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
        return f"too many open files (limit {shown}, raise it with ulimit -n)"
    if exc.errno == errno.ENFILE:
        return "too many open files in the system (ENFILE, raise fs.file-max)"
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"out of memory for a new connection ({name})"


class _Warnings:
    """The process's budget of accept warnings: a lack of descriptors is the process's, whichever
    listener meets it."""

    last = float("-inf")
    unreported = 0


def warn_paused(exc: OSError) -> None:
    """Log that accepting pauses for ``exc``, unless a warning was logged less than WARN_INTERVAL ago."""
    now = time.monotonic()
    if now - _Warnings.last < WARN_INTERVAL:
        _Warnings.unreported += 1
        return
    also = (
        f"; paused {_Warnings.unreported} more time(s) since the last warning" if _Warnings.unreported else ""
    )
    _Warnings.last, _Warnings.unreported = now, 0
    error_log.warning("%s: pausing accept for %gs%s", _describe(exc), ACCEPT_PAUSE, also)


# -- The PROXY protocol ------------------------------------------------------------------------------------

# Bytes looked at (MSG_PEEK) per read of a PROXY protocol header: a v1 line is at most 107 bytes, a v2
# header from haproxy or a cloud load balancer a few hundred.
PROXY_PEEK = 4096


async def read_proxy_header(state: ServerState, conn: socket.socket) -> ProxyHeader | None:
    """Take the PROXY protocol header off the accepted socket ``conn``, exactly (what follows stays for the
    protocol after it), within ``--timeout-request-header``. None when the connection is refused: then
    it is closed, and one line says why."""
    allow = state.proxy_protocol
    assert allow is not None
    peer = _peer(conn)
    if not allow.trusts_peer(peer[0] if peer else None):
        _refuse(conn, peer, "peer not in --proxy-allow-from")
        return None
    try:
        async with asyncio.timeout(state.timeout_request_header):
            return await _receive_proxy_header(state.loop, conn)
    except TimeoutError:
        _refuse(conn, peer, f"no PROXY protocol header within {state.timeout_request_header:g}s")
    except ProxyProtocolError as exc:
        _refuse(conn, peer, str(exc))
    except OSError as exc:
        _refuse(conn, peer, f"connection failed before its PROXY protocol header: {exc.strerror or exc}")
    return None


async def _receive_proxy_header(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> ProxyHeader:
    received = b""
    while True:
        await _readable(loop, conn.fileno())
        try:
            peeked = conn.recv(PROXY_PEEK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        if not peeked:
            raise ProxyProtocolError(
                "the client closed the connection in the middle of its header"
                if received
                else "the client closed the connection before sending a header"
            )
        data = received + peeked
        header = parse(data)
        if header is None:  # incomplete: every byte seen is the header's (bounded by parse's limits)
            _take(conn, len(peeked))
            received = data
            continue
        _take(conn, header.length - len(received))
        return header


def _take(conn: socket.socket, count: int) -> None:
    """Consume ``count`` bytes already seen with MSG_PEEK (so they are in the socket's buffer)."""
    while count > 0:
        count -= len(conn.recv(count))


def _readable(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.Future[None]:
    waiter: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not waiter.done():
            waiter.set_result(None)

    loop.add_reader(fd, ready)
    waiter.add_done_callback(lambda _: loop.remove_reader(fd))
    return waiter


def _peer(conn: socket.socket) -> tuple[str, int] | None:
    try:
        name = conn.getpeername()
    except OSError:
        return None
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) else None


def _refuse(conn: socket.socket, peer: tuple[str, int] | None, reason: str) -> None:
    error_log.info("%s PROXY protocol: %s; connection closed", peer_for_log(peer), escape_for_log(reason))
    conn.close()


Prelude = Callable[[socket.socket], Coroutine[Any, Any, ProxyHeader | None]]


class Listener(asyncio.AbstractServer):
    """Accepts connections on ``sock`` (listening, non-blocking) and serves each with a protocol from
    ``protocol_factory``, until :meth:`close` (which closes the socket, as ``asyncio.Server.close`` does) or
    :meth:`detach` (which leaves it open and listening for the next server: a restart in place).

    With a ``prelude`` (the PROXY protocol: :func:`read_proxy_header`), each accepted socket is first
    given to it, in a task, and its connection is set up with ``protocol_factory(header)`` once it has
    returned a header (None: it refused the connection and closed it). Preludes still running when the
    server has finished are cancelled by :meth:`wait_closed`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[..., asyncio.Protocol],
        backlog: int,
        prelude: Prelude | None = None,
    ) -> None:
        self.loop = loop
        self.sock: socket.socket | None = sock
        self.protocol_factory = protocol_factory
        self.backlog = backlog
        self.prelude = prelude
        self.preludes: set[asyncio.Task[None]] = set()
        self._fd = sock.fileno()
        self._family = int(sock.family)
        self._serving = False
        self._reading = False
        self._resume: asyncio.TimerHandle | None = None

    # -- asyncio.AbstractServer

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        """Listen (again, with ``backlog``, as ``create_server`` does) and accept from now on."""
        if self._serving or self.sock is None:
            return
        self.sock.setblocking(False)
        self.sock.listen(self.backlog)
        self._serving = True
        self._start_reading()

    async def serve_forever(self) -> None:
        raise NotImplementedError("tricorn's listeners are served by tricorn.serving")

    def close(self) -> None:
        """Stop accepting and close the socket (unless it was detached)."""
        self._stop()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def wait_closed(self) -> None:
        await self.cancel_preludes()

    async def cancel_preludes(self) -> None:
        for task in list(self.preludes):  # still waiting for a PROXY header after the graceful timeout
            task.cancel()
        if self.preludes:
            await asyncio.gather(*self.preludes, return_exceptions=True)

    async def wait_preludes(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the PROXY protocol headers on their way, so their connections
        are counted."""
        if self.preludes:
            await asyncio.wait(list(self.preludes), timeout=timeout)

    # -- tricorn

    def detach(self) -> socket.socket | None:
        """Stop accepting and let go of the socket, left open and listening: the connections that arrive
        meanwhile wait in its queue for the next server to accept them. Returns the socket."""
        self._stop()
        sock, self.sock = self.sock, None
        return sock

    def _start_reading(self) -> None:
        self._resume = None
        if self._serving and not self._reading:
            self._reading = True
            self.loop.add_reader(self._fd, self._on_readable)

    def _stop(self) -> None:
        self._serving = False
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)

    def _pause(self, exc: OSError) -> None:
        warn_paused(exc)
        self._reading = False
        self.loop.remove_reader(self._fd)
        self._resume = self.loop.call_later(ACCEPT_PAUSE, self._start_reading)

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        accept = sock._accept  # type: ignore[attr-defined]  # accept(2) alone: see _Accepted
        family = self._family
        for _ in range(ACCEPT_BATCH):
            try:
                fd, _ = accept()
                conn = _Accepted(family, socket.SOCK_STREAM, 0, fd)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while queued: next
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._pause(exc)
                else:  # a network error on a queued connection (accept(2) lists ENETDOWN, EPROTO...)
                    error_log.warning("accept() failed on %s: %s", sock.getsockname(), exc)
                return
            if self.prelude is not None:
                prelude = self.loop.create_task(self._preluded(self.prelude, conn))
                self.preludes.add(prelude)
                prelude.add_done_callback(self.preludes.discard)
                continue
            _connect(self.loop.connect_accepted_socket(self.protocol_factory, conn))

    async def _preluded(self, prelude: Prelude, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            origin = await prelude(conn)
        except asyncio.CancelledError:
            conn.close()
            raise
        if origin is not None:
            factory = self.protocol_factory
            try:
                await self.loop.connect_accepted_socket(lambda: factory(origin), conn)
            except OSError as exc:  # the transport could not be set up (the loop closes the socket then)
                error_log.debug("could not set up an accepted connection: %s", exc)


class _Accepted(socket.socket):
    """An accepted connection's socket, made from the descriptor ``accept(2)`` returned.

    ``socket.accept()`` builds the socket from the listener's ``family`` and ``type``, each converted to
    an enum on every read, and uvloop's ``connect_accepted_socket`` reads them again: about a tenth of a
    new connection's instructions (bench "close", counted with callgrind around a whole worker). Here they
    are the C socket's plain ints; everything else is ``socket.socket``'s (uvloop detaches it when the
    transport closes, as it does any ``socket.socket``)."""

    __slots__ = ()
    family = _socket.socket.family  # type: ignore[assignment]  # an int, not the AddressFamily enum
    type = _socket.socket.type  # type: ignore[assignment]  # an int, not the SocketKind enum


def _connect(setup: Coroutine[Any, Any, Any], _: object = None) -> None:
    """Drive ``loop.connect_accepted_socket(...)`` without a task of its own.

    The coroutine sets up the transport at once and then waits for a future, done when the loop has
    called ``connection_made``; it is stepped here, and again from that future's callback. A task would
    cost a new connection its creation, a step scheduled for each of the two steps and a done callback
    (bench "accept"). The coroutine must be resumed, not dropped: closing it would close the transport."""
    try:
        waiting = setup.send(None)
    except (StopIteration, asyncio.CancelledError):
        return
    except Exception as exc:  # the transport could not be set up (the loop closes the socket then)
        error_log.debug("could not set up an accepted connection: %s", exc)
        return
    if asyncio.isfuture(waiting):
        waiting.add_done_callback(partial(_connect, setup))
    else:  # (a bare yield: step again on the next loop turn)
        asyncio.get_running_loop().call_soon(_connect, setup)


class TLSListener(Listener):
    """A :class:`Listener` whose connections are TLS: each accepted socket gets a
    :class:`~tricorn.io.tlsconn.TLSConnection`, which runs the handshake (logging a failed or stalled
    one in one line) and then serves the HTTP protocol over it."""

    def __init__(self, state: ServerState, sock: socket.socket, prelude: Prelude | None = None) -> None:
        super().__init__(state.loop, sock, self._new_connection, state.config.backlog, prelude)
        self.state = state
        self.handshakes: set[TLSConnection] = set()

    def _new_connection(self, origin: ProxyHeader | None = None) -> TLSConnection:
        """The connection's TLS; ``origin``, its PROXY protocol header, read before the handshake."""
        from tricorn.io.h1 import H1Protocol

        state = self.state
        assert state.ssl_context is not None
        conn = TLSConnection(
            state.ssl_context,
            lambda: H1Protocol(state, origin),
            state.timeout_ssl_handshake,
            self.handshakes.discard,
        )
        self.handshakes.add(conn)
        return conn

    async def wait_handshakes(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the handshakes under way, so their connections are counted."""
        deadline = self.loop.time() + timeout
        while self.handshakes and self.loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def wait_closed(self) -> None:
        await self.cancel_preludes()
        for conn in list(self.handshakes):  # still in a handshake after the graceful timeout: dropped
            if conn.transport is not None:
                conn.transport.abort()
