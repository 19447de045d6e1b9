"""One worker's serving state: listening servers, live connections, the clock tick, graceful shutdown."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import socket
import sys
import time
from email.utils import formatdate
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from tricorn.errors import ProtocolError
from tricorn.interfaces.stream import RESPONSE_DONE
from tricorn.io.accept import Listener, TLSListener, read_proxy_header
from tricorn.io.runner import Hosts
from tricorn.io.tls import serving_context
from tricorn.logs import (
    AccessLogFormatter,
    access_log_formatter,
    escape_controls,
    escape_for_log,
    peer_for_log,
)
from tricorn.proto import h1
from tricorn.proto.forwarded import AllowList
from tricorn.proto.h1 import H1Limits

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from tricorn.config import Config
    from tricorn.interfaces.asgi import ASGIApp, HTTPCycle, Scope
    from tricorn.interfaces.cgi import CGIScripts
    from tricorn.interfaces.wsgi import WSGIServer
    from tricorn.io.dispatch import MountedApp, Target
    from tricorn.io.metrics import MetricsSlot

error_log = logging.getLogger("tricorn.error")

# How long a retiring worker keeps an idle keep-alive connection open for one last request. A client
# sending back to back reuses its connection within milliseconds; one idle for longer has no request
# on the way (the race of closing an idle connection is the client's to handle, as on any keep-alive
# timeout). nginx closes them at once on a graceful reload.
LAME_DUCK_IDLE = 1.0
access_log = logging.getLogger("tricorn.access")


# Give memory back to the system once at least this many connections have closed and at most half of the
# peak are left (see trim_memory).
TRIM_AFTER = 1000


def trim_memory() -> None:
    """Give back the memory a burst of connections left free: a few milliseconds after thousands of
    connections (a full collection's time: more on an app with a large heap), once per burst.

    CPython's small-object allocator returns a 1 MiB arena only once no block in it is in use, and a burst
    spreads its objects over arenas made for it: a block still in use in one keeps the whole arena (its free
    pools stay resident). Two kinds of blocks outlive a burst without being anyone's:

    - the free lists of tuples, lists, dicts, floats and contexts, which keep the first of each freed after
      the burst's peak: a full collection empties them;
    - the names held by the type attribute cache. A name made at run time for each lookup stays there
      (``email.utils.formatdate``, the Date header's refresh every second, looks up ``dst`` so): the cache
      is emptied, to be filled again by the lookups that follow.

    Then glibc's ``malloc_trim(0)``: the free pages of its heap go back (glibc keeps them otherwise: the
    free memory is spread between blocks still in use); nothing on other C libraries.
    """
    gc.collect()
    _clear_type_cache()
    find_malloc_trim()(0)


# The type attribute cache's clearing: sys._clear_type_cache, deprecated by 3.13's wider one.
_clear_type_cache: Callable[[], None] = getattr(sys, "_clear_internal_caches", None) or sys._clear_type_cache


def find_malloc_trim() -> Callable[[int], object]:
    """glibc's ``malloc_trim``, looked up (ctypes) once, when the server starts: imported at the first trim,
    ctypes' modules, classes and names would land in the arenas of the burst before it and keep them."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL(None).malloc_trim
        except (ImportError, OSError, AttributeError):  # not glibc (musl, macOS)
            _malloc_trim = lambda pad: None  # noqa: E731
    return _malloc_trim


_malloc_trim: Callable[[int], object] | None = None


def _nothing() -> None:
    return None


# Blocks a free list of the loop's C code keeps: asyncio's future iterators (255), uvloop's handles (250).
FREE_LIST_FILL = 256


def fill_free_lists(loop: asyncio.AbstractEventLoop) -> None:
    """Fill the free lists of the objects every new connection makes in the loop's C code, once, before the
    first connection: asyncio's future iterators (uvloop's ``connect_accepted_socket`` waits on a future)
    and uvloop's handles (``call_soon``, a future's callbacks).

    A free list keeps the first blocks freed once it has run dry. Left to a burst of connections, it keeps
    blocks of the arenas made for the burst, each of which then keeps its arena (see trim_memory). Filled
    here, with blocks of the worker's first arenas, it keeps those through a burst: the blocks it hands out
    first go back first (a new connection's future and its callbacks are done in the order they came).
    """
    waits = [loop.create_future().__await__() for _ in range(FREE_LIST_FILL)]
    del waits
    for _ in range(FREE_LIST_FILL):
        loop.call_soon(_nothing)


class Connection(Protocol):
    """What the server needs of a connection, whatever its protocol (io/h1.py, io/h2.py, io/ws.py)."""

    client: tuple[str, int] | None
    deadline: float  # when timeout() is next due (the tick's clock)

    @property
    def cycle(self) -> object | None:
        """Something in flight (a request, a stream), or None."""

    def timeout(self, now: float) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...


class ServerState:
    """What every connection of a worker shares. Hot-path settings are copied to plain attributes.

    Slotted: with more attributes than Python 3.11 keeps in an instance's shared keys, a method call on
    the state (``state.admit(cycle)``, ``state.request_done(...)``) was looked up the generic way for
    every request (bench "hello8")."""

    __slots__ = (
        "_last_date",
        "_peak",
        "_tick",
        "_tick_handle",
        "access_log",
        "active",
        "app",
        "backend",
        "cgi",
        "completed",
        "config",
        "connections",
        "dispatch",
        "fast_lane",
        "forwarded_allow",
        "h2_connect_protocols",
        "h2_max_frame_size",
        "h2_max_header_list_size",
        "h2_max_streams",
        "h2_window",
        "hosts",
        "http2",
        "interface",
        "lame_duck",
        "lifespan_state",
        "limit_concurrency",
        "limits",
        "loop",
        "master_pid",
        "metrics",
        "new_cycle",
        "on_request_limit",
        "pid",
        "proxy_protocol",
        "quic_relay",
        "request_limit",
        "root_path",
        "servers",
        "shutting_down",
        "sole_app",
        "ssl_context",
        "start_cycle",
        "timed",
        "timeout_keep_alive",
        "timeout_read",
        "timeout_request_header",
        "timeout_send",
        "timeout_ssl_handshake",
        "upgrades",
        "wsgi",
        "wsgi_pool_owner",
    )

    def __init__(
        self,
        config: Config,
        app: ASGIApp | None,
        loop: asyncio.AbstractEventLoop,
        backend: str,
        interface: str = "asgi",
        mounts: Sequence[MountedApp] = (),
        lifespan_state: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.loop = loop
        self.backend = backend
        self.limits = H1Limits(
            config.limit_request_line,
            config.limit_request_fields,
            config.limit_request_field_size,
            config.limit_request_body,
        )
        self.root_path = config.root_path
        self.timeout_keep_alive = config.timeout_keep_alive
        self.timeout_request_header = config.timeout_request_header
        # Read and send deadlines run only while an app waits on its client (interfaces/stream.py).
        self.timeout_read = config.timeout_read
        self.timeout_send = config.timeout_send
        self.limit_concurrency = config.limit_concurrency
        self.connections: set[Connection] = set()
        # The host tasks the HTTP/1.1 connections' requests run in, shared (io/runner.py): a connection
        # whose requests never wait makes no task of its own.
        self.hosts = Hosts(loop)
        self.fast_lane = h1.new_fast_lane(backend)  # type: ignore[arg-type]  # shared by the HTTP/1.1 connections
        self.active = 0
        # Responses completed. A pre-fork worker with max-requests sets `request_limit` and
        # `on_request_limit`, called once, right after the response that reaches the limit (one int
        # comparison per request; 0 is never reached, as the count is compared after its increment).
        self.completed = 0
        self.request_limit = 0
        self.on_request_limit: Callable[[], None] = _nothing
        self.shutting_down = False
        # Set on a graceful stop (and on a pre-fork worker retiring while others keep serving): see
        # shutdown().
        self.lame_duck = False
        self.lifespan_state = lifespan_state  # the APP's (each mounted app has its own: io/dispatch.py)
        self.servers: list[Any] = []  # Listener, QuicEndpoint: close() and wait_closed()
        # A pre-fork worker's master (set by supervisor/worker.py): its workers share each QUIC socket and
        # relay each other's datagrams (io/quic.py).
        self.master_pid: int | None = None
        self.quic_relay: Any = None
        self.pid = os.getpid()
        # The app's interface: connections make WSGI cycles when `wsgi` is set (one attribute check on
        # the ASGI path).
        self.interface = interface
        self.wsgi: WSGIServer | None = None
        if interface == "wsgi":
            from tricorn.interfaces.wsgi import WSGIServer

            self.wsgi = WSGIServer(
                app,  # type: ignore[arg-type]  # a WSGI callable, told apart by the importer
                loop,
                config.threads,
                config.root_path,
                multiprocess=config.workers > 1,
                timeout_send=config.timeout_send,
            )
        # The server's own response headers (--server-header, --date-header, --header), once per process.
        h1.set_default_headers(
            config.server_header,
            config.date_header,
            [
                (name.strip().lower().encode("latin-1"), value.strip().encode("latin-1"))
                for name, _, value in (line.partition(":") for line in config.header)
            ],
        )
        # The WSGI server whose thread pool every WSGI app of the worker shares (the heartbeat watches it,
        # shutdown closes it): the APP's, else the first mounted WSGI app's.
        self.wsgi_pool_owner: WSGIServer | None = self.wsgi
        # Which target serves a request, and how its cycle is made and started (io/dispatch.py): bound once.
        from tricorn.io.dispatch import build_dispatch, mount_targets, static_targets

        extra = [
            *static_targets(self, config),
            *mount_targets(self, list(mounts)),
            *self._cgi_targets(config),
        ]
        self.dispatch = build_dispatch(self, app, extra)
        self.new_cycle = self.dispatch.new_cycle
        self.start_cycle = self.dispatch.start_cycle
        self.sole_app = self.dispatch.sole_app
        # Upgrades the HTTP/1.1 core hands over: WebSocket when an ASGI app is served, unless `ws` is none
        # (a WebSocket to a path of another kind is answered 404: io/ws.py).
        self.upgrades: frozenset[bytes] = frozenset()
        if any(target.websocket is not None for _, target in self.dispatch.entries):
            from tricorn.io.ws import ws_implementation

            if ws_implementation(config.ws) is not None:
                self.upgrades = frozenset((b"websocket",))
        # HTTP/2 (io/h2.py): on cleartext ports by prior knowledge and Upgrade: h2c, on TLS ports by ALPN.
        self.http2 = config.http2
        self.h2_max_streams = config.h2_max_concurrent_streams
        self.h2_max_header_list_size = config.h2_max_header_list_size
        self.h2_window = config.h2_initial_window_size
        self.h2_max_frame_size = config.h2_max_frame_size
        # TLS: the context prepared before the fork (io/tls.py), handshakes run by io/accept.py.
        self.ssl_context = serving_context(config)
        self.timeout_ssl_handshake = config.timeout_ssl_handshake
        # Extended CONNECT protocols (RFC 8441): WebSocket over HTTP/2 for ASGI apps.
        self.h2_connect_protocols: frozenset[bytes] = frozenset()
        if self.http2:
            self.upgrades = self.upgrades | {b"h2c"}
            if b"websocket" in self.upgrades:
                self.h2_connect_protocols = frozenset((b"websocket",))
        # Proxies: whose headers are believed (each connection decides once, in connection_made), and
        # who may open a connection with a PROXY protocol header (read before anything else, io/accept.py).
        self.forwarded_allow = AllowList(config.forwarded_allow_ips) if config.proxy_headers else None
        self.proxy_protocol = AllowList(config.proxy_allow_from) if config.proxy_protocol else None
        # Access lines are built only when the logger would emit them (hot path: bench "hello").
        self.access_log: AccessLogFormatter | None = None
        if config.access_log and access_log.isEnabledFor(logging.INFO):
            self.access_log = access_log_formatter(config)
        # --metrics-bind: this process's counters (io/metrics.py), set by attach_metrics. A request's start
        # time is read only when `timed` (the access log or the metrics want its duration).
        self.metrics: MetricsSlot | None = None
        self.timed = self.access_log is not None
        self._tick_handle: asyncio.TimerHandle | None = None
        timeouts = (
            config.timeout_keep_alive,
            config.timeout_request_header,
            self.timeout_read,
            self.timeout_send,
        )
        self._tick = max(0.05, min(1.0, *(t / 4 for t in timeouts)))
        self._last_date = 0
        self._peak = 0  # the most connections open at a tick since the last trim_memory()

    def _cgi_targets(self, config: Config) -> list[tuple[str, Target]]:
        """The ``--cgi`` directories as dispatch targets (interfaces/cgi.py), sharing one CGIScripts."""
        self.cgi: CGIScripts | None = None
        if not config.cgi:
            return []
        from tricorn.config import parse_mount
        from tricorn.interfaces.cgi import CGIMount, CGIScripts
        from tricorn.io.dispatch import ASGITarget

        self.cgi = CGIScripts(config.cgi_timeout, config.cgi_max_concurrent or config.threads)
        targets: list[tuple[str, Target]] = []
        for entry in config.cgi:
            prefix, directory = parse_mount(entry)
            mount = CGIMount(prefix, directory, self.cgi, self._local_redirect)
            target = ASGITarget(self, mount, config.root_path, kind="cgi", websocket=False)
            targets.append((prefix, target))
        return targets

    def _local_redirect(self, scope: Scope) -> ASGIApp:
        """The app that serves a CGI script's local redirect (RFC 3875 §6.2.2): the table's target for
        the new path. A WSGI app cannot be called from inside an ASGI one: the client is redirected to
        it instead (the same GET, one round trip later)."""
        from tricorn.interfaces.cgi import redirect_client
        from tricorn.io.dispatch import ASGITarget

        target = self.dispatch.match(scope["raw_path"])
        if not isinstance(target, ASGITarget):
            return redirect_client
        scope["root_path"] = target.root_path
        scope["path"] = target.path_root + scope["path"]
        state = target.lifespan_state
        if state is not None:
            scope["state"] = state.copy()
        return target.app

    # -- addresses
    def server_address(self, sockname: object) -> tuple[str, int] | None:
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            return (str(sockname[0]), int(sockname[1]))
        if isinstance(sockname, str) and sockname:
            return (sockname, None)  # type: ignore[return-value]  # ASGI: unix socket path, port None
        return None

    def attach_metrics(self, slot: MetricsSlot) -> None:
        """Count this server's requests and connections in ``slot`` (before it starts serving)."""
        self.metrics = slot
        self.timed = True
        slot.states.append(self)

    # -- serving
    async def start(self, sockets: list[socket.socket]) -> None:
        # Listeners of tricorn's own, not loop.create_server: out of file descriptors, they pause and warn,
        # on both loops, instead of flooding the log (asyncio) or resetting clients (uvloop). See io.accept.
        from tricorn.io.h1 import H1Protocol

        fill_free_lists(self.loop)
        find_malloc_trim()
        self._refresh_date()
        quic = [sock for sock in sockets if sock.type == socket.SOCK_DGRAM]
        if quic:
            await self._start_quic(quic)
        # --proxy-protocol: each connection's PROXY header is read first, before HTTP or TLS (io/accept.py).
        prelude = functools.partial(read_proxy_header, self) if self.proxy_protocol is not None else None
        for sock in sockets:
            if sock.type == socket.SOCK_DGRAM:
                continue
            listener: Listener
            if self.ssl_context is not None:
                listener = TLSListener(self, sock, prelude)
            else:
                factory = functools.partial(H1Protocol, self)  # (and the connection's PROXY header, if any)
                listener = Listener(self.loop, sock, factory, self.config.backlog, prelude)
            await listener.start_serving()
            self.servers.append(listener)
        self._tick_handle = self.loop.call_later(self._tick, self._on_tick)

    async def _start_quic(self, sockets: list[socket.socket]) -> None:
        """HTTP/3 on the UDP sockets (io/quic.py), advertised to TCP clients with Alt-Svc (bound once here:
        the date line carries it, so responses pay nothing for it)."""
        from tricorn.io.quic import QuicEndpoint, Relay

        endpoints: list[QuicEndpoint] = []
        if self.master_pid is not None and self.quic_relay is None:
            self.quic_relay = Relay(endpoints, self.master_pid)
            await self.quic_relay.start(self.loop)
        for index, sock in enumerate(sockets):
            endpoint = QuicEndpoint(self, sock, index, self.quic_relay)
            await endpoint.start()
            endpoints.append(endpoint)
            self.servers.append(endpoint)
        ports = dict.fromkeys(endpoint.port for endpoint in endpoints)
        h1.set_alt_svc(b", ".join(b'h3=":%d"; ma=86400' % port for port in ports))

    def _refresh_date(self) -> None:
        now = int(time.time())
        if now != self._last_date:
            self._last_date = now
            h1.set_date(formatdate(now, usegmt=True).encode("ascii"))

    def _on_tick(self) -> None:
        self._refresh_date()
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline <= now]:
            conn.timeout(now)  # each kind of connection decides what its deadline means in its phase
        count = len(self.connections)
        if count > self._peak:
            self._peak = count
        elif self._peak - count >= TRIM_AFTER and count <= self._peak // 2:
            self._peak = count
            # A set never shrinks as it empties: its table, sized for the peak, is made again for what is
            # left (512 kB after 10,000 connections).
            self.connections = set(self.connections)
            trim_memory()
        self._tick_handle = self.loop.call_later(self._tick, self._on_tick)

    async def shutdown(self, timeout: float) -> None:
        """Stop accepting, let in-flight requests finish within ``timeout``, then cut what is left.

        As a ``lame_duck`` (a graceful stop, while other workers or hosts go on accepting), an idle
        keep-alive connection is not closed at once, which would race with a request its client may be
        sending: its next request is answered, with ``Connection: close``, if it comes within
        LAME_DUCK_IDLE seconds; then it is closed.
        """
        from tricorn.io.h1 import H1Protocol

        self.shutting_down = True
        for server in self.servers:
            server.close()
        for server in self.servers:
            if isinstance(server, TLSListener):
                await server.wait_handshakes(min(timeout, self.timeout_ssl_handshake))
            if isinstance(server, Listener):  # PROXY protocol headers on their way
                await server.wait_preludes(min(timeout, self.timeout_request_header))
        idle_deadline = self.loop.time() + LAME_DUCK_IDLE
        for conn in list(self.connections):
            if self.lame_duck and type(conn) is H1Protocol and conn.cycle is None:
                conn.closing = True
                conn.deadline = min(conn.deadline, idle_deadline)
            else:
                conn.shutdown()
        deadline = self.loop.time() + timeout
        # In-flight requests include apps still running for a client that has gone (their response is
        # cut, but the app's own work, a database write say, is given the same time to finish).
        while (self.connections or self.active) and self.loop.time() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - self.loop.time())))
        if self.connections:
            error_log.warning(
                "graceful shutdown timed out after %ss; closing %d connection(s)",
                timeout,
                len(self.connections),
            )
            for conn in list(self.connections):
                conn.abort()
            # Give the apps told about the disconnect a moment to unwind.
            for _ in range(20):
                if not any(c.cycle is not None for c in self.connections):
                    break
                await asyncio.sleep(0.01)
        if self.cgi is not None:
            self.cgi.close()  # scripts still running (their clients gone): killed with their groups, reaped
        if self.wsgi_pool_owner is not None:
            # Requests still running in threads (their clients may be gone) get the rest of the time.
            await self.wsgi_pool_owner.close(max(0.2, deadline - self.loop.time()))
        for server in self.servers:
            await server.wait_closed()
        if self.quic_relay is not None:
            self.quic_relay.close()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self.hosts.close()
        if self.metrics is not None and self in self.metrics.states:
            self.metrics.states.remove(self)

    # -- requests, on any protocol
    def admit(self, cycle: Any) -> bool:
        """Count ``cycle`` as in progress, unless ``--limit-concurrency`` is reached (then 503)."""
        limit = self.limit_concurrency
        if limit is not None and self.active >= limit:
            return False
        self.active += 1
        cycle.counted = True
        return True

    def request_done(self, conn: Any, cycle: Any) -> None:
        """A cycle's response is complete or was cut: the accounting and the access line."""
        if cycle.counted:
            self.active -= 1
            self.completed += 1
            if self.completed == self.request_limit:  # a pre-fork worker's max-requests
                self.on_request_limit()
            cycle.counted = False
            metrics = self.metrics
            if metrics is not None:
                metrics.request_done(cycle, perf_counter())
        if self.access_log is not None and cycle.state is RESPONSE_DONE:
            self.log_access(conn, cycle)

    # -- logging (one line per event, control bytes escaped)
    def log_access(self, conn: Connection, cycle: HTTPCycle) -> None:
        formatter = self.access_log
        assert formatter is not None
        scope = cycle.scope
        access_log.info(
            formatter.format(
                client=scope["client"],  # behind a trusted proxy, the client it names
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                http_version=scope["http_version"],
                status=cycle.status,
                response_bytes=cycle.response_bytes,
                request_headers=scope["headers"],
                response_headers=cycle.response_headers,
                duration=perf_counter() - cycle.start_time,
                mount=getattr(getattr(cycle, "dispatch_target", None), "prefix", "/"),
            )
        )

    def log_refused(self, conn: Connection, status: int, response_bytes: int) -> None:
        """The access line of a request refused before it reached the application (bad syntax, a head or
        body too large, too slow, an unsupported version: 400, 408, 413, 414, 431, 501, 505), so a count of
        4xx and 5xx in the access log sees it. Its request line was not understood: ``-`` for its parts."""
        formatter = self.access_log
        if formatter is None:
            return
        access_log.info(
            formatter.format(
                client=conn.client,
                method="-",
                path="-",
                query="",
                http_version="-",
                status=status,
                response_bytes=response_bytes,
                request_headers=[],
                response_headers=[],
                duration=0.0,
            )
        )

    def log_protocol_error(self, conn: Connection, exc: ProtocolError) -> None:
        error_log.info("%s %d %s", peer_for_log(conn.client), exc.status, escape_for_log(str(exc)))

    def log_timeout(self, conn: Connection, message: str) -> None:
        """A client that stalled past a deadline while its app waited (``message`` says which)."""
        error_log.info("%s %s", peer_for_log(conn.client), message)

    def log_app_error(self, message: str, exc: BaseException | None) -> None:
        # One header line, as gunicorn's and uvicorn's: the exception's repr keeps its quotes and
        # backslashes (only control characters, which could break the line, are escaped); the traceback
        # follows with its own line breaks (tricorn.logs.format_exception_for_log).
        if exc is not None:
            error_log.error("%s", escape_controls(message), exc_info=exc)
        else:
            error_log.error("%s", escape_controls(message))
