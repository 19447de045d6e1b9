"""TLS listeners: accept, run the handshake, and hand the connection to its protocol.

A cleartext listener is the loop's own server (``create_server``) giving each connection an
:class:`~tricorn.io.h1.H1Protocol`, where the in-band switches happen (the HTTP/2 preface, ``Upgrade:
h2c``, ``Upgrade: websocket``, and a TLS ClientHello told apart from a bad request).

A TLS listener is a :class:`TLSListener`: it accepts itself and runs each handshake with the loop's
``connect_accepted_socket(ssl=...)``, whose failure is raised here, so a failed or stalled handshake is
logged in one line (the loop's own TLS server mode drops them silently, and ``start_tls`` after a plain
accept loses a ClientHello that uvloop read before the TLS layer was in place). The protocol it creates
learns the ALPN protocol in ``connection_made`` and hands over to HTTP/2 for "h2" (RFC 7301; RFC 9113
§3.2), so the choice of a connection's protocol is made in :meth:`H1Protocol.connection_made` and its
in-band switches, nowhere else.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import TYPE_CHECKING

from tricorn.io.tls import describe_handshake_error

if TYPE_CHECKING:
    from tricorn.io.server import ServerState

error_log = logging.getLogger("tricorn.error")

# Connections accepted per readiness callback before the loop serves others (gunicorn's and uvloop's
# accept loops take a bounded batch the same way).
ACCEPT_BATCH = 64
# Errors that say the process or the system is out of something: accepting pauses briefly.
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
_PAUSE = 0.5


class TLSListener:
    """One listening socket whose connections are TLS (see the module docstring)."""

    def __init__(self, state: ServerState, sock: socket.socket) -> None:
        self.state = state
        self.sock = sock
        self.loop = state.loop
        self.closed = False
        self.handshakes: set[asyncio.Task[None]] = set()
        self._last_warning = 0.0
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._pause(exc)
                    return
                raise
            conn.setblocking(False)
            task = self.loop.create_task(self._handshake(conn))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    def _pause(self, exc: OSError) -> None:
        now = self.loop.time()
        if now - self._last_warning >= 1.0:
            self._last_warning = now
            error_log.warning("cannot accept connections: %s; accepting again in %ss", exc.strerror, _PAUSE)
        self.loop.remove_reader(self.sock.fileno())
        self.loop.call_later(_PAUSE, self._resume)

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    async def _handshake(self, conn: socket.socket) -> None:
        from tricorn.io.h1 import H1Protocol, address

        state = self.state
        assert state.ssl_context is not None
        try:
            peer = address(conn.getpeername())
        except OSError:
            peer = None
        try:
            await self.loop.connect_accepted_socket(
                lambda: H1Protocol(state),
                conn,
                ssl=state.ssl_context,
                ssl_handshake_timeout=state.timeout_ssl_handshake,
            )
        except asyncio.CancelledError:
            conn.close()
            raise
        except Exception as exc:  # every failure of a client's handshake is this client's alone
            client = f"{peer[0]}:{peer[1]}" if peer else "-"
            error_log.info("%s %s", client, describe_handshake_error(exc))
            conn.close()

    # -- the asyncio.AbstractServer calls ServerState uses
    def close(self) -> None:
        """Stop accepting. Handshakes under way go on (a client that connected is served: its
        connection learns of the shutdown and closes after its request, or gets GOAWAY)."""
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())

    async def wait_handshakes(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the handshakes under way, so their connections are counted."""
        if self.handshakes:
            await asyncio.wait(list(self.handshakes), timeout=timeout)

    async def wait_closed(self) -> None:
        for task in list(self.handshakes):  # still in a handshake after the graceful timeout: dropped
            task.cancel()
        if self.handshakes:
            await asyncio.gather(*self.handshakes, return_exceptions=True)
