"""ASGI extension messages (tests/e2e/test_extensions.py): early hints and response trailers."""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    extensions = scope["extensions"]
    assert "http.response.trailers" in extensions and "http.response.early_hint" in extensions
    if path == "/hints":
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload; as=style"]})
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/trailers":
        headers = [(b"content-type", b"text/plain")]
        if "length" in scope["query_string"].decode():
            headers.append((b"content-length", b"11"))
        await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
        await send({"type": "http.response.body", "body": b"part1 ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part2"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})
