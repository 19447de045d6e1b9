"""A minimal ASGI server on the same parts as tricorn (uvloop, httptools): the ceiling for HTTP/1.1 ASGI.

    python bench/minimal_asgi.py MODULE:APP PORT

Not a server to deploy: it validates nothing (no header checks, no limits, no timeouts), reads no request
body, gives every request an empty ``http.request``, answers with keep-alive, and assumes the app
answers without suspending (a plain response: start, then one body). It exists to measure how fast any
Python ASGI server built on these parts can be, so that tricorn's ASGI hello is read against it as well
as against its peers and ``bench/canned.py`` (which calls no app at all): ``bench/run.py --section asgi
--only hello --servers tricorn,uvicorn,minimal-asgi,canned``.

Its shape is the cheapest found, tricorn's own: the apps of the requests parsed in one loop turn are
stepped by one callback after the reads, each coroutine stepped directly (no task), one write per
response, the date header formatted once a second.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

EMPTY = {"type": "http.request", "body": b"", "more_body": False}
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_date = [0, b""]


def date_line() -> bytes:
    now = int(time.time())
    if now != _date[0]:
        _date[0] = now
        _date[1] = b"server: minimal\r\ndate: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]


class Batch:
    """The requests parsed in this loop turn, stepped together by one callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[tuple[Protocol, Any]] = []

    def add(self, protocol: Protocol, coro: Any) -> None:
        if not self.items:
            self.loop.call_soon(self.run)
        self.items.append((protocol, coro))

    def run(self) -> None:
        items, self.items = self.items, []
        for protocol, coro in items:
            try:
                coro.send(None)
            except StopIteration:
                pass
            else:
                raise RuntimeError("minimal_asgi serves only apps that answer without waiting")
            protocol.transport.write(b"".join(protocol.out))


class Protocol(asyncio.Protocol):
    def __init__(self, app: Any, batch: Batch, server: tuple[str, int]) -> None:
        self.app = app
        self.batch = batch
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.client = transport.get_extra_info("peername")[:2]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        path, _, query = self.url.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": self.parser.get_method().decode(),
            "root_path": "",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "headers": self.headers,
        }
        self.out = []
        self.batch.add(self, self.app(scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        return dict(EMPTY)

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out = [STATUS_LINES[message["status"]], date_line()]
            out.extend(b"%s: %s\r\n" % pair for pair in message.get("headers", ()))
            out.append(b"\r\n")
            self.out.append(b"".join(out))
        else:
            self.out.append(message.get("body", b""))


async def serve(app: Any, port: int) -> None:
    loop = asyncio.get_running_loop()
    batch = Batch(loop)
    server = ("127.0.0.1", port)
    await loop.create_server(lambda: Protocol(app, batch, server), "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


if __name__ == "__main__":
    from bench.minimal_wsgi import main

    main(serve)
