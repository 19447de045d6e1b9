"""The ASGI and WSGI adapters in process, over a fake Stream (interfaces/stream.py) that frames what they
send with the real HTTP/1.1 core: the assertions are on the bytes a client would read, not on calls.

Both adapters are protocol-agnostic: these tests hold them to the Stream contract alone, with no socket,
no connection protocol and no server process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from tricorn.errors import ClientDisconnected
from tricorn.interfaces.asgi import HTTPCycle, build_scope, http_cycle
from tricorn.interfaces.stream import ABORTED, RESPONSE_DONE, Headers
from tricorn.interfaces.wsgi import WSGIServer
from tricorn.proto.forwarded import AllowList
from tricorn.proto.h1 import CONTINUE_RESPONSE, H1Connection, Request


class FakeStream:
    """A Stream whose output is the HTTP/1.1 bytes of what the cycle sends (the real core frames them)."""

    scheme = "http"
    client = ("10.0.0.1", 5555)
    server = ("127.0.0.1", 8000)
    proxy_trust = None  # not a trusted proxy
    tls = None

    def __init__(self, request: Request) -> None:
        self.conn = H1Connection()
        self.conn.start_request(request)
        self.out = bytearray()
        self.paused = False
        self.reading_paused = False
        self.completed: list[Any] = []
        self.errors: list[tuple[str, BaseException | None]] = []
        self.wsgi_environ: dict[str, Any] | None = None
        self.scope_base: dict[str, Any] | None = None
        self.done = threading.Event()
        self.drained: asyncio.Future[None] | None = None
        self.waits: list[int] = []  # the cycle's waits on the client in progress (wait_started, not ended)

    @property
    def write_paused(self) -> bool:
        return self.paused

    def response_start(self, status: int, headers: Headers) -> None:
        self.out += self.conn.response_head(status, headers)

    def response_body(self, data: bytes, more: bool) -> None:
        self.out += self.conn.response_body(data, more)

    def response_whole(self, status: int, headers: Headers, body: bytes) -> None:
        self.response_start(status, headers)
        self.response_body(body, False)

    def response_continue(self) -> None:
        self.out += CONTINUE_RESPONSE

    def response_informational(self, status: int, headers: Headers) -> None:
        self.out += self.conn.response_head(status, headers)

    def response_trailers(self, headers: Headers) -> None:
        self.out += self.conn.response_trailers(headers)

    async def drain(self) -> None:
        if self.paused:
            self.drained = asyncio.get_running_loop().create_future()
            await self.drained

    def wait_started(self, kind: int) -> None:
        self.waits.append(kind)

    def wait_ended(self, kind: int) -> None:
        self.waits.remove(kind)

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False

    def sendfile_start(self, status: int, headers: Headers) -> None:
        self.response_start(status, headers)

    def sendfile_done(self, sent: int) -> None:  # pragma: no cover - sendfile_start never offers it
        raise AssertionError

    def cycle_complete(self, cycle: Any) -> None:
        self.completed.append(cycle.state)
        self.done.set()

    def app_error(self, cycle: Any, message: str, exc: BaseException | None) -> None:
        self.errors.append((message, exc))
        if cycle.state.name == "RESPONSE_START":
            cycle.state = RESPONSE_DONE
            self.out += b"<500>"
        else:
            cycle.state = ABORTED
        self.completed.append(cycle.state)
        self.done.set()


def request(
    method: bytes = b"GET",
    target: bytes = b"/p?q=1",
    headers: Iterable[tuple[bytes, bytes]] = (),
    expect: bool = False,
) -> Request:
    fields = [(b"host", b"example.com"), *headers]
    path, _, query = target.partition(b"?")
    return Request(method, target, "1.1", fields, path, query, None, True, expect, None)


def run_asgi(app: Any, req: Request, body: list[bytes] | None = None) -> tuple[FakeStream, HTTPCycle]:
    stream = FakeStream(req)
    scope = build_scope(req, stream, "", "", None)
    cycle = http_cycle(stream, req, scope)

    async def main() -> None:
        task = asyncio.ensure_future(cycle.run(app))
        await asyncio.sleep(0)
        for part in body or []:
            cycle.feed_body(part)
            await asyncio.sleep(0)
        cycle.end_body()
        await task

    asyncio.run(main())
    return stream, cycle


def test_asgi_hello_is_one_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["scheme"] == "http" and scope["client"] == ("10.0.0.1", 5555)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    stream, cycle = run_asgi(app, request())
    head, body = bytes(stream.out).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5" in head
    assert body == b"hello"
    assert stream.completed == [RESPONSE_DONE] and cycle.status == 200 and cycle.response_bytes == 5


def test_each_scope_on_a_connection_is_its_own() -> None:
    # What a connection's scopes share is kept once (its scope_base) and copied: an app that changes its
    # scope, or a trusted proxy's values, leave the next request's scope as it was.
    stream = FakeStream(request())
    first = build_scope(request(target=b"/a?x=1"), stream, "", "", {"k": 1})
    assert first["path"] == "/a" and first["query_string"] == b"x=1" and first["state"] == {"k": 1}
    first["client"] = ("6.6.6.6", 1)
    first["root_path"] = "/x"
    first["extensions"]["mine"] = {}
    first["state"]["k"] = 2
    first["added"] = True
    second = build_scope(request(target=b"/b"), stream, "", "", {"k": 1})
    assert second is not first and second["extensions"] is not first["extensions"]
    assert second["client"] == ("10.0.0.1", 5555) and second["root_path"] == "" and "added" not in second
    assert "mine" not in second["extensions"] and second["state"] == {"k": 1}
    # The extensions' info dicts the server has nothing to put in are shared, and so read-only.
    info = second["extensions"]["http.response.trailers"]
    assert info == {} and isinstance(info, dict)
    with pytest.raises(TypeError, match="read-only"):
        info["x"] = 1
    with pytest.raises(TypeError, match="read-only"):
        info.update(x=1)
    assert build_scope(request(), stream, "", "", None)["extensions"]["http.response.trailers"] == {}
    assert (second["path"], second["raw_path"], second["query_string"]) == ("/b", b"/b", b"")
    # Another root path on the same connection (two mounts), then the first again.
    mounted = build_scope(request(target=b"/m/c"), stream, "", "/m", None)
    assert mounted["root_path"] == "/m" and build_scope(request(), stream, "", "", None)["root_path"] == ""
    stream.proxy_trust = AllowList(["10.0.0.0/8"])  # type: ignore[misc]
    proxied = build_scope(request(headers=[(b"x-forwarded-for", b"1.2.3.4")]), stream, "", "", None)
    assert proxied["client"] == ("1.2.3.4", 0)
    assert build_scope(request(), stream, "", "", None)["client"] == ("10.0.0.1", 5555)


def test_asgi_request_body_in_parts_and_streamed_response() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        parts = []
        while True:
            message = await receive()
            parts.append(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in parts:
            await send({"type": "http.response.body", "body": part.upper(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    stream, _ = run_asgi(app, request(b"POST"), [b"ab", b"cd"])
    body = bytes(stream.out).split(b"\r\n\r\n", 1)[1]
    assert body.endswith(b"0\r\n\r\n")
    assert b"".join(body.split(b"\r\n")[1::2]) == b"ABCD"


def test_asgi_expect_continue_sent_only_when_the_app_reads() -> None:
    async def reads(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def refuses(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    read_stream = FakeStream(request(b"POST", expect=True))
    req = request(b"POST", expect=True)
    scope = build_scope(req, read_stream, "", "", None)
    cycle = http_cycle(read_stream, req, scope)

    async def main() -> None:
        task = asyncio.ensure_future(cycle.run(reads))
        await asyncio.sleep(0)
        assert bytes(read_stream.out) == CONTINUE_RESPONSE
        cycle.end_body()
        await task

    asyncio.run(main())
    assert bytes(read_stream.out).startswith(CONTINUE_RESPONSE + b"HTTP/1.1 204")
    refused, _ = run_asgi(refuses, request(b"POST", expect=True))
    assert bytes(refused.out).startswith(b"HTTP/1.1 413")


def test_asgi_early_hint_and_trailers() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</a.js>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    stream, _ = run_asgi(app, request())
    out = bytes(stream.out)
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </a.js>; rel=preload\r\n")
    assert out.endswith(b"1\r\nx\r\n0\r\nx-sum: 1\r\n\r\n")
    assert stream.completed == [RESPONSE_DONE]


def test_asgi_app_error_before_and_after_the_start() -> None:
    async def before(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def after(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom")

    stream, _ = run_asgi(before, request())
    assert bytes(stream.out) == b"<500>" and "boom" in stream.errors[0][0]
    stream, _ = run_asgi(after, request())
    assert stream.completed == [ABORTED] and bytes(stream.out).endswith(b"4\r\npart\r\n")


def test_asgi_send_after_disconnect_raises_and_receive_says_disconnect() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        seen.append(await receive())
        with pytest.raises(ClientDisconnected):
            await send({"type": "http.response.start", "status": 200, "headers": []})

    req = request()
    stream = FakeStream(req)
    cycle = http_cycle(stream, req, build_scope(req, stream, "", "", None))

    async def main() -> None:
        task = asyncio.ensure_future(cycle.run(app))
        cycle.end_body()
        await asyncio.sleep(0)
        cycle.disconnect()
        await task

    asyncio.run(main())
    assert seen == [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]
    assert stream.out == b""


def test_asgi_send_waits_while_the_stream_is_paused() -> None:
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        order.append("first part sent")
        await send({"type": "http.response.body", "body": b"b"})

    req = request()
    stream = FakeStream(req)
    stream.paused = True
    cycle = http_cycle(stream, req, build_scope(req, stream, "", "", None))

    async def main() -> None:
        task = asyncio.ensure_future(cycle.run(app))
        await asyncio.sleep(0.01)
        assert order == [] and stream.drained is not None  # held in drain()
        stream.paused = False
        stream.drained.set_result(None)
        await task

    asyncio.run(main())
    assert order == ["first part sent"] and stream.completed == [RESPONSE_DONE]


def test_wsgi_cycle_over_the_fake_stream() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["REMOTE_ADDR"].encode(), b" ", environ["QUERY_STRING"].encode(), b" ", body]

    async def main() -> FakeStream:
        loop = asyncio.get_running_loop()
        server = WSGIServer(app, loop, 2, "")
        req = request(b"POST", headers=[(b"content-length", b"3")])
        stream = FakeStream(req)
        cycle = server.new_cycle(stream, req)
        server.start(cycle)
        cycle.feed_body(b"abc")
        cycle.end_body()
        while not stream.done.is_set():
            await asyncio.sleep(0.005)
        await server.close(1.0)
        return stream

    stream = asyncio.run(main())
    head, body = bytes(stream.out).split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"10.0.0.1 q=1 abc"
    assert stream.completed == [RESPONSE_DONE]
