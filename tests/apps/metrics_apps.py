"""Apps for the metrics, probes and JSON-log tests.

``app`` (ASGI): ``/`` answers ``pid N``; ``/echo`` answers the request body; ``/missing`` 404;
``/slow?delay=S`` sleeps asynchronously (prints ``metrics app: slow started``); ``/block?seconds=S``
blocks the event loop; ``/raise`` raises (with a message holding a line break and an ESC); a WebSocket
on any path echoes text. Lifespan startup takes ``TRICORN_TEST_STARTUP_DELAY`` seconds (default 0).

``wsgi_app`` (WSGI): ``/`` answers ``pid N``, ``/echo`` the body, anything else 404.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def respond(send: Send, body: bytes, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.sleep(float(os.environ.get("TRICORN_TEST_STARTUP_DELAY", "0")))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text") or ""})
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/":
        await respond(send, f"pid {os.getpid()}".encode())
    elif path == "/echo":
        await respond(send, body)
    elif path == "/slow":
        print("metrics app: slow started", file=sys.stderr, flush=True)
        await asyncio.sleep(float(query.get("delay", "1")))
        await respond(send, b"slow done")
    elif path == "/block":
        time.sleep(float(query.get("seconds", "3")))
        await respond(send, b"unblocked")
    elif path == "/raise":
        raise RuntimeError('bad "value"\nsecond line \x1b[31m')
    else:
        await respond(send, b"not found", 404)


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/":
        body, status = f"pid {os.getpid()}".encode(), "200 OK"
    elif path == "/echo":
        body, status = environ["wsgi.input"].read(), "200 OK"
    else:
        body, status = b"not found", "404 Not Found"
    start_response(status, [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
