"""Request dispatch: which target serves a request, and the one place where its cycle is made and started.

Every protocol (HTTP/1.1 in :mod:`tricorn.io.h1`, HTTP/2 in :mod:`tricorn.io.h2`, WebSocket in
:mod:`tricorn.io.ws`, HTTP/3 in :mod:`tricorn.io.h3`) hands each request it has parsed to the worker's :class:`Dispatch`,
through two attributes bound on :class:`~tricorn.io.server.ServerState` once, at start:

- ``state.new_cycle(stream, request) -> cycle``: the cycle (ASGI ``HTTPCycle``, ``WSGICycle``, or a
  target's own) that will answer ``request`` through ``stream``; made when the request head is complete,
  so body bytes have somewhere to go while earlier pipelined requests are answered.
- ``state.start_cycle(cycle, runner)``: run it (admission, ``--limit-concurrency``, is the protocol's,
  before this call). ``runner`` is the connection's :class:`~tricorn.io.runner.AppRunner`.
- ``state.websocket_app(request) -> ASGIApp | None``: the ASGI app for a WebSocket handshake, or None
  when the path belongs to a target that takes no WebSocket (answered 404, never held open).

The table: each entry is a path prefix and a :class:`Target`. The longest prefix matching the request's
path (as sent, before percent-decoding: ``/static`` matches ``/static`` and ``/static/x``, never
``/staticx`` or ``/%73tatic``) wins, on path-segment boundaries; the positional APP is the ``/`` entry.
With the APP alone (no ``--static``, no ``--cgi``), ``new_cycle`` and ``start_cycle`` are the app's own,
bound directly: the hello path makes no lookup (bench "hello").

What a target provides (:class:`Target`): ``new_cycle(stream, request)`` returning an object with the
cycle interface of :mod:`tricorn.interfaces.stream` (``feed_body``, ``end_body``, ``disconnect``,
``peer_closed``, and the ``state``/``status``/``response_*``/``body_complete``/``counted``/``start_time``
attributes and ``scope`` the server reads), ``start(cycle, runner)``, and ``websocket`` (an ASGI app that
takes WebSocket scopes, or None). Static files (:mod:`tricorn.interfaces.static`) are an internal ASGI
app run by the same :class:`~tricorn.interfaces.asgi.HTTPCycle` as any app, so they are streams like any
other over every protocol, with the stream layer's backpressure and deadlines; a CGI directory plugs in
the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from tricorn.interfaces.asgi import HTTPCycle, build_scope, http_cycle, send_plain

if TYPE_CHECKING:
    from tricorn.config import Config
    from tricorn.interfaces.asgi import ASGIApp, Message, Scope
    from tricorn.interfaces.stream import Stream
    from tricorn.interfaces.wsgi import WSGIServer
    from tricorn.io.runner import AppRunner
    from tricorn.io.server import ServerState
    from tricorn.proto.h1 import Request


class Target(Protocol):
    """What the dispatch table maps a prefix to (see the module docstring)."""

    kind: str  # "app", "static", "cgi": named in logs and errors
    prefix: str  # where the table put it ("/" or "/a/b"), set by Dispatch
    root_path: str  # the ASGI root_path / WSGI SCRIPT_NAME its requests see
    websocket: ASGIApp | None  # the app WebSocket handshakes under this prefix go to, or None (404)

    def new_cycle(self, stream: Stream, request: Request) -> Any: ...
    def start(self, cycle: Any, runner: AppRunner) -> None: ...


class ASGITarget:
    """An ASGI app (the positional APP, or an internal one such as static files)."""

    def __init__(
        self,
        state: ServerState,
        app: ASGIApp,
        root_path: str,
        kind: str = "app",
        websocket: bool = True,
        mount: str = "",
        lifespan_state: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.path_root = root_path  # put before every path (--root-path: a proxy stripped it)
        self.root_path = root_path + mount  # the scope's root_path: a mounted app sees its prefix there
        self.kind = kind
        self.prefix = "/"
        # What its scopes' "state" is copied from: a mounted app's own lifespan state, else the APP's.
        self.lifespan_state = lifespan_state if mount else state.lifespan_state
        self.websocket: ASGIApp | None = app if websocket else None

    def scope(self, conn: Any, request: Request) -> Scope:
        """The HTTP scope of ``request`` on ``conn`` (a stream or a WebSocket connection)."""
        return build_scope(request, conn, self.path_root, self.root_path, self.lifespan_state)

    def new_cycle(self, stream: Stream, request: Request) -> HTTPCycle:
        # Not through self.scope: one Python call less a request (bench "hello").
        scope = build_scope(request, stream, self.path_root, self.root_path, self.lifespan_state)
        return http_cycle(stream, request, scope)

    def start(self, cycle: HTTPCycle, runner: AppRunner) -> None:
        runner.run(cycle.run(self.app))  # (io/h1.py does the same for Dispatch.sole_app, inline)


class WSGITarget:
    """A WSGI app: its cycles run on the worker's thread pool (there is no coroutine to step)."""

    kind = "app"
    prefix = "/"
    websocket: ASGIApp | None = None

    def __init__(self, wsgi: WSGIServer) -> None:
        self.wsgi = wsgi
        self.root_path = wsgi.root_path

    def new_cycle(self, stream: Stream, request: Request) -> Any:
        return self.wsgi.new_cycle(stream, request)

    def start(self, cycle: Any, runner: AppRunner) -> None:
        self.wsgi.start(cycle, runner)


class Dispatch:
    """The worker's table of prefixes and targets; binds ``new_cycle``, ``start_cycle`` and
    ``websocket_app`` (see the module docstring)."""

    def __init__(self, entries: list[tuple[str, Target]]) -> None:
        table: dict[bytes, Target] = {}
        for prefix, target in entries:
            key = prefix.rstrip("/").encode("ascii")
            if key in table:
                raise ValueError(f"the prefix {prefix!r} is given twice")
            table[key] = target
            target.prefix = prefix.rstrip("/") or "/"  # named in the access log (%(mount)s)
        if b"" not in table:
            raise ValueError("no target serves '/'")
        # Longest first: the first match is the longest prefix.
        self.entries = sorted(table.items(), key=lambda item: -len(item[0]))
        self.root = table[b""]
        self.new_cycle: Callable[[Stream, Request], Any]
        self.start_cycle: Callable[[Any, AppRunner], None]
        # The ASGI app that serves every request when the table is that app alone, else None: HTTP/1.1
        # starts its cycles as ASGITarget.start would, without the call (bench "hello").
        self.sole_app: ASGIApp | None = None
        if len(self.entries) == 1:
            # The app alone: its own callables, no lookup per request (bench "hello").
            root = self.root
            if isinstance(root, WSGITarget):
                self.new_cycle = root.wsgi.new_cycle
                self.start_cycle = root.wsgi.start
            else:
                self.new_cycle = root.new_cycle
                self.start_cycle = root.start
            if isinstance(root, ASGITarget):
                self.sole_app = root.app
        else:
            self.new_cycle = self._routed_cycle
            self.start_cycle = _start_routed

    def match(self, path: bytes) -> Target:
        """The target of the longest prefix of ``path`` on a segment boundary."""
        for prefix, target in self.entries:
            if path.startswith(prefix):
                size = len(prefix)
                if len(path) == size or path[size] == 0x2F:  # "/"
                    return target
        return self.root  # (unreachable: b"" matches everything)

    def _routed_cycle(self, stream: Stream, request: Request) -> Any:
        target = self.match(request.path)
        cycle = target.new_cycle(stream, request)
        cycle.dispatch_target = target
        return cycle

    def websocket_app(self, request: Request) -> ASGIApp | None:
        return self.match(request.path).websocket


def _start_routed(cycle: Any, runner: AppRunner) -> None:
    cycle.dispatch_target.start(cycle, runner)


def build_dispatch(state: ServerState, app: Any, extra: list[tuple[str, Target]]) -> Dispatch:
    """The worker's table: ``app`` (ASGI, or WSGI when ``state.wsgi`` is set; None when only mounted
    apps were given: a path outside them is a 404) at ``/``, unless one of ``extra`` (mounted apps,
    static or CGI directories) takes ``/`` itself."""
    wsgi = state.wsgi
    root: Target
    if wsgi is not None:
        root = WSGITarget(wsgi)
    elif app is None:
        root = ASGITarget(state, not_found, "", kind="none", websocket=False)
    else:
        root = ASGITarget(state, app, state.root_path)
    entries = list(extra)
    if not any(prefix.rstrip("/") == "" for prefix, _ in entries):
        entries.append(("/", root))
    return Dispatch(entries)


def static_targets(state: ServerState, config: Config) -> list[tuple[str, Target]]:
    """One target per ``--static PREFIX=DIR``: the internal ASGI app of interfaces/static.py."""
    if not config.static:
        return []
    from tricorn.interfaces.static import StaticFiles

    targets: list[tuple[str, Target]] = []
    for prefix, directory in config.static_mounts:
        app = StaticFiles(
            prefix,
            directory,
            listing=config.static_list,
            max_age=config.static_max_age,
            follow_symlinks=config.static_follow_symlinks,
        )
        targets.append((prefix, ASGITarget(state, app, "", kind="static", websocket=False)))
    return targets


def mount_targets(state: ServerState, mounts: list[MountedApp]) -> list[tuple[str, Target]]:
    """One target per ``--mount PREFIX=APP``: ASGI apps with their own lifespan state; WSGI apps on the
    worker's one thread pool (that of the first WSGI app, made here if the APP is not WSGI)."""
    targets: list[tuple[str, Target]] = []
    config = state.config
    for mount in mounts:
        if mount.interface == "wsgi":
            from tricorn.interfaces.wsgi import WSGIServer

            wsgi = WSGIServer(
                mount.app,
                state.loop,
                config.threads,
                config.root_path,
                multiprocess=config.workers > 1,
                timeout_send=config.timeout_send,
                mount=mount.prefix,
                share=state.wsgi_pool_owner,
            )
            if state.wsgi_pool_owner is None:
                state.wsgi_pool_owner = wsgi
            targets.append((mount.prefix, WSGITarget(wsgi)))
        else:
            target = ASGITarget(
                state,
                mount.app,
                config.root_path,
                mount=mount.prefix,
                lifespan_state=mount.lifespan_state,
            )
            targets.append((mount.prefix, target))
    return targets


async def not_found(
    scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """``/`` when only mounted apps were given: a path outside every mount."""
    await send_plain(send, 404, "not found: no application is mounted at this path")


class MountedApp(Protocol):
    """What :func:`mount_targets` needs of a mounted app (:class:`tricorn.importer.Mounted`, with the
    state its lifespan startup left)."""

    prefix: str
    app: Any
    lifespan_state: dict[str, Any] | None

    @property
    def interface(self) -> str: ...
