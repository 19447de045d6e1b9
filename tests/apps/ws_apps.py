"""WebSocket test apps: ``app`` routes by path; ``echo`` echoes on every path (for Autobahn).

What the app saw (disconnect codes, send progress) is recorded in ``EVENTS`` and served as JSON by
``GET /events`` (plain HTTP on the same server), so tests can ask the server process what happened.
Lifespan shutdown writes the file named by ``TRICORN_TEST_LIFESPAN_FILE``, if set.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

Scope = dict[str, Any]
EVENTS: dict[str, Any] = {"disconnects": [], "sent": 0, "in_send": False, "received": 0, "release": False}
_RELEASE = asyncio.Event()


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            path = os.environ.get("TRICORN_TEST_LIFESPAN_FILE")
            if path:
                with open(path, "w") as file:
                    file.write("shutdown\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope: Scope, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/yield":
        for _ in range(3):  # suspends (a pipelined handshake behind it must wait its turn)
            await asyncio.sleep(0)
    if scope["path"] == "/release":
        _RELEASE.set()
        body = b"released"
    elif scope["path"] == "/events":
        body = json.dumps(EVENTS).encode()
    else:
        body = b"plain http: " + scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _echo_loop(receive: Any, send: Any, path: str = "") -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            EVENTS["disconnects"].append([message["code"], message.get("reason", ""), path])
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Echo every message on every path."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(scope, receive, send)
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    await _echo_loop(receive, send)


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        await _http(scope, receive, send)
        return
    path = scope["path"]
    message = await receive()
    assert message["type"] == "websocket.connect", message
    if path == "/scope":
        await send({"type": "websocket.accept"})
        shown = {k: v for k, v in scope.items() if k not in ("headers", "state", "raw_path", "query_string")}
        shown["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        await send({"type": "websocket.send", "text": json.dumps(shown)})
        await _echo_loop(receive, send, path)
    elif path == "/subprotocol":
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None})
        await _echo_loop(receive, send)
    elif path == "/headers":
        await send(
            {"type": "websocket.accept", "headers": [(b"x-tricorn-test", b"yes"), (b"set-cookie", b"a=b")]}
        )
        await _echo_loop(receive, send)
    elif path.startswith("/close/"):
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": int(path.split("/")[2]), "reason": "bye"})
        message = await receive()
        EVENTS["disconnects"].append([message["code"], message.get("reason", ""), path])
    elif path == "/return":
        await send({"type": "websocket.accept"})
    elif path == "/reject":
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/deny":
        body = b"go away"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body[:3], "more_body": True})
        await send({"type": "websocket.http.response.body", "body": body[3:]})
    elif path == "/error-before-accept":
        raise RuntimeError("failing before the accept")
    elif path == "/error-after-accept":
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("failing after the accept")
    elif path == "/no-accept":
        return
    elif path.startswith("/flood/"):
        # Send COUNT messages of SIZE bytes as fast as the client reads them; EVENTS shows the progress.
        count, size = (int(x) for x in path.split("/")[2:4])
        await send({"type": "websocket.accept"})
        payload = b"x" * size
        for _ in range(count):
            EVENTS["in_send"] = True
            await send({"type": "websocket.send", "bytes": payload})
            EVENTS["in_send"] = False
            EVENTS["sent"] += 1
        await _echo_loop(receive, send)
    elif path == "/hold":
        # Read nothing until GET /release: the client's messages pile up in front of the app.
        await send({"type": "websocket.accept"})
        await _RELEASE.wait()
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                EVENTS["disconnects"].append([message["code"], message.get("reason", ""), path])
                return
            EVENTS["received"] += 1
            if message.get("text") == "done":
                await send({"type": "websocket.send", "text": str(EVENTS["received"])})
    elif path.startswith("/send-after-disconnect"):
        await send({"type": "websocket.accept"})
        message = await receive()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            EVENTS["disconnects"].append([message["code"], type(exc).__name__, path])
        else:
            EVENTS["disconnects"].append([message["code"], "no error", path])
    else:
        await send({"type": "websocket.accept"})
        await _echo_loop(receive, send, path)
