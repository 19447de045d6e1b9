"""Apps mounted side by side (--mount): each reports what it sees of itself, and logs its lifespan."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _asgi(name: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["owner"] = name
                    print(f"mounts: {name} startup", file=sys.stderr, flush=True)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    print(f"mounts: {name} shutdown", file=sys.stderr, flush=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            facts = {"app": name, "root_path": scope["root_path"], "path": scope["path"]}
            await send({"type": "websocket.send", "text": json.dumps(facts)})
            await send({"type": "websocket.close", "code": 1000})
            return
        facts = {
            "app": name,
            "interface": "asgi",
            "root_path": scope["root_path"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "state_owner": scope.get("state", {}).get("owner"),
            "http_version": scope["http_version"],
        }
        body = json.dumps(facts).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


api = _asgi("api")
api_v2 = _asgi("api_v2")
chat = _asgi("chat")


def site(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A WSGI app: SCRIPT_NAME and PATH_INFO as PEP 3333 gives them."""
    facts = {
        "app": "site",
        "interface": "wsgi",
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
    }
    body = json.dumps(facts).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def legacy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A second WSGI app, on the same thread pool."""
    return site(environ, start_response)


async def failing(scope: Scope, receive: Receive, send: Send) -> None:
    """A mount whose lifespan startup fails."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "cache unreachable"})
