"""Apps that report what they were told about their client: its address, the scheme, the Host and the URL
they rebuild from them (with Starlette's and Werkzeug's own code), for the proxy tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket

from tests.apps.basic import lifespan

Scope = dict[str, Any]


def _view(scope: Scope) -> dict[str, Any]:
    headers = dict(scope["headers"])
    tls = scope.get("extensions", {}).get("tls")
    return {
        "client": list(scope["client"]) if scope["client"] is not None else None,
        "server": list(scope["server"]) if scope["server"] is not None else None,
        "scheme": scope["scheme"],
        "host": headers.get(b"host", b"").decode("latin-1"),
        "tls": {k: v for k, v in tls.items() if k != "server_cert"} if tls is not None else None,
    }


async def app(
    scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]
) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] == "websocket":
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        view = _view(scope)
        view["url"] = str(websocket.url)
        await websocket.send_text(json.dumps(view))
        await websocket.close()
        return
    view = _view(scope)
    view["url"] = str(Request(scope).url)
    body = json.dumps(view).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    from werkzeug.wrappers import Request as WerkzeugRequest

    keys = (
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "wsgi.url_scheme",
        "HTTP_HOST",
        "SERVER_NAME",
        "SERVER_PORT",
        "HTTPS",
    )
    view = {key: environ.get(key) for key in keys}
    view["url"] = WerkzeugRequest(environ).url
    body = json.dumps(view).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
