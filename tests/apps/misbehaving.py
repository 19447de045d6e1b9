"""Applications that do what no application should, for tests/e2e/test_misbehaving_apps.py.

``app`` (ASGI) routes:

- ``/pid``: ``pid N`` (which process answered; the connection is kept alive).
- ``/exit-now?code=N``: ``sys.exit(N)`` before the first await.
- ``/exit-later?code=N``: ``sys.exit(N)`` after an await that suspends.
- ``/interrupt``: raises KeyboardInterrupt after an await that suspends.
- ``/self-cancel``: cancels its own task before the first await, catches the CancelledError that the next
  await raises, and answers 200 ``survived its own cancellation``.
- ``/self-cancel-unhandled``: the same, but lets the CancelledError out.
- ``/expired-timeout``: awaits a 5 s sleep inside ``asyncio.timeout(0)``, whose expiry cancels the task from
  a loop callback right after the first await suspended; answers 200 ``timed out`` (or ``the deadline never
  came``).
- WebSocket ``/exit``: accepts, waits for one message, then ``sys.exit(3)``.

Lifespan: answers startup and shutdown at once. ``wsgi_app`` raises SystemExit on ``/exit``, else answers
``pid N``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def respond(send: Send, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def exit_code(scope: Scope) -> int:
    return int(parse_qs(scope["query_string"].decode()).get("code", ["3"])[0])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if scope["type"] == "websocket":
        if path == "/exit":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            assert (await receive())["type"] == "websocket.receive"
            sys.exit(3)
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/pid":
        await respond(send, b"pid %d" % os.getpid())
    elif path == "/exit-now":
        sys.exit(exit_code(scope))
    elif path == "/exit-later":
        await asyncio.sleep(0)
        sys.exit(exit_code(scope))
    elif path == "/interrupt":
        await asyncio.sleep(0)
        raise KeyboardInterrupt
    elif path == "/self-cancel":
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        body = b"the cancellation never came"
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            body = b"survived its own cancellation"
        await respond(send, body)
    elif path == "/self-cancel-unhandled":
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0.01)
        await respond(send, b"never sent")
    elif path == "/expired-timeout":
        body = b"the deadline never came"
        try:
            async with asyncio.timeout(0):
                await asyncio.sleep(5)
        except TimeoutError:
            body = b"timed out"
        await respond(send, body)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/exit":
        raise SystemExit(3)
    body = b"pid %d" % os.getpid()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
