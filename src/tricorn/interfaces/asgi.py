"""ASGI 3.0 adapter for HTTP requests: one :class:`HTTPCycle` per request.

The cycle turns its stream's events into ``http.request`` messages for ``receive`` and the application's
``http.response.*`` messages into :class:`~tricorn.interfaces.stream.Stream` calls, with its progress in
an explicit :class:`CycleState`. It knows no protocol: the same cycle serves HTTP/1.1 and HTTP/2.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote

from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.interfaces.files import FILE_CHUNK, open_regular, read_chunk
from tricorn.interfaces.forwarded import proxied_scope
from tricorn.interfaces.stream import (
    ABORTED,
    HIGH_WATER,
    RESPONSE_BODY,
    RESPONSE_DONE,
    RESPONSE_START,
    RESPONSE_TRAILERS,
    WAIT_READ,
    WAIT_SEND,
    CycleState,
    Stream,
)
from tricorn.proto.forwarded import NAMES as PROXY_NAMES
from tricorn.proto.h1 import Request

__all__ = [
    "ABORTED",
    "RESPONSE_BODY",
    "RESPONSE_DONE",
    "RESPONSE_START",
    "CycleState",
    "HTTPCycle",
    "http_cycle",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

METHODS = {m: m.decode("ascii") for m in (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH")}


class _NoInfo(dict):  # type: ignore[type-arg]
    """An extension's info when the server has nothing to say: empty, and read-only, so that one can
    stand in every scope (a dict made for each of four extensions in each request cost about 2% of
    bench "hello8"), with no way for one request to leave something in the next one's."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("the server's extension info is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]


_NO_INFO = _NoInfo()
# The extensions of every HTTP scope (copied for each: an app may add its own), with the tls one when the
# connection has TLS.
_EXTENSIONS: dict[str, Any] = {
    "http.response.trailers": _NO_INFO,
    "http.response.early_hint": _NO_INFO,
    "http.response.pathsend": _NO_INFO,
    "http.response.zerocopysend": _NO_INFO,
}


def _scope_base(conn: Any, root_path: str) -> Scope:
    """What every HTTP scope on ``conn`` under ``root_path`` shares, with a place for each of the rest:
    kept by the connection (its ``scope_base``) and copied for each request, which sets the rest (a
    copy and eight values cost less than a dict of thirteen made anew: bench "hello8")."""
    return {
        "type": "http",
        "asgi": None,
        "http_version": None,
        "server": conn.server,
        "client": conn.client,
        "scheme": conn.scheme,
        "method": None,
        "root_path": root_path,
        "path": None,
        "raw_path": None,
        "query_string": None,
        "headers": None,
        "extensions": None,
    }


def build_scope(
    request: Request, conn: Any, path_root: str, root_path: str, state: dict[str, Any] | None
) -> Scope:
    """The HTTP scope of ``request`` on ``conn`` (a stream, or a WebSocket connection: its ``server``,
    ``client``, ``scheme``, ``tls`` and ``proxy_trust``, and ``scope_base``, where the connection keeps
    what its scopes share: None at first). ``path`` is the full path, ``path_root`` (from
    ``--root-path``: a proxy stripped it) put before it; ``root_path`` is where the app is mounted, the
    same with no mount (ASGI spec 2.4 and later). A trusted proxy's client, scheme and Host are applied
    (interfaces/forwarded.py). The one place a scope is made, for every protocol and target."""
    raw_path = request.path
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:  # pragma: no cover - the core refuses non-ASCII targets
        path = raw_path.decode("latin-1")
    if "%" in path:
        path = unquote(path)  # UTF-8, invalid sequences replaced (as uvicorn and Starlette do)
    method = request.method
    base = conn.scope_base
    if base is None or base["root_path"] is not root_path:
        base = conn.scope_base = _scope_base(conn, root_path)
    scope: Scope = base.copy()
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
    scope["http_version"] = request.http_version
    scope["method"] = METHODS.get(method) or method.decode("ascii")
    scope["path"] = path_root + path if path_root else path
    scope["raw_path"] = raw_path
    scope["query_string"] = request.query
    scope["headers"] = list(request.headers)  # (a list of its own: see Request.headers)
    scope["extensions"] = _EXTENSIONS.copy()
    if state is not None:
        scope["state"] = state.copy()
    tls = conn.tls
    if tls is not None:
        scope["extensions"]["tls"] = tls
    trust = conn.proxy_trust
    if trust is not None and not request.proxy_free:
        # A request with no proxy header (most, on a connection trusted only because it is local) costs
        # this loop and no call, or not even the loop when the fast lane knows (bench "hello").
        for name, _ in request.headers:
            if name in PROXY_NAMES:
                proxied_scope(scope, trust)
                break
    return scope


async def send_plain(
    send: Callable[[Message], Awaitable[None]],
    status: int,
    reason: str | bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A short ``text/plain`` answer of the server's own (``404 not found``) from an internal ASGI app
    (static files, CGI, a path no app is mounted at)."""
    body = b"%d %s\n" % (status, reason.encode() if isinstance(reason, str) else reason)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class HTTPCycle:
    """One request/response exchange. ``receive`` and ``send`` are the ASGI callables given to the app."""

    # No __slots__: per-request state starts at these class-level defaults, which most requests never
    # change (a 20-attribute __init__ cost ~4% of bench "hello").
    body_size = 0  # bytes received and not yet given to the app
    received = 0  # bytes of the request body received in all
    body_complete = False
    body_delivered = False
    peer_eof = False
    continue_sent = False
    reason: ClientDisconnected | None = None  # why the server gave up on the client (a ClientTimeout)
    status = 0
    response_headers: Any = ()
    start_time = 0.0
    counted = False  # counted in the server's active requests
    body: list[bytes] | None = None  # body parts received and not yet given to the app

    # Set by http_cycle() (below), which makes every cycle: what each request needs or send() reads.
    stream: Stream
    request: Request
    scope: Scope
    state: CycleState
    disconnected: bool
    trailers: bool  # the app announced trailers in its http.response.start
    waiter: asyncio.Future[None] | None
    response_bytes: int

    # -- events from the connection
    def feed_body(self, data: bytes) -> None:
        body = self.body
        if body is None:  # (made for the first part: most requests have none, bench "hello")
            body = self.body = []
        body.append(data)
        size = len(data)
        self.body_size += size
        self.received += size
        if self.body_size > HIGH_WATER:
            self.stream.pause_reading()
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def disconnect(self, reason: ClientDisconnected | None = None) -> None:
        """The client went away (or the server gives up on it, for ``reason``): wake anything waiting."""
        self.disconnected = True
        if reason is not None:
            self.reason = reason
        self._wake()

    def peer_closed(self) -> None:
        """The client closed its side after the whole request: receive() answers http.disconnect, but the
        response may still be sent (a half-closed client still reads it)."""
        self.peer_eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- ASGI callables
    async def receive(self) -> Message:
        while True:
            if self.disconnected:
                return {"type": "http.disconnect"}  # a fresh dict: apps may mutate messages
            parts = self.body
            if parts:
                body = parts[0] if len(parts) == 1 else b"".join(parts)
                parts.clear()
                self.body_size = 0
                self.stream.resume_reading()
                more = not self.body_complete
                self.body_delivered = not more
                return {"type": "http.request", "body": body, "more_body": more}
            if self.body_complete and not self.body_delivered:
                self.body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.state is RESPONSE_DONE or self.state is ABORTED or self.peer_eof:
                return {"type": "http.disconnect"}  # a fresh dict: apps may mutate messages
            if self.request.expect_continue and not self.continue_sent and not self.body_complete:
                # RFC 9110 §10.1.1: the client waits for 100 before sending the body; send it when the
                # app first asks for the body, not before (so an app may refuse without reading).
                self.continue_sent = True
                if self.state is RESPONSE_START:
                    self.stream.response_continue()
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            if self.body_complete:
                await waiter  # for the client to leave, or the response to end: no deadline
                continue
            # The app waits for body bytes the client has yet to send: --timeout-read runs meanwhile.
            stream = self.stream
            stream.wait_started(WAIT_READ)
            try:
                await waiter
            finally:
                stream.wait_ended(WAIT_READ)

    async def send(self, message: Message) -> None:
        state = self.state
        if self.disconnected:
            raise self._gone()
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise LocalProtocolError(f"asgi message without a type: {message!r:.80}") from None
        if state is RESPONSE_START:
            if kind != "http.response.start":
                if kind == "http.response.early_hint":
                    self._early_hint(message)
                    return
                raise LocalProtocolError(f"expected 'http.response.start', got {kind!r}")
            status: Any = message.get("status")  # validated by the stream
            headers = message.get("headers", ())
            self.stream.response_start(status, headers)
            self.status = status
            self.response_headers = headers
            self.state = RESPONSE_BODY
            if message.get("trailers"):
                self.trailers = True
            return
        if state is RESPONSE_BODY:
            if kind != "http.response.body":
                if kind == "http.response.zerocopysend" or kind == "http.response.pathsend":
                    await self._send_file(message, kind)
                    return
                raise LocalProtocolError(f"expected 'http.response.body', got {kind!r}")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise LocalProtocolError(f"response body must be bytes, got {type(body).__name__}")
                body = bytes(body)
            more = message.get("more_body", False)
            stream = self.stream
            if not more and self.trailers:
                stream.response_body(body, True)
                self.response_bytes += len(body)
                self.state = RESPONSE_TRAILERS
                return
            stream.response_body(body, more)
            self.response_bytes += len(body)
            if not more:
                self.state = RESPONSE_DONE
                if self.waiter is not None:
                    self._wake()
                stream.cycle_complete(self)
                return
            if stream.write_paused:
                await self._wait_for_room(stream)
            return
        if state is RESPONSE_TRAILERS:
            if kind != "http.response.trailers":
                raise LocalProtocolError(f"expected 'http.response.trailers', got {kind!r}")
            if message.get("more_trailers", False):
                raise LocalProtocolError("more_trailers is not supported: send the trailers in one message")
            self.stream.response_trailers(message.get("headers", ()))
            self.state = RESPONSE_DONE
            if self.waiter is not None:
                self._wake()
            self.stream.cycle_complete(self)
            return
        raise LocalProtocolError(f"unexpected {kind!r} after the response completed")

    # -- files: the http.response.pathsend and http.response.zerocopysend extensions (interfaces/files.py)
    async def _send_file(self, message: Message, kind: str) -> None:
        if kind == "http.response.pathsend":
            path = message.get("path")
            if not isinstance(path, str):
                raise LocalProtocolError(f"pathsend needs a path string, got {path!r:.80}")
            # The spec asks for an absolute path; a relative one (Starlette passes FileResponse's path as
            # given) is taken from the working directory, as the app itself would open it.
            fd, size = await open_regular(path)
            try:
                await self.send_file_body(fd, 0, size, False)
            finally:
                os.close(fd)
            return
        file = message.get("file")
        try:
            fd = file if type(file) is int else file.fileno()  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):
            raise LocalProtocolError(
                f"zerocopysend needs a file with a descriptor, got {file!r:.80}"
            ) from None
        offset = message.get("offset")
        count = message.get("count")
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR)  # the spec: from the file's position
        if count is None:
            count = max(0, os.fstat(fd).st_size - offset)
        if type(offset) is not int or type(count) is not int or offset < 0 or count < 0:
            raise LocalProtocolError(f"zerocopysend offset and count must be ints >= 0: {message!r:.80}")
        await self.send_file_body(fd, offset, count, bool(message.get("more_body", False)))

    async def send_file_body(self, fd: int, offset: int, count: int, more: bool) -> None:
        """Send ``count`` bytes of ``fd`` from ``offset`` as (part of) the body: zero copy where the
        stream can (cleartext HTTP/1.1), else in bounded chunks with backpressure; ends the response
        unless ``more``."""
        stream = self.stream
        if self.request.method == b"HEAD":
            count = 0
        sent = 0
        if count:
            sendfile = await stream.sendfile(fd, offset, count)
            sent = await self._file_chunks(fd, offset, count) if sendfile is None else sendfile
            self.response_bytes += sent
            if self.disconnected:
                raise self._gone()
            if sent < count:
                self.stream.app_error(self, f"file ended {count - sent} bytes short of the response", None)
                return
        if more:
            return
        if self.trailers:
            stream.response_body(b"", True)
            self.state = RESPONSE_TRAILERS
            return
        stream.response_body(b"", False)
        self.state = RESPONSE_DONE
        if self.waiter is not None:
            self._wake()
        stream.cycle_complete(self)

    async def _file_chunks(self, fd: int, offset: int, count: int) -> int:
        stream = self.stream
        sent = 0
        while sent < count:
            data = await read_chunk(fd, min(FILE_CHUNK, count - sent), offset + sent)
            if self.disconnected:
                raise self._gone()
            if not data:
                break  # the file is shorter than it was
            sent += len(data)
            stream.response_body(data, True)
            if stream.write_paused:
                await self._wait_for_room(stream)
        return sent

    def _early_hint(self, message: Message) -> None:
        """The http.response.early_hint extension: a 103 with the app's Link values (RFC 8297)."""
        try:
            links = [(b"link", bytes(link)) for link in message.get("links", ())]
        except TypeError:
            raise LocalProtocolError(f"early hint links must be bytes, got {message!r:.80}") from None
        if links:
            self.stream.response_informational(103, links)

    async def _wait_for_room(self, stream: Stream) -> None:
        """The client takes nothing more now: wait until it does (``--timeout-send`` runs meanwhile)."""
        stream.wait_started(WAIT_SEND)
        try:
            await stream.drain()
        finally:
            stream.wait_ended(WAIT_SEND)
        if self.disconnected:
            raise self._gone()

    def _gone(self) -> ClientDisconnected:
        reason = self.reason
        if reason is not None:
            return type(reason)(*reason.args)  # a fresh exception each time: tracebacks do not pile up
        return ClientDisconnected("client disconnected")

    # -- running the app
    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            if self.state is not RESPONSE_DONE:
                self.state = ABORTED
                self.stream.cycle_complete(self)
        except GeneratorExit:
            raise  # the coroutine is being closed (the loop is going away): no failure of the app's
        except BaseException as exc:  # the app's failure is reported, never raised into the loop
            # SystemExit and KeyboardInterrupt too: an app cannot stop the worker, with or without an await
            # before (docs/deployment.md, "When an app raises SystemExit").
            self.stream.app_error(self, f"exception in asgi application: {exc!r:.200}", exc)
        else:
            if self.state is RESPONSE_DONE:
                return
            if self.disconnected or self.peer_eof:
                # The client left and the app stopped: nothing to report, the connection just ends.
                self.state = ABORTED
                self.stream.cycle_complete(self)
            else:
                self.stream.app_error(self, "asgi application returned without completing the response", None)


def http_cycle(stream: Stream, request: Request, scope: Scope) -> HTTPCycle:
    """The cycle of ``request`` on ``stream``, with its ``scope``. The class has no ``__init__``, which
    Python 3.11 would run in a C-level call of its own (bench "hello8"); what ``send()`` reads for every
    request is set here, not left to its class-level default: Python 3.11 specializes an attribute read
    only when the instance holds the name."""
    cycle = HTTPCycle()
    cycle.stream = stream
    cycle.request = request
    cycle.scope = scope
    cycle.state = RESPONSE_START
    cycle.disconnected = False
    cycle.trailers = False
    cycle.waiter = None
    cycle.response_bytes = 0
    return cycle
