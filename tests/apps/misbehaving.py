"""Applications that do what no application should, for tests/e2e/test_misbehaving_apps.py.

``app`` (ASGI) routes:

- ``/pid``: ``pid N`` (which process answered; the connection is kept alive).
- ``/self-cancel``: cancels its own task before the first await, catches the CancelledError that the next
  await raises, and answers 200 ``survived its own cancellation``.
- ``/self-cancel-unhandled``: the same, but lets the CancelledError out.

Lifespan: answers startup and shutdown at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def respond(send: Send, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path = scope["path"]
    if path == "/pid":
        await respond(send, b"pid %d" % os.getpid())
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
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
