"""Benchmark apps, served identically by every server under test.

Plain ASGI callables (no framework) so the numbers measure the server, not the app.
Each handles the ``lifespan`` scope minimally. The ``wsgi_*`` apps are their WSGI counterparts.
"""

from __future__ import annotations

import time
from typing import Any

Scope = dict[str, Any]

HELLO_BODY = b"Hello, world!"
HELLO_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(HELLO_BODY)).encode()),
]

STREAM_CHUNK = b"x" * 1024
STREAM_PARTS = 10
STREAM_HEADERS = [(b"content-type", b"application/octet-stream")]


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope: Scope, receive: Any, send: Any) -> None:
    """GET / -> 200 text/plain "Hello, world!" with content-length."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
    await send({"type": "http.response.body", "body": HELLO_BODY})


async def stream(scope: Scope, receive: Any, send: Any) -> None:
    """GET / -> 10 x 1 KiB body parts, no content-length (chunked encoding)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    for _ in range(STREAM_PARTS):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """POST / -> read the whole request body, echo it back with content-length."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(parts)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- WSGI (PEP 3333): the same responses for the WSGI section ------------------------------------------

WSGI_HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))]
BLOCKING_SECONDS = 0.010


def wsgi_hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """GET / -> 200 text/plain "Hello, world!" with content-length."""
    start_response("200 OK", WSGI_HELLO_HEADERS)
    return [HELLO_BODY]


def wsgi_blocking(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """GET / -> blocks 10 ms (a database call, say: the GIL is released), then "Hello, world!"."""
    time.sleep(BLOCKING_SECONDS)
    start_response("200 OK", WSGI_HELLO_HEADERS)
    return [HELLO_BODY]


async def ws_echo(scope: Scope, receive: Any, send: Any) -> None:
    """WebSocket: accept, then send every message back; plain HTTP gets 200 `ok` (readiness polls)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})
