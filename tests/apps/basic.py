"""A plain ASGI 3 application for the end-to-end tests: no framework, one route per behaviour under test.

Lifespan puts ``started`` and a request counter in the shared state. Shutdown prints
``basic app: lifespan shutdown`` and, when ``TRICORN_TEST_SHUTDOWN_FILE`` is set, writes that file.
What the app observes that a client cannot see (an ``http.disconnect``, the progress of a big response)
is kept in module-level structures and served by ``/events``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Things the app saw, for /events: one string per event ("disconnect /wait-disconnect", "slow started").
EVENTS: list[str] = []
# Progress of the current /big response: bytes handed to send, whether a send is awaiting (blocked), and
# the error a send raised (the client gone).
BIG: dict[str, Any] = {"sent": 0, "in_send": False, "done": False, "error": None}


def log(message: str) -> None:
    print(f"basic app: {message}", file=sys.stderr, flush=True)


def query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected while sending the body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(
    send: Send,
    body: bytes,
    status: int = 200,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, value: object, status: int = 200) -> None:
    await respond(send, json.dumps(value).encode(), status, b"application/json")


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            scope["state"]["counter"] = {"requests": 0}
            log("lifespan startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            log("lifespan shutdown")
            marker = os.environ.get("TRICORN_TEST_SHUTDOWN_FILE")
            if marker:
                with open(marker, "w") as file:
                    file.write("shutdown complete\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    state = scope.get("state")
    if state is not None and "counter" in state:
        state["counter"]["requests"] += 1  # the dict is shared: the scope's copy is shallow
    path = scope["path"].removeprefix(scope["root_path"]) if scope["root_path"] else scope["path"]
    handler = ROUTES.get(path)
    if handler is None and path.startswith("/status/"):
        handler = status
    if handler is None and path.startswith("/echo/"):
        handler = echo
    if handler is None:
        await respond(send, b"not found\n", 404)
        return
    await handler(scope, receive, send)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"hello, world")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    state = scope.get("state")
    info = {
        "type": scope["type"],
        "asgi": scope["asgi"],
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "client": scope["client"],
        "server": scope["server"],
        "extensions": sorted(scope.get("extensions") or {}),
        "keys": sorted(scope),
        "state": dict(state) if state is not None else None,
        "body": body.decode("latin-1"),
        "types": {
            "raw_path": type(scope["raw_path"]).__name__,
            "query_string": type(scope["query_string"]).__name__,
            "client": type(scope["client"]).__name__,
            "server": type(scope["server"]).__name__,
        },
    }
    if state is not None:
        state["mutated_by_request"] = True  # must not leak into the next request's state
    await respond_json(send, info)


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    n = int(query(scope).get("n", "3"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(n):
        await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    delay = float(query(scope).get("delay", "1"))
    EVENTS.append("slow started")
    await asyncio.sleep(delay)
    EVENTS.append("slow finished")
    await respond(send, b"slow done")


async def work(scope: Scope, receive: Receive, send: Send) -> None:
    """Work that goes on whether or not the client waits (a database write, say), logged when done."""
    EVENTS.append("work started")
    await asyncio.sleep(float(query(scope).get("delay", "1")))
    log("work finished")
    await respond(send, b"work done")


async def read_slowly(scope: Scope, receive: Receive, send: Send) -> None:
    total = parts = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            EVENTS.append("disconnect /read-slowly")
            return
        total += len(message.get("body", b""))
        parts += 1
        if not message.get("more_body", False):
            break
        await asyncio.sleep(0.001)  # let the body pile up between reads
    await respond_json(send, {"bytes": total, "parts": parts})


async def big(scope: Scope, receive: Receive, send: Send) -> None:
    size = int(query(scope).get("size", str(64 * 1024 * 1024)))
    chunk = b"x" * 65536
    BIG.update(sent=0, in_send=False, done=False, error=None)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode()),
            ],
        }
    )
    remaining = size
    while remaining > 0:
        part = chunk if remaining >= len(chunk) else chunk[:remaining]
        remaining -= len(part)
        BIG["in_send"] = True
        try:
            await send({"type": "http.response.body", "body": part, "more_body": remaining > 0})
        except OSError as exc:
            BIG["error"] = f"{type(exc).__name__}: {exc}"
            raise
        BIG["in_send"] = False
        BIG["sent"] += len(part)
    BIG["done"] = True


async def error(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom before the response started")


async def error_after_start(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial ", "more_body": True})
    raise RuntimeError("boom after the response started")


async def error_client_text(scope: Scope, receive: Receive, send: Send) -> None:
    # Errors often carry what the client sent: here a header value, and the decoded ?text= (CR, LF, ESC...).
    header = dict(scope["headers"]).get(b"x-client-text", b"").decode("latin-1")
    try:
        raise KeyError(header)
    except KeyError as exc:
        raise ValueError(f"cannot handle {query(scope).get('text', '')}") from exc


async def bad_header(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"never sent", headers=[(b"x-bad", b"value\r\ninjected: yes")])


async def no_response(scope: Scope, receive: Receive, send: Send) -> None:
    return


async def wait_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"waiting for you to leave\n", "more_body": True})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            EVENTS.append("disconnect /wait-disconnect")
            log("got http.disconnect on /wait-disconnect")
            return


async def events(scope: Scope, receive: Receive, send: Send) -> None:
    await respond_json(send, {"events": EVENTS, "big": BIG})


async def head_test(scope: Scope, receive: Receive, send: Send) -> None:
    # Sends its body even for HEAD: the server must drop it and keep the content-length.
    await respond(send, b"thirteen char", headers=[(b"x-method", scope["method"].encode())])


async def status(scope: Scope, receive: Receive, send: Send) -> None:
    code = int(scope["path"].rsplit("/", 1)[1])
    await send(
        {"type": "http.response.start", "status": code, "headers": [(b"x-status", str(code).encode())]}
    )
    await send({"type": "http.response.body", "body": b"a body the server must drop"})


async def reject(scope: Scope, receive: Receive, send: Send) -> None:
    # Answers without reading the body: with Expect: 100-continue, no 100 must be sent.
    await respond(send, b"not interested\n", 417)


async def meddle(scope: Scope, receive: Receive, send: Send) -> None:
    """Says what its scope holds, then changes it in place, as a careless middleware might: what one
    request's app does to its scope shows in no other request's."""
    seen = {
        "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
        "client": scope["client"],
        "extensions": sorted(scope["extensions"]),
        "trailers": scope["extensions"]["http.response.trailers"],
    }
    scope["headers"].append((b"x-meddled", b"yes"))
    scope["headers"][0] = (b"host", b"meddled.example")
    scope["client"] = ("6.6.6.6", 6)
    scope["extensions"]["x.meddled"] = {}
    try:
        scope["extensions"]["http.response.trailers"]["meddled"] = True
    except TypeError:
        seen["refused"] = True
    await respond_json(send, seen)


ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/meddle": meddle,
    "/": hello,
    "/echo": echo,
    "/stream": stream,
    "/slow": slow,
    "/work": work,
    "/read-slowly": read_slowly,
    "/big": big,
    "/error": error,
    "/error-after-start": error_after_start,
    "/error-client-text": error_client_text,
    "/bad-header": bad_header,
    "/no-response": no_response,
    "/wait-disconnect": wait_disconnect,
    "/events": events,
    "/head-test": head_test,
    "/reject": reject,
}
