"""Read and send deadlines in process: which waits the cycles bracket (against a recording stream), and
what HTTP/1.1 does when one runs out (H1Protocol over a stand-in transport, its timeout() called with the
deadline as ``now``: no clock is waited on)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from tricorn.config import Config
from tricorn.errors import ClientDisconnected, ClientTimeout
from tricorn.interfaces.asgi import http_cycle
from tricorn.interfaces.stream import WAIT_READ, WAIT_SEND
from tricorn.interfaces.wsgi import WSGIServer
from tricorn.io.h1 import INF, H1Protocol
from tricorn.io.server import ServerState
from tricorn.proto.h1 import H1Connection, Request

Message = dict[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def parse_request(raw: bytes) -> Request:
    request = H1Connection(backend="httptools").receive_data(raw)[0]
    assert isinstance(request, Request)
    return request


POST = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n"


class RecordingStream:
    """A Stream that records the calls the deadlines are about; the rest do nothing."""

    wsgi_environ = None
    scope_base = None
    proxy_trust = None
    scheme = "http"
    client = ("127.0.0.1", 5000)
    server = ("127.0.0.1", 8000)

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None

    def wait_started(self, kind: int) -> None:
        self.calls.append(("started", kind))

    def wait_ended(self, kind: int) -> None:
        self.calls.append(("ended", kind))

    async def drain(self) -> None:
        self.drained = asyncio.get_running_loop().create_future()
        await self.drained

    def response_start(self, status: int, headers: Any) -> None: ...
    def response_body(self, data: bytes, more: bool) -> None: ...
    def response_whole(self, status: int, headers: Any, body: bytes) -> None: ...
    def response_continue(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def cycle_complete(self, cycle: Any) -> None: ...
    def app_error(self, cycle: Any, message: str, exc: BaseException | None) -> None: ...


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


# -- HTTPCycle: only waits on the client are bracketed


def test_receive_arms_the_read_deadline_only_while_it_waits_for_body_bytes() -> None:
    async def scenario() -> None:
        stream = RecordingStream()
        cycle = http_cycle(stream, parse_request(POST), {})  # type: ignore[arg-type]  # a stand-in Stream
        cycle.feed_body(b"abc")
        assert (await cycle.receive())["body"] == b"abc"  # there already: no wait
        assert stream.calls == []
        task = asyncio.ensure_future(cycle.receive())
        await settle()
        assert stream.calls == [("started", WAIT_READ)]
        cycle.feed_body(b"def")
        assert (await task)["body"] == b"def"
        assert stream.calls == [("started", WAIT_READ), ("ended", WAIT_READ)]

    run(scenario())


def test_waiting_for_the_disconnect_after_the_whole_body_has_no_deadline() -> None:
    # Starlette's StreamingResponse listens for http.disconnect while it streams: that wait may be long.
    async def scenario() -> None:
        stream = RecordingStream()
        cycle = http_cycle(stream, parse_request(POST), {})  # type: ignore[arg-type]  # a stand-in Stream
        cycle.feed_body(b"x" * 100)
        cycle.end_body()
        assert (await cycle.receive())["more_body"] is False
        task = asyncio.ensure_future(cycle.receive())
        await settle()
        cycle.disconnect()
        assert await task == {"type": "http.disconnect"}
        assert stream.calls == []

    run(scenario())


def test_send_arms_the_send_deadline_only_while_it_waits_to_drain() -> None:
    async def scenario() -> None:
        stream = RecordingStream()
        cycle = http_cycle(stream, parse_request(POST), {})  # type: ignore[arg-type]  # a stand-in Stream
        await cycle.send({"type": "http.response.start", "status": 200})
        await cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
        assert stream.calls == []
        stream.write_paused = True
        task = asyncio.ensure_future(
            cycle.send({"type": "http.response.body", "body": b"b", "more_body": True})
        )
        await settle()
        assert stream.calls == [("started", WAIT_SEND)]
        assert stream.drained is not None
        stream.drained.set_result(None)
        await task
        assert stream.calls == [("started", WAIT_SEND), ("ended", WAIT_SEND)]

    run(scenario())


def test_a_timed_out_asgi_cycle_reports_a_disconnect_and_send_raises_the_reason() -> None:
    async def scenario() -> None:
        stream = RecordingStream()
        cycle = http_cycle(stream, parse_request(POST), {})  # type: ignore[arg-type]  # a stand-in Stream
        task = asyncio.ensure_future(cycle.receive())
        await settle()
        cycle.disconnect(ClientTimeout.reading(60))
        assert await task == {"type": "http.disconnect"}
        assert stream.calls == [("started", WAIT_READ), ("ended", WAIT_READ)]
        with pytest.raises(ClientTimeout, match=r"\(--timeout-read 60s\)") as info:
            await cycle.send({"type": "http.response.start", "status": 200})
        assert isinstance(info.value, ClientDisconnected) and isinstance(info.value, OSError)

    run(scenario())


# -- WSGICycle: the loop brackets the worker's waits


def test_wsgi_read_deadline_runs_from_the_workers_wait_to_the_next_bytes() -> None:
    loop = asyncio.new_event_loop()
    try:
        stream = RecordingStream()
        cycle = WSGIServer(lambda e, s: [], loop, 1).new_cycle(stream, parse_request(POST))  # type: ignore[arg-type]  # stand-ins
        cycle._loop_wait_body()  # posted by a worker about to wait for body bytes
        assert stream.calls == [("started", WAIT_READ)]
        cycle.feed_body(b"abc")
        assert stream.calls == [("started", WAIT_READ), ("ended", WAIT_READ)]
        cycle._loop_wait_body()  # bytes are there that the worker has not taken yet: it will not wait
        assert stream.calls == [("started", WAIT_READ), ("ended", WAIT_READ)]
    finally:
        loop.close()


def test_a_timed_out_wsgi_cycle_raises_client_timeout_in_the_worker() -> None:
    loop = asyncio.new_event_loop()
    try:
        stream = RecordingStream()
        cycle = WSGIServer(lambda e, s: [], loop, 1).new_cycle(stream, parse_request(POST))  # type: ignore[arg-type]  # stand-ins
        cycle.cond = threading.Condition()
        cycle.disconnect(ClientTimeout.reading(1.5))
        with pytest.raises(ClientTimeout, match=r"request body not received in time \(--timeout-read 1.5s\)"):
            cycle.next_chunk()
        with pytest.raises(ClientTimeout):
            cycle.write(b"x")
    finally:
        loop.close()


# -- H1Protocol: one deadline, decided by phase


class Transport:
    def __init__(self) -> None:
        self.data = b""
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: list[bytes]) -> None:
        self.data += b"".join(parts)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def serving(app: App, **settings: Any) -> tuple[H1Protocol, Transport]:
    config = Config(access_log=False, **settings)
    state = ServerState(config, app, asyncio.get_running_loop(), "httptools")  # type: ignore[arg-type]  # a plain ASGI callable
    proto = H1Protocol(state)
    transport = Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]  # a stand-in transport
    return proto, transport


def test_h1_read_timeout_answers_408_closes_and_tells_the_app(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect":
                return

    async def scenario() -> None:
        proto, transport = await serving(app, timeout_read=5.0)
        loop = asyncio.get_running_loop()
        proto.data_received(POST + b"abc")
        await settle()
        assert seen == [{"type": "http.request", "body": b"abc", "more_body": True}]
        assert proto.deadline == pytest.approx(loop.time() + 5.0, abs=1.0)
        proto.timeout(proto.deadline - 0.001)  # not yet due (the tick saw an older deadline)
        assert not transport.closed
        proto.timeout(proto.deadline)
        assert transport.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b"connection: close\r\n" in transport.data.lower()
        assert transport.closed
        await settle()
        assert seen[-1] == {"type": "http.disconnect"}

    with caplog.at_level(logging.INFO, logger="tricorn.error"):
        run(scenario())
    assert "127.0.0.1:5000 408 request body not received in time (--timeout-read 5s)" in caplog.messages


def test_h1_read_timeout_after_the_response_began_cuts_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    async def scenario() -> None:
        proto, transport = await serving(app, timeout_read=2.0)
        proto.data_received(POST + b"abc")
        await settle()
        assert transport.data.startswith(b"HTTP/1.1 200 OK\r\n")
        proto.timeout(proto.deadline)
        assert transport.aborted
        assert b" 408 " not in transport.data

    with caplog.at_level(logging.INFO, logger="tricorn.error"):
        run(scenario())
    assert any(m.endswith("(--timeout-read 2s): connection closed") for m in caplog.messages)


def test_h1_send_timeout_drops_the_connection_and_send_raises(caplog: pytest.LogCaptureFixture) -> None:
    raised: list[BaseException] = []

    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        except OSError as exc:
            raised.append(exc)
            raise

    async def scenario() -> None:
        proto, transport = await serving(app, timeout_send=3.0)
        proto.pause_writing()  # the transport is full: the first body part makes the app wait to drain
        proto.data_received(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n")
        await settle()
        assert proto.deadline < INF
        proto.timeout(proto.deadline)
        assert transport.aborted  # dropped, not flushed to a client that does not read
        proto.connection_lost(None)
        await settle()
        assert len(raised) == 1 and isinstance(raised[0], ClientTimeout)

    with caplog.at_level(logging.INFO, logger="tricorn.error"):
        run(scenario())
    message = "127.0.0.1:5000 response not taken by the client in time (--timeout-send 3s): connection closed"
    assert message in caplog.messages


def test_h1_an_app_that_never_waits_arms_nothing() -> None:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario() -> None:
        proto, transport = await serving(app, timeout_keep_alive=7.0)
        loop = asyncio.get_running_loop()
        proto.data_received(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        await settle()
        assert transport.data.endswith(b"\r\n\r\nok")
        # Back to IDLE with the keep-alive deadline; no read or send deadline was ever set.
        assert proto.deadline == pytest.approx(loop.time() + 7.0, abs=1.0)
        assert (proto.read_deadline, proto.send_deadline) == (INF, INF)

    run(scenario())
