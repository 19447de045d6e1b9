"""The ``--metrics-bind`` listener: ``/metrics``, ``/livez`` and ``/readyz``, and nothing else.

It runs where the truth is: in the master's selector loop when there is a master (it knows every worker's
heartbeat, and it outlives them), else in the single process's event loop. Either loop drives it through
a :class:`Reactor` (watch a file descriptor for reading or writing, stop watching). Each connection
carries one request: the head is read (at most ``MAX_HEAD`` bytes, within ``TIMEOUT`` seconds), the
answer written, the connection closed. A probe is cheap and bounded: no keep-alive, no body, at most
``MAX_CONNECTIONS`` at once, so a misbehaving scraper cannot hold the master.

:func:`answer` is the whole protocol, without sockets: request head in, response bytes out.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from tricorn.supervisor.sockets import bind_metrics, describe

if TYPE_CHECKING:
    from tricorn.config import Config

error_log = logging.getLogger("tricorn.error")

# A probe's request head is a line and a few fields; Prometheus sends about 300 bytes.
MAX_HEAD = 8192
# A kubelet probe's default timeout is 1 s and Prometheus' scrape timeout 10 s; a client that has not sent
# its head (or taken its answer) in 10 s is not a probe.
TIMEOUT = 10.0
MAX_CONNECTIONS = 64
# After its answer, what a client still sends is read and dropped (up to this much) until it closes: closing
# with unread input would reset the connection, and the answer with it.
MAX_LINGER = 65536

# (status, body, content type)
Page = tuple[int, bytes, str]
Route = Callable[[], Page]

_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (\S{1,2048}) HTTP/1\.[01]\r?")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}
TEXT = "text/plain; charset=utf-8"


def answer(head: bytes, routes: Mapping[str, Route]) -> bytes:
    """The response to the request ``head`` (its bytes up to the blank line)."""
    line = head.split(b"\n", 1)[0]
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return _response(400, b"bad request\n", TEXT)
    method, target = match.groups()
    path = target.split(b"?", 1)[0].decode("latin-1")
    route = routes.get(path)
    if route is None:
        return _response(404, b"not found: the paths are " + ", ".join(routes).encode() + b"\n", TEXT)
    if method not in (b"GET", b"HEAD"):
        return _response(405, b"method not allowed\n", TEXT, extra="Allow: GET, HEAD\r\n")
    status, body, content_type = route()
    return _response(status, body, content_type, head_only=method == b"HEAD")


def _response(
    status: int, body: bytes, content_type: str, *, extra: str = "", head_only: bool = False
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + (b"" if head_only else body)


def probe_page(ok: bool, message: str) -> Page:
    """A probe's answer: 200 or 503, and one line saying why."""
    return (200 if ok else 503), (message + "\n").encode("utf-8", "replace"), TEXT


class Reactor(Protocol):
    """The loop that drives the listener: call ``callback`` when ``fd`` is readable (or writable)."""

    def watch(self, fd: int, writable: bool, callback: Callable[[], None]) -> None: ...
    def unwatch(self, fd: int) -> None: ...


class SelectorReactor:
    """A Reactor over the master's selector: its loop calls a key's data when it is callable."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector

    def watch(self, fd: int, writable: bool, callback: Callable[[], None]) -> None:
        events = selectors.EVENT_WRITE if writable else selectors.EVENT_READ
        try:
            self.selector.modify(fd, events, callback)
        except KeyError:
            self.selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)


class LoopReactor:
    """A Reactor over an asyncio event loop (``add_reader``/``add_writer``)."""

    def __init__(self, loop: object) -> None:
        self.loop = loop
        self._writing: set[int] = set()

    def watch(self, fd: int, writable: bool, callback: Callable[[], None]) -> None:
        self.unwatch(fd)
        if writable:
            self._writing.add(fd)
            self.loop.add_writer(fd, callback)  # type: ignore[attr-defined]
        else:
            self.loop.add_reader(fd, callback)  # type: ignore[attr-defined]

    def unwatch(self, fd: int) -> None:
        if fd in self._writing:
            self._writing.discard(fd)
            self.loop.remove_writer(fd)  # type: ignore[attr-defined]
        else:
            self.loop.remove_reader(fd)  # type: ignore[attr-defined]


class _Connection:
    __slots__ = ("buffer", "out", "since", "sock", "unread")

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.since = now
        self.buffer = b""
        self.out = b""
        self.unread = MAX_LINGER


class ProbeServer:
    """Serves ``routes`` (path -> page) on the listening socket ``sock`` once :meth:`start` gives it the
    reactor that drives it. :meth:`sweep` (call it now and then) closes the connections past their time;
    :meth:`close` closes everything, the socket too, whether it started or not."""

    def __init__(self, sock: socket.socket, routes: Mapping[str, Route]) -> None:
        self.sock = sock
        self.routes = routes
        self.reactor: Reactor | None = None
        self.connections: dict[int, _Connection] = {}
        sock.setblocking(False)
        # A unix socket's file, for the host to remove when it stops.
        name = sock.getsockname() if sock.family == socket.AF_UNIX else None
        self.unix_path = name if isinstance(name, str) and name else None

    def start(self, reactor: Reactor) -> None:
        self.reactor = reactor
        reactor.watch(self.sock.fileno(), False, self._accept)
        error_log.info("metrics and probes on %s", describe(self.sock))

    def close(self) -> None:
        for fd in list(self.connections):
            self._close(fd)
        if self.sock.fileno() >= 0:
            if self.reactor is not None:
                self.reactor.unwatch(self.sock.fileno())
            self.sock.close()

    def drop(self) -> None:
        """In a forked child: close this process's copies of the sockets, leaving the reactor alone (the
        master's selector is shared with the child until the child closes it)."""
        for conn in self.connections.values():
            conn.sock.close()
        self.connections = {}
        self.sock.close()

    def sweep(self, now: float) -> None:
        for fd, conn in list(self.connections.items()):
            if now - conn.since > TIMEOUT:
                self._close(fd)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: the next probe will tell
                error_log.warning("metrics listener: cannot accept: %s", exc.strerror or exc)
                return
            if len(self.connections) >= MAX_CONNECTIONS:
                sock.close()
                continue
            sock.setblocking(False)
            fd = sock.fileno()
            self.connections[fd] = _Connection(sock, time.monotonic())
            self._watch(fd, False, lambda fd=fd: self._readable(fd))  # type: ignore[misc]

    def _receive(self, fd: int) -> tuple[_Connection, bytes] | None:
        """The connection and what it sent (b"" at its end or on an error); None if nothing came."""
        conn = self.connections.get(fd)
        if conn is None:
            return None
        try:
            return conn, conn.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return conn, b""

    def _readable(self, fd: int) -> None:
        received = self._receive(fd)
        if received is None:
            return
        conn, data = received
        if not data:
            self._close(fd)
            return
        conn.buffer += data
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0:
            end = conn.buffer.find(b"\n\n")
        if end < 0:
            if len(conn.buffer) < MAX_HEAD:
                return
            conn.out = _response(400, b"request head too large\n", TEXT)
        else:
            try:
                conn.out = answer(conn.buffer[:end], self.routes)
            except Exception:
                error_log.exception(
                    "metrics listener: cannot answer %r", conn.buffer.split(b"\r\n", 1)[0][:80]
                )
                conn.out = _response(503, b"internal error\n", TEXT)
        self._watch(fd, True, lambda: self._writable(fd))
        self._writable(fd)

    def _writable(self, fd: int) -> None:
        conn = self.connections.get(fd)
        if conn is None:
            return
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(fd)
                return
            self._watch(fd, False, lambda: self._linger(fd))

    def _linger(self, fd: int) -> None:
        received = self._receive(fd)
        if received is None:
            return
        conn, data = received
        conn.unread -= len(data)
        if not data or conn.unread <= 0:
            self._close(fd)

    def _watch(self, fd: int, writable: bool, callback: Callable[[], None]) -> None:
        assert self.reactor is not None  # (connections come only once started)
        self.reactor.watch(fd, writable, callback)

    def _close(self, fd: int) -> None:
        conn = self.connections.pop(fd, None)
        if conn is not None:
            if self.reactor is not None:
                self.reactor.unwatch(fd)
            conn.sock.close()


def open_probes(config: Config, routes: Mapping[str, Route]) -> ProbeServer | None:
    """The ``--metrics-bind`` listener, bound (not serving yet), or None. Raises BindError."""
    sock = bind_metrics(config)
    return None if sock is None else ProbeServer(sock, routes)
