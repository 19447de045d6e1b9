"""What a closed HTTP/1.1 connection leaves behind: nothing that waits for the cyclic garbage collector.

llhttp's parser holds its callbacks, bound methods of the object that holds the parser: a reference cycle.
A worker that served thousands of connections between two full collections kept all their parsers (about
92 MB after 10,000 connections had come and gone); the connection now lets them go when it ends. These
tests run with the collector off, so only reference counting frees anything.

Then what a worker gives back once a burst of connections is over (``trim_memory``): the arenas of CPython's
allocator that free lists and the type cache kept, the table of the connection set, glibc's free pages.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httptools
import pytest

from tests.unit.test_timeouts import Transport  # the stand-in transport
from tricorn.config import Config
from tricorn.io import server
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
    trims: list[int] = []
    monkeypatch.setattr(server, "trim_memory", lambda: trims.append(len(state.connections)))

    async def ticks() -> None:
        state.connections.update(Idle() for _ in range(3000))  # type: ignore[misc]  # stand-ins
        state._on_tick()
        peak_table = sys.getsizeof(state.connections)
        for _ in range(1200):  # 1,800 left: not half of the peak yet
            state.connections.pop()
        state._on_tick()
        assert trims == []
        for _ in range(400):  # 1,400 left, 1,600 closed
            state.connections.pop()
        state._on_tick()
        assert trims == [1400]
        # The set is made again for what is left: a set's table never shrinks as it empties.
        assert len(state.connections) == 1400
        assert sys.getsizeof(state.connections) < peak_table
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


def test_the_trim_looks_up_malloc_trim_when_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not at the first trim, right after a burst: ctypes' modules would land in the burst's arenas."""
    monkeypatch.setattr(server, "_malloc_trim", None)

    async def start() -> None:
        state = ServerState(Config(access_log=False), hello, asyncio.get_running_loop(), "httptools")  # type: ignore[arg-type]  # a plain ASGI callable
        await state.start([])
        assert server._malloc_trim is not None
        await state.shutdown(1.0)

    asyncio.run(start())


def malloc_stats() -> str:
    """``sys._debugmallocstats()``: what pymalloc holds (written to descriptor 2)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        return out.read().decode()


def arenas() -> int:
    """pymalloc's arenas (1 MiB each) allocated now."""
    for line in malloc_stats().splitlines():
        if line.startswith("# arenas allocated current"):
            return int(line.split("=")[1].replace(",", ""))
    raise AssertionError("no arena count in sys._debugmallocstats()")


def blocks_in_use(size: int) -> int:
    """pymalloc's blocks in use of ``size`` bytes (16, 32, 48...), those in free lists among them."""
    for line in malloc_stats().splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0].isdigit() and int(fields[1]) == size:
            return int(fields[3])
    return 0


def test_the_trim_gives_back_the_arenas_that_free_lists_keep() -> None:
    """A burst of small objects, freed so that the free lists of tuples, dicts, lists and floats keep a few
    blocks spread over the burst's arenas: each keeps its arena (50 MB here) until the trim."""
    before = arenas()
    burst: list[object] = [((i, -i), {"n": i}, [i], float(i)) for i in range(100_000)]
    peak = arenas()
    assert peak - before >= 20
    for i in range(0, len(burst), 50):
        burst[i] = None  # these first: into the free lists
    del burst
    assert arenas() - before >= (peak - before) // 2  # kept by the blocks of the free lists
    server.trim_memory()
    # (a few of the process's own objects made meanwhile may sit in the burst's arenas: what the other
    # tests of this worker left in the free lists, a collection's own)
    assert arenas() - before <= 5


class Named:
    pass


def test_the_trim_lets_go_of_names_the_type_cache_holds() -> None:
    """A name made at run time for a lookup (as ``email.utils.formatdate`` makes ``dst``) stays in the
    type attribute cache, and its block with it, until the trim."""
    name = "".join(("ds", "t"))
    getattr(Named, name, None)
    held = sys.getrefcount(name)
    server.trim_memory()
    assert sys.getrefcount(name) < held


def test_the_server_fills_the_free_lists_of_the_loop_before_its_first_connection() -> None:
    """The free lists of asyncio's future iterators (48-byte blocks) and uvloop's handles (144) hold blocks
    made at the start, for the connections to take from them rather than from a burst's arenas."""
    import uvloop

    loop = uvloop.new_event_loop()
    try:
        # Take what the free lists hold already (blocks of earlier loops), and keep it.
        taken = [loop.create_future().__await__() for _ in range(300)]
        taken += [loop.call_soon(_nothing) for _ in range(300)]
        before = blocks_in_use(48), blocks_in_use(144)
        server.fill_free_lists(loop)
        loop.run_until_complete(asyncio.sleep(0))  # the handles run, then go to their free list
        after = blocks_in_use(48), blocks_in_use(144)
        assert after[0] - before[0] >= 250  # 255 future iterators
        assert after[1] - before[1] >= 240  # 250 handles
        del taken
    finally:
        loop.close()


def _nothing() -> None:
    return None
