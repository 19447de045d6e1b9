"""The app behind a CGI directory in tests/e2e/test_cgi.py: it answers ``app PATH`` (and takes a local
redirect a script hands to the server)."""

from __future__ import annotations

from typing import Any


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")  # (tricorn then serves without it)
    body = f"app {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
