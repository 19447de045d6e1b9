"""ASGI 3.0 adapter for HTTP requests: one :class:`HTTPCycle` per request.

The cycle turns core events into ``http.request`` messages for ``receive`` and the application's
``http.response.*`` messages into core calls, with its progress in an explicit :class:`CycleState`.
It talks to its connection through the small :class:`Channel` protocol (write bytes, wait for the peer to
drain, report completion), so the same cycle can later sit on an HTTP/2 stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from enum import Enum
from typing import Any, Protocol
from urllib.parse import unquote

from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.proto.h1 import CONTINUE_RESPONSE, H1Connection, Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

# A slow app lets body bytes pile up to this much before the socket stops being read (uvicorn: 64 KiB).
HIGH_WATER = 65536
# Below this size the head is copied in front of the body to make one write; above it, the two go out
# together with writelines (writev) instead of copying the body.
_COPY_LIMIT = 16384
# Streamed parts are batched into one write until this much is pending (the size of a socket buffer).
WRITE_BATCH = 65536

_METHODS = {m: m.decode("ascii") for m in (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH")}


class Channel(Protocol):
    """What a cycle needs from its connection."""

    transport: asyncio.Transport
    write_paused: bool

    def write(self, data: bytes) -> None: ...
    def writelines(self, data: Iterable[bytes]) -> None: ...
    async def drain(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def cycle_complete(self, cycle: HTTPCycle) -> None: ...
    def app_error(self, cycle: HTTPCycle, message: str, exc: BaseException | None) -> None: ...


class CycleState(Enum):
    RESPONSE_START = 0  # waiting for http.response.start
    RESPONSE_BODY = 1  # start received (head held until the first body part), body in progress
    RESPONSE_DONE = 2  # the whole response was handed to the connection
    ABORTED = 3  # the app failed after the response started, or the connection was lost


# Members as module constants: on Python 3.11 `Enum.MEMBER` goes through EnumType.__getattr__, which
# costs about as much as parsing a request head (bench "hello", counted with callgrind).
RESPONSE_START, RESPONSE_BODY, RESPONSE_DONE, ABORTED = CycleState


def build_scope(
    request: Request,
    server: tuple[str, int] | None,
    client: tuple[str, int] | None,
    scheme: str,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    raw_path = request.path
    try:
        path = raw_path.decode("ascii")
    except UnicodeDecodeError:  # pragma: no cover - the core refuses non-ASCII targets
        path = raw_path.decode("latin-1")
    if "%" in path:
        path = unquote(path)  # UTF-8, invalid sequences replaced (as uvicorn and Starlette do)
    method = request.method
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": request.http_version,
        "server": server,
        "client": client,
        "scheme": scheme,
        "method": _METHODS.get(method) or method.decode("ascii"),
        "root_path": root_path,
        "path": root_path + path if root_path else path,
        "raw_path": raw_path,
        "query_string": request.query,
        "headers": request.headers,
        "extensions": {},
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope


class HTTPCycle:
    """One request/response exchange. ``receive`` and ``send`` are the ASGI callables given to the app."""

    # No __slots__: per-request state starts at these class-level defaults and __init__ sets only the
    # four attributes every request needs (a 20-attribute __init__ cost ~4% of bench "hello").
    body_size = 0
    body_complete = False
    body_delivered = False
    disconnected = False
    peer_eof = False
    continue_sent = False
    waiter: asyncio.Future[None] | None = None
    state = RESPONSE_START
    head = b""
    status = 0
    response_headers: Any = ()
    response_bytes = 0
    start_time = 0.0
    counted = False  # counted in the server's active requests
    pending: list[bytes] | None = None  # streamed body parts not yet written (see send)
    pending_size = 0

    def __init__(self, channel: Channel, conn: H1Connection, request: Request, scope: Scope) -> None:
        self.channel = channel
        self.conn = conn
        self.request = request
        self.scope = scope
        self.body: list[bytes] = []

    # -- events from the connection
    def feed_body(self, data: bytes) -> None:
        self.body.append(data)
        self.body_size += len(data)
        if self.body_size > HIGH_WATER:
            self.channel.pause_reading()
        self._wake()

    def end_body(self) -> None:
        self.body_complete = True
        self._wake()

    def disconnect(self) -> None:
        """The client went away (or the server gives up on it): wake anything waiting."""
        self.disconnected = True
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
            if self.body:
                body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
                self.body.clear()
                self.body_size = 0
                self.channel.resume_reading()
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
                    self.channel.write(CONTINUE_RESPONSE)
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def send(self, message: Message) -> None:
        state = self.state
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise LocalProtocolError(f"asgi message without a type: {message!r:.80}") from None
        if state is RESPONSE_START:
            if kind != "http.response.start":
                raise LocalProtocolError(f"expected 'http.response.start', got {kind!r}")
            status: Any = message.get("status")  # validated by the core (status_line)
            headers = message.get("headers", ())
            self.head = self.conn.response_head(status, headers)
            self.status = status
            self.response_headers = headers
            self.state = RESPONSE_BODY
            return
        if state is RESPONSE_BODY:
            if kind != "http.response.body":
                raise LocalProtocolError(f"expected 'http.response.body', got {kind!r}")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise LocalProtocolError(f"response body must be bytes, got {type(body).__name__}")
                body = bytes(body)
            more = message.get("more_body", False)
            data = self.conn.response_body(body, more)
            self.response_bytes += len(body)
            channel = self.channel
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
                    channel.writelines(pending)
                elif head:
                    channel.writelines((head, data))  # a large body is not copied (bench "post1m")
                elif data:
                    channel.write(data)  # head and a small body in one write (bench "hello")
                self.state = RESPONSE_DONE
                if self.waiter is not None:
                    self._wake()
                channel.cycle_complete(self)
                return
            if data or head:
                # Parts sent without waiting in between go out in one write at the end of this loop turn
                # (or sooner past WRITE_BATCH): one syscall instead of one per part (bench "stream").
                pending = self.pending
                if pending is None:
                    pending = self.pending = [head, data] if head else [data]
                    self.pending_size = len(head) + len(data)
                    asyncio.get_running_loop().call_soon(self._flush)
                else:
                    pending.append(data)
                    self.pending_size += len(data)
                if self.pending_size > WRITE_BATCH:
                    self._flush()
            if channel.write_paused:
                await channel.drain()
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
            return
        raise LocalProtocolError(f"unexpected {kind!r} after the response completed")

    def _flush(self) -> None:
        pending = self.pending
        if pending is not None:
            self.pending = None
            if not self.disconnected and self.state is RESPONSE_BODY:
                self.channel.writelines(pending)

    # -- running the app
    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            if self.state is not RESPONSE_DONE:
                self.state = ABORTED
                self.channel.cycle_complete(self)
        except BaseException as exc:  # the app's failure is reported, never raised into the loop
            # SystemExit and KeyboardInterrupt too: an app cannot stop the worker, with or without an await
            # before (docs/deployment.md, "When an app raises SystemExit").
            self._flush()  # what the app sent before failing still reaches the client, then the cut
            self.channel.app_error(self, f"exception in asgi application: {exc!r:.200}", exc)
        else:
            if self.state is not RESPONSE_DONE and (self.disconnected or self.peer_eof):
                # The client left and the app stopped: nothing to report, the connection just ends.
                self.state = ABORTED
                self.channel.cycle_complete(self)
            elif self.state is not RESPONSE_DONE:
                self.channel.app_error(
                    self, "asgi application returned without completing the response", None
                )
