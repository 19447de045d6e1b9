"""Small ASGI apps with unusual lifespan behaviour, for the command-line tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _hello(send: Send, body: bytes) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports lifespan.startup.failed with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable at db:5432"})
        return
    await _hello(send, b"never served")


async def raising_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Speaks lifespan but raises during startup."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("lifespan exploded during startup")
    await _hello(send, b"served without lifespan")


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Knows only http, like many hand-written apps: anything else is an error."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await _hello(send, b"no lifespan here")


async def returns_on_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Returns at once for a lifespan scope."""
    if scope["type"] != "http":
        return
    await _hello(send, b"returned from lifespan")


async def exits_in_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Calls sys.exit() (status 0) during startup: still a failed startup."""
    if scope["type"] == "lifespan":
        await receive()
        sys.exit()
    await _hello(send, b"never served")


async def exits_in_shutdown(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts, then calls sys.exit(4) during shutdown: logged, and the server stops as usual."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        sys.exit(4)
    await _hello(send, b"started")


async def silent_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Never answers lifespan.startup."""
    if scope["type"] == "lifespan":
        await receive()
        await asyncio.Event().wait()
    await _hello(send, b"never served")


async def silent_shutdown(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers startup, never answers lifespan.shutdown."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.Event().wait()
    await _hello(send, b"started")
