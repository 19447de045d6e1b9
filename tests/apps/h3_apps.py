"""The apps behind the HTTP/3 end-to-end tests (tests/e2e/test_http3.py): tests.apps.basic's routes, the
HTTP/2 recorder's ``/upload`` and ``/hold``, the extension apps' ``/hints`` and ``/trailers``, WebSocket
from tests.apps.ws_apps, and:

- ``/request-trailers``: reads the body and answers with its size (the client sends trailers after it).
- ``/tls``: the scope's ``tls`` extension as JSON.
"""

from __future__ import annotations

from typing import Any

from tests.apps import basic, extension_apps, h2_apps, ws_apps


async def request_trailers(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    body = await basic.read_body(receive)
    await basic.respond_json(send, {"bytes": len(body)})


async def tls(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    await basic.respond_json(send, scope["extensions"].get("tls"))


ROUTES = {"/request-trailers": request_trailers, "/tls": tls}


async def app(scope: dict[str, Any], receive: basic.Receive, send: basic.Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        await ws_apps.app(scope, receive, send)
        return
    if kind != "http":
        await basic.app(scope, receive, send)
        return
    path = scope["path"]
    handler = ROUTES.get(path) or h2_apps.ROUTES.get(path)
    if handler is not None:
        await handler(scope, receive, send)
    elif path in ("/hints", "/trailers"):
        await extension_apps.app(scope, receive, send)
    else:
        await basic.app(scope, receive, send)
