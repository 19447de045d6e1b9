"""An ASGI app that serves the CGI scripts of $TRICORN_TEST_CGI_DIR under /cgi-bin and answers "app"
elsewhere: the CGI handler run by the server's ordinary HTTPCycle, as the dispatch table runs it."""

from __future__ import annotations

import os
from typing import Any

from tricorn.interfaces.cgi import CGIMount, CGIScripts

scripts = CGIScripts(
    float(os.environ.get("TRICORN_TEST_CGI_TIMEOUT", "60")),
    int(os.environ.get("TRICORN_TEST_CGI_MAX", "10")),
)


async def fallback(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = f"app {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def dispatch(scope: Any) -> Any:
    path: bytes = scope["raw_path"]
    return mount if path == b"/cgi-bin" or path.startswith(b"/cgi-bin/") else fallback


mount = CGIMount("/cgi-bin", os.environ.get("TRICORN_TEST_CGI_DIR", "."), scripts, dispatch)


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan")  # (tricorn then serves without it)
    await dispatch(scope)(scope, receive, send)
