"""ASGI adapter for WebSocket connections (ASGI spec 2.4): one :class:`WebSocketSession` per connection.

The session turns the connection's events into ``websocket.*`` messages for ``receive`` and the
application's messages into calls on its :class:`WebSocketChannel`, with its progress in an explicit
:class:`SessionState`. The channel is the transport side (today an HTTP/1.1 upgrade, see
:mod:`tricorn.io.ws`; later an HTTP/2 stream, RFC 8441): it answers the handshake, writes frames, applies
backpressure and closes. The session knows nothing of frames or sockets.

Guarantees to the application:

- ``receive`` first returns ``websocket.connect``, then ``websocket.receive`` messages in arrival order,
  then ``websocket.disconnect`` with the close code (1006 when the connection was lost without a close
  frame), and ``websocket.disconnect`` again on every later call.
- ``send`` of ``websocket.send`` waits while the client is not reading (the transport's write buffer is
  full), so a slow client slows the application instead of growing memory. After the client has gone,
  ``send`` raises :class:`~tricorn.errors.ClientDisconnected` (an ``OSError``, spec 2.4).
- ``websocket.close`` before ``websocket.accept`` answers HTTP 403; ``websocket.http.response.start`` /
  ``.body`` before it send the application's own response (the ``websocket.http.response`` extension).
- An application that fails before accepting gets a 500 response; after accepting, a 1011 close.
"""

from __future__ import annotations

import asyncio
from collections import deque
from enum import Enum
from typing import Any, Protocol

from tricorn.errors import ClientDisconnected, LocalProtocolError
from tricorn.interfaces.asgi import ASGIApp, Message, Scope

_CONNECT: Message = {"type": "websocket.connect"}


class WebSocketChannel(Protocol):
    """What a session needs from the transport that carries it."""

    write_paused: bool

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None: ...
    def deny(self, status: int, headers: list[tuple[bytes, bytes]]) -> None: ...
    def deny_body(self, body: bytes, more: bool) -> None: ...
    def send_message(self, data: str | bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def session_done(self, session: WebSocketSession) -> None: ...
    def app_error(self, session: WebSocketSession, message: str, exc: BaseException | None) -> None: ...


class SessionState(Enum):
    CONNECTING = 0  # the handshake waits for the app: websocket.accept, websocket.close or a denial
    CONNECTED = 1  # accepted: messages flow both ways
    HTTP_RESPONSE = 2  # the app is sending a denial response (websocket.http.response.body parts)
    CLOSING = 3  # the app sent websocket.close; the closing handshake is in progress
    CLOSED = 4  # the connection is over (closed, lost, refused or denied)


CONNECTING, CONNECTED, HTTP_RESPONSE, CLOSING, CLOSED = SessionState


class WebSocketSession:
    """One WebSocket connection as the application sees it (see the module docstring)."""

    __slots__ = (
        "channel",
        "close_code",
        "close_reason",
        "connect_sent",
        "max_queue",
        "queue",
        "queue_high",
        "queued_bytes",
        "reading_paused",
        "running",
        "scope",
        "state",
        "status",
        "waiter",
    )

    def __init__(self, channel: WebSocketChannel, scope: Scope, max_queue: int, queue_high: int) -> None:
        self.channel = channel
        self.scope = scope
        self.state = CONNECTING
        self.queue: deque[Message] = deque()
        self.queued_bytes = 0
        self.max_queue = max_queue
        self.queue_high = queue_high  # queued bytes at which reading pauses
        self.reading_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.connect_sent = False
        self.close_code: int | None = None  # set once the connection is over
        self.close_reason = ""
        self.status = 0  # the handshake's HTTP status (101, 403, the app's denial...), for the access log
        self.running = False

    # -- events from the channel
    def message(self, data: str | bytes) -> None:
        """A complete message from the client."""
        if self.state is not CONNECTED:
            return  # after the app's websocket.close, messages still arriving are dropped
        if type(data) is str:
            self.queue.append({"type": "websocket.receive", "text": data})
        else:
            self.queue.append({"type": "websocket.receive", "bytes": data})
        self.queued_bytes += len(data)
        if (
            len(self.queue) >= self.max_queue or self.queued_bytes >= self.queue_high
        ) and not self.reading_paused:
            # The app is not keeping up: stop reading until it does (bounded memory per connection).
            self.reading_paused = True
            self.channel.pause_reading()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def closed(self, code: int, reason: str = "") -> None:
        """The connection is over: ``code`` is what websocket.disconnect reports."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
        self.state = CLOSED
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- ASGI callables
    async def receive(self) -> Message:
        if not self.connect_sent:
            self.connect_sent = True
            return _CONNECT
        while True:
            queue = self.queue
            if queue:
                message = queue.popleft()
                data = message.get("text")
                self.queued_bytes -= len(data if data is not None else message["bytes"])
                if (
                    self.reading_paused
                    and len(queue) <= self.max_queue // 2
                    and self.queued_bytes < self.queue_high // 2
                ):
                    self.reading_paused = False
                    self.channel.resume_reading()
                return message
            if self.close_code is not None:
                return {"type": "websocket.disconnect", "code": self.close_code, "reason": self.close_reason}
            waiter = self.waiter = asyncio.get_running_loop().create_future()
            await waiter

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise LocalProtocolError(f"asgi message without a type: {message!r:.80}") from None
        state = self.state
        if state is CONNECTED:
            if kind == "websocket.send":
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                    if type(data) is not str:
                        raise LocalProtocolError("websocket.send needs 'bytes' or 'text'")
                elif type(data) is not bytes:
                    if not isinstance(data, (bytearray, memoryview)):
                        raise LocalProtocolError(
                            f"websocket.send 'bytes' must be bytes, got {type(data).__name__}"
                        )
                    data = bytes(data)
                channel = self.channel
                channel.send_message(data)
                if channel.write_paused:
                    await channel.drain()
                    if self.state is CLOSED:
                        raise ClientDisconnected("websocket client disconnected")
                return
            if kind == "websocket.close":
                code, reason = _close_args(message)
                self.channel.close(code, reason)  # raises LocalProtocolError for a code that may not be sent
                if self.state is CONNECTED:
                    self.state = CLOSING
                    self.close_code = code
                    self.close_reason = reason
                self._wake()
                return
            raise LocalProtocolError(f"expected 'websocket.send' or 'websocket.close', got {kind!r}")
        if state is CONNECTING:
            if kind == "websocket.accept":
                subprotocol = message.get("subprotocol")
                headers = list(message.get("headers") or ())
                # CONNECTED first: frames the client sent early are parsed during the accept.
                self.state = CONNECTED
                self.status = 101
                try:
                    self.channel.accept(subprotocol, headers)
                except LocalProtocolError:  # a bad subprotocol or header: still unanswered
                    self.state = CONNECTING
                    self.status = 0
                    raise
                return
            if kind == "websocket.close":
                # ASGI: a close before the accept refuses the handshake with 403.
                _close_args(message)
                self.status = 403
                self.state = CLOSED
                self.close_code = 1006
                self.channel.deny(403, [(b"content-length", b"0")])
                self.channel.deny_body(b"", False)
                self._wake()
                return
            if kind == "websocket.http.response.start":
                status = message.get("status")
                if type(status) is not int or not 100 <= status <= 599 or status == 101:
                    raise LocalProtocolError(f"invalid denial response status {status!r}")
                self.channel.deny(status, list(message.get("headers") or ()))
                self.status = status
                self.state = HTTP_RESPONSE
                return
            raise LocalProtocolError(
                f"expected 'websocket.accept', 'websocket.close' or 'websocket.http.response.start', got {kind!r}"
            )
        if state is HTTP_RESPONSE:
            if kind != "websocket.http.response.body":
                raise LocalProtocolError(f"expected 'websocket.http.response.body', got {kind!r}")
            body = message.get("body", b"")
            if type(body) is not bytes:
                if not isinstance(body, (bytearray, memoryview)):
                    raise LocalProtocolError(f"response body must be bytes, got {type(body).__name__}")
                body = bytes(body)
            more = bool(message.get("more_body", False))
            self.channel.deny_body(body, more)
            if not more:
                self.state = CLOSED
                self.close_code = 1006
                self._wake()
            return
        if kind == "websocket.close" and (state is CLOSING or self.status in (0, 101)):
            return  # closing what is already closing or closed is harmless
        if state is CLOSED and self.status in (0, 101):
            # The client left (during the handshake, or after the accept).
            raise ClientDisconnected("websocket client disconnected")
        if state is CLOSED:
            raise LocalProtocolError(f"unexpected {kind!r} after the handshake was refused")
        raise LocalProtocolError(f"unexpected {kind!r} after 'websocket.close'")

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- running the app
    async def run(self, app: ASGIApp) -> None:
        self.running = True
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except GeneratorExit:
            raise  # the coroutine is being closed (the loop is going away): no failure of the app's
        except BaseException as exc:  # the app's failure is reported, never raised into the loop
            # SystemExit and KeyboardInterrupt too (docs/deployment.md, "When an app raises SystemExit").
            self.channel.app_error(self, f"exception in asgi websocket application: {exc!r:.200}", exc)
        else:
            if self.state is CONNECTING:
                self.channel.app_error(self, "asgi websocket application returned without accepting", None)
            elif self.state is HTTP_RESPONSE:
                self.channel.app_error(
                    self, "asgi websocket application returned without completing its response", None
                )
        finally:
            self.running = False
            self.channel.session_done(self)


def _close_args(message: Message) -> tuple[int, str]:
    code: Any = message.get("code", 1000)
    reason: Any = message.get("reason") or ""
    if type(code) is not int:
        raise LocalProtocolError(f"websocket.close code must be an int, got {code!r:.40}")
    if not isinstance(reason, str):
        raise LocalProtocolError(f"websocket.close reason must be a str, got {reason!r:.40}")
    return code, reason


def build_ws_scope(http_scope: Scope, subprotocols: list[str]) -> Scope:
    """The websocket scope for an upgrade request, from the HTTP scope built for it."""
    scope = http_scope
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope.get("scheme") == "https" else "ws"
    scope.pop("method", None)
    scope["subprotocols"] = subprotocols
    extensions: dict[str, Any] = {"websocket.http.response": {}}
    tls = scope["extensions"].get("tls")
    if tls is not None:  # the ASGI tls extension applies to WebSocket scopes too
        extensions["tls"] = tls
    scope["extensions"] = extensions
    return scope
