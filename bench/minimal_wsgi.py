"""A minimal WSGI server on the same parts as tricorn (uvloop, httptools, one app thread): the ceiling.

    python bench/minimal_wsgi.py MODULE:APP PORT

Not a server to deploy: it validates nothing (no header checks, no limits, no timeouts), ignores request
bodies, answers every request with keep-alive and assumes the app returns a list of bytes. It exists to
measure how fast any Python WSGI server built on these parts can be, so that tricorn's WSGI hello is read
against it as well as against its peers: ``bench/run.py --section wsgi --only hello --servers
tricorn,granian,minimal-wsgi``.

Its shape is the cheapest found: requests parsed during one loop turn go to the app thread as one batch,
and the thread hands the responses back in one batch (one wakeup each way per batch).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import httptools
import uvloop

BASE = {
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.errors": sys.stderr,
    "SCRIPT_NAME": "",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_NAME": "127.0.0.1",
}
STATUS_LINES: dict[str, bytes] = {}


def respond(app: Any, environ: dict[str, Any]) -> bytes:
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = (status, headers)

    body = app(environ, start_response)
    status, headers = started
    line = STATUS_LINES.get(status)
    if line is None:
        line = STATUS_LINES[status] = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"
    out = [line]
    out.extend(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)
    out.append(b"\r\n")
    out.extend(body)
    return b"".join(out)


class AppThread:
    """One thread running batches of (environ, transport); responses come back in batches."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.pending: list[tuple[dict[str, Any], asyncio.Transport]] = []
        self.batches: deque[list[tuple[dict[str, Any], asyncio.Transport]]] = deque()
        self.wake = threading.Semaphore(0)
        self.done: deque[tuple[asyncio.Transport, bytes]] = deque()
        self.drain_scheduled = False
        threading.Thread(target=self.run, daemon=True).start()

    def add(self, environ: dict[str, Any], transport: asyncio.Transport) -> None:  # loop thread
        self.pending.append((environ, transport))
        if len(self.pending) == 1:
            self.loop.call_soon(self.submit)

    def submit(self) -> None:  # loop thread, once per turn
        batch, self.pending = self.pending, []
        self.batches.append(batch)
        self.wake.release()

    def drain(self) -> None:  # loop thread
        self.drain_scheduled = False
        done = self.done
        while done:
            transport, data = done.popleft()
            transport.write(data)

    def run(self) -> None:  # the app thread
        while True:
            self.wake.acquire()
            for environ, transport in self.batches.popleft():
                self.done.append((transport, respond(self.app, environ)))
            if not self.drain_scheduled:
                self.drain_scheduled = True
                self.loop.call_soon_threadsafe(self.drain)


class Protocol(asyncio.Protocol):
    def __init__(self, worker: AppThread, port: str) -> None:
        self.worker = worker
        self.port = port
        self.parser = httptools.HttpRequestParser(self)
        self.environ: dict[str, Any] = {}
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.environ = BASE.copy()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.environ["HTTP_" + name.decode("latin-1").upper().replace("-", "_")] = value.decode("latin-1")

    def on_message_complete(self) -> None:
        environ = self.environ
        path, _, query = self.url.partition(b"?")
        environ["REQUEST_METHOD"] = self.parser.get_method().decode("latin-1")
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PORT"] = self.port
        self.worker.add(environ, self.transport)


async def serve(app: Any, port: int) -> None:
    loop = asyncio.get_running_loop()
    worker = AppThread(app, loop)
    await loop.create_server(lambda: Protocol(worker, str(port)), "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


def main(serve: Callable[[Any, int], Coroutine[Any, Any, None]] = serve) -> None:
    """``MODULE:APP PORT`` from the command line, served by ``serve`` (bench/minimal_asgi.py's too)."""
    module, _, attr = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(module), attr)
    uvloop.run(serve(app, int(sys.argv[2])))


if __name__ == "__main__":
    main()
