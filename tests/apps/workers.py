"""An ASGI app for the process-manager tests: it tells which worker (pid) answered, and can block its
event loop, sleep, or start slowly.

Routes: ``/`` (``pid N version V``), ``/slow?delay=S`` (sleeps asynchronously; prints
``workers app: slow started in pid N``), ``/block?seconds=S`` (blocks the whole event loop with
time.sleep, as a buggy app would), ``/stuck-pool`` (fills the default thread pool with calls that never
return, and waits on one more). Importing the module prints ``workers app: imported in pid N``;
lifespan startup prints ``workers app: started in pid N``.

``wsgi_app`` is its WSGI twin for the WSGI thread pool: ``/`` (``pid N``) and ``/wait-forever``, which
prints ``workers wsgi app: waiting forever in pid N`` and never returns.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# Changed by the --reload test (it rewrites a copy of this file): the version each worker imported.
VERSION = "1"

print(f"workers app: imported in pid {os.getpid()}", file=sys.stderr, flush=True)


async def respond(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def block_event_loop(seconds: float) -> None:
    time.sleep(seconds)  # the test looks for this function in the stack dump


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                print(f"workers app: started in pid {os.getpid()}", file=sys.stderr, flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["path"] == "/slow":
        print(f"workers app: slow started in pid {os.getpid()}", file=sys.stderr, flush=True)
        await asyncio.sleep(float(query.get("delay", "1")))
        await respond(send, f"slow done in pid {os.getpid()}".encode())
    elif scope["path"] == "/stuck-pool":
        loop = asyncio.get_running_loop()
        stuck = [loop.run_in_executor(None, time.sleep, 600) for _ in range(64)]  # more than its threads
        await asyncio.gather(*stuck)
        await respond(send, b"never")
    elif scope["path"] == "/block":
        block_event_loop(float(query.get("seconds", "60")))
        await respond(send, b"unblocked")
    else:
        await respond(send, f"pid {os.getpid()} version {VERSION}".encode())


def wait_forever() -> None:
    threading.Event().wait()  # the test looks for this function in the stacks logged


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ["PATH_INFO"] == "/wait-forever":
        print(f"workers wsgi app: waiting forever in pid {os.getpid()}", file=sys.stderr, flush=True)
        wait_forever()
    body = f"pid {os.getpid()}".encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
