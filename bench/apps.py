"""Benchmark apps, served identically by every server under test.

Plain ASGI callables (no framework) so the numbers measure the server, not the app.
Each handles the ``lifespan`` scope minimally.
"""

from __future__ import annotations

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
