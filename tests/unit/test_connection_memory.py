"""What a closed HTTP/1.1 connection leaves behind: nothing that waits for the cyclic garbage collector.

llhttp's parser holds its callbacks, bound methods of the object that holds the parser: a reference cycle.
A worker that served thousands of connections between two full collections kept all their parsers (about
92 MB after 10,000 connections had come and gone); the connection now lets them go when it ends. These
tests run with the collector off, so only reference counting frees anything.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httptools
import pytest

from tests.unit.test_timeouts import Transport  # the stand-in transport
from tricorn.config import Config
from tricorn.io.h1 import H1Protocol
from tricorn.io.server import ServerState
from tricorn.proto.h1 import H1Connection

HELLO = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parsers_alive() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is httptools.HttpRequestParser)


def test_a_released_core_frees_its_parsers_by_reference_counting(no_collector: None) -> None:
    before = parsers_alive()
    conn = H1Connection()
    assert conn.receive_simple(HELLO) is not None
    assert parsers_alive() == before + 2  # the fast lane's two; the general path's is made when needed
    conn.receive_data(POST)
    assert parsers_alive() == before + 3  # now the general path's llhttp too
    conn.release()
    assert parsers_alive() == before
    # The response side still works after the release (a reply to a WebSocket handshake uses it).
    del conn
    assert parsers_alive() == before


def test_a_request_that_closes_the_connection_on_the_fast_lane_lets_its_parser_go(no_collector: None) -> None:
    before = parsers_alive()
    conn = H1Connection()
    request = conn.receive_simple(CLOSE)
    assert request is not None and not request.keep_alive
    assert parsers_alive() == before  # nothing more is read: no parser is kept, none is made
    assert conn.receive_data(HELLO) == []
    assert parsers_alive() == before


async def serve_connections(count: int, requests: list[bytes]) -> None:
    state = ServerState(Config(access_log=False), hello, asyncio.get_running_loop(), "httptools")  # type: ignore[arg-type]  # a plain ASGI callable
    for i in range(count):
        proto = H1Protocol(state)
        transport = Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]  # a stand-in transport
        request = requests[i % len(requests)]
        if request:
            proto.data_received(request)
        for _ in range(3):
            await asyncio.sleep(0)
        proto.connection_lost(None)
        for _ in range(3):
            await asyncio.sleep(0)


@pytest.mark.parametrize("requests", [[HELLO], [CLOSE], [POST], [b""], [HELLO, CLOSE, POST, b""]])
def test_closed_connections_leave_no_parsers_behind(no_collector: None, requests: list[bytes]) -> None:
    before = parsers_alive()
    asyncio.run(serve_connections(200, requests))
    # The server's fast lane (its two parsers), shared by its connections; none of theirs.
    assert parsers_alive() == before + 2


def test_memory_after_connections_have_come_and_gone_is_bounded(no_collector: None) -> None:
    """2,000 connections, then the memory still held: a few kilobytes of caches, not a kilobyte and more
    per connection (before the release: about 2.6 MB here)."""
    asyncio.run(serve_connections(50, [HELLO, CLOSE, POST]))  # caches, interned strings, the loop's first use
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        asyncio.run(serve_connections(2000, [HELLO, CLOSE, POST]))
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert held < 500_000, f"{held:,} bytes still held after 2,000 connections"


class Idle:
    deadline = float("inf")  # a connection no tick times out


def test_the_allocator_gives_back_memory_once_many_connections_have_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tricorn.io import server

    trims: list[int] = []
    monkeypatch.setattr(server, "trim_memory", lambda: trims.append(len(state.connections)))

    async def ticks() -> None:
        state.connections.update(Idle() for _ in range(3000))  # type: ignore[misc]  # stand-ins
        state._on_tick()
        for _ in range(1200):  # 1,800 left: not half of the peak yet
            state.connections.pop()
        state._on_tick()
        assert trims == []
        for _ in range(400):  # 1,400 left, 1,600 closed
            state.connections.pop()
        state._on_tick()
        assert trims == [1400]
        for _ in range(600):  # 800 left, but only 600 closed since the last trim
            state.connections.pop()
        state._on_tick()
        assert trims == [1400]
        if state._tick_handle is not None:
            state._tick_handle.cancel()

    loop = asyncio.new_event_loop()
    try:
        state = ServerState(Config(access_log=False), hello, loop, "httptools")  # type: ignore[arg-type]  # a plain ASGI callable
        loop.run_until_complete(ticks())
    finally:
        loop.close()
