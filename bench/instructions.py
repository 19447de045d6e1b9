#!/usr/bin/env python3
"""Instructions per request (or message) of tricorn's hot paths, counted with callgrind: repeatable where
wall-clock runs on a shared machine are not.

    .venv/bin/python bench/instructions.py [SCENARIO ...] [--count N] [--baseline REV]

Each scenario drives tricorn in process, over a stand-in transport (no sockets, no kernel), with the
bytes a client would send, and checks the answers; it runs under ``valgrind --tool=callgrind`` twice,
with N and 2N iterations, and the difference divided by N is one iteration's instructions (start-up,
imports and warm-up cancel out). ``--baseline REV`` counts tricorn at git revision REV too (a detached
worktree, removed at exit), in the same way, for a before/after ratio.

Scenarios:
  hello      ASGI hello on a keep-alive connection (``bench.apps:hello``), one request per read
  targets    the same with a new target every request (``/?n=1``, ``/?n=2``, ...): the fast lane's
             remembered request lines never match (the bytes.replace making each is counted too)
  fields     the same with a new ``X-Request-Id`` field every request: its remembered field blocks
             never match
  minimal-asgi
             the hello requests served by ``bench/minimal_asgi.py`` (no validation: the ceiling of a
             Python ASGI server on uvloop and httptools), driven the same way; not tricorn, so
             ``--baseline`` counts the same code twice
  hello8, minimal-asgi8
             hello and minimal-asgi on 8 keep-alive connections whose requests arrive in one loop turn
             (as under wrk's 64 connections): what a loop turn costs is shared; counted per request
  close      the same on a new connection per request: connection_made, the request with
             ``Connection: close``, the close, connection_lost
  accept     the same over loopback through tricorn's own listener (io/accept.py): accept(2), the
             loop's transport, the request and the close; the client is this process too, with
             plain non-blocking sockets (its share is the same before and after a change)
  ws1k       WebSocket echo (``bench.apps:ws_echo``) of a 1 KiB binary message, one frame per read
  ws64k      the same with 64 KiB messages (on loopback, uvloop too reads each frame whole)
  cgi        a CGI script per request (``--cgi /cgi-bin=bench/cgi/cgi-bin``, ``hello.sh``) on a keep-alive
             connection: the server's side only (the script runs natively, outside callgrind), and of
             that the event loop's thread only (what a file thread does for it is not counted: the
             loop's share is what other connections wait behind)
  wsgi       WSGI hello (``bench.apps:wsgi_hello``) on a keep-alive connection through the real thread
             pool and mailbox, one request at a time: each request wakes a pool thread and the loop
  wsgi8      the same on 8 keep-alive connections whose requests arrive in one loop turn (as under wrk's
             64 connections): the pool and the loop wake once per batch; counted per request
  h2         ASGI hello over HTTP/2 (h2c, prior knowledge) on one connection: the client's preface and
             SETTINGS once, then each iteration a HEADERS frame (END_STREAM) opening a new stream,
             answered with HEADERS and DATA. The client's frames are made by the h2 library once (the
             repeat of a request's HPACK block is the same bytes, as h2load sends it) and only their
             stream id is set per request; the answers' frames are split with ``struct`` and their
             header block decoded by hpack whenever it differs from the last (the date changes it
             once a second): a small share, the same before and after a change
  h2x8       the same with eight requests (eight new streams) arriving in one read, as under h2load -m:
             counted per request

The WSGI scenarios run the app on the pool's threads; callgrind runs one thread at a time, which changes
nothing in what is counted.

Needs valgrind (apt-get install valgrind). Counts are of user-space instructions only: the kernel's TCP
work, the same for every server, is not in them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "hello",
    "targets",
    "fields",
    "minimal-asgi",
    "hello8",
    "minimal-asgi8",
    "close",
    "accept",
    "ws1k",
    "ws64k",
    "wsgi",
    "wsgi8",
    "cgi",
    "h2",
    "h2x8",
)

HELLO = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n"
CGI = b"GET /cgi-bin/hello.sh HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Transport:
    """What the shells use of a transport; keeps what was written (and lets a test look at it)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.protocol: Any = None
        self.written: Any = None  # called after each write (the WSGI scenarios wait for their answers)

    def write(self, data: bytes) -> None:
        self.out.append(data)
        if self.written is not None:
            self.written()

    def writelines(self, parts: Any) -> None:
        self.out.extend(parts)  # kept as they are: a copy here would be counted as the server's

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def take(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data


async def settle() -> None:
    """A few loop turns: the shell starts apps and flushes in a callback of the turn after a read."""
    for _ in range(3):
        await asyncio.sleep(0)


def state_for(app_name: str, interface: str = "asgi", **settings: Any) -> Any:
    import bench.apps
    from tricorn.config import Config
    from tricorn.io.server import ServerState

    app = getattr(bench.apps, app_name)
    # No keepalive pings: under callgrind a run outlasts their interval, and they are not the hot path.
    config = Config(access_log=False, ws_ping_interval=None, **settings)
    return ServerState(config, app, asyncio.get_running_loop(), "httptools", interface=interface)


def same_head(i: int) -> bytes:
    return HELLO


def new_target(i: int) -> bytes:
    return HELLO.replace(b"/", b"/?n=%d" % i, 1)


def new_field(i: int) -> bytes:
    return HELLO.replace(b"\r\n\r\n", b"\r\nX-Request-Id: %d\r\n\r\n" % i)


async def run_hello(count: int, head: Any = same_head, server: str = "tricorn", connections: int = 1) -> None:
    """``count`` requests, the i-th ``head(i)``, on ``connections`` keep-alive connections (each with a
    request in every loop turn, read before any is answered) to tricorn, or to bench/minimal_asgi.py
    (``server="minimal-asgi"``)."""
    pairs = []
    if server == "minimal-asgi":
        import bench.apps
        import bench.minimal_asgi

        batch = bench.minimal_asgi.Batch(asyncio.get_running_loop())
        new = lambda: bench.minimal_asgi.Protocol(bench.apps.hello, batch, ("127.0.0.1", 8000))  # noqa: E731
    else:
        from tricorn.io.h1 import H1Protocol

        state = state_for("hello")
        new = lambda: H1Protocol(state)  # noqa: E731
    for _ in range(connections):
        proto: Any = new()
        transport = Transport()
        proto.connection_made(transport)
        pairs.append((proto, transport))
    for i in range(count // connections or 1):
        data = head(i)
        for proto, _ in pairs:
            proto.data_received(data)  # the reads of one loop turn
        await settle()
        for _, transport in pairs:
            if not transport.take().endswith(b"Hello, world!"):
                raise SystemExit(f"hello ({server}): no response")


async def run_close(count: int) -> None:
    from tricorn.io.h1 import H1Protocol

    state = state_for("hello")
    for _ in range(count):
        proto = H1Protocol(state)
        transport = Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        proto.data_received(CLOSE)
        await settle()
        if not transport.closed or not transport.take().endswith(b"Hello, world!"):
            raise SystemExit("close: no response, or the connection stayed open")
        proto.connection_lost(None)


async def run_accept(count: int) -> None:
    import socket

    from tricorn.io.accept import Listener
    from tricorn.io.h1 import H1Protocol

    state = state_for("hello")
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    listener = Listener(loop, sock, lambda: H1Protocol(state), 128)
    await listener.start_serving()
    address = sock.getsockname()
    for _ in range(count):
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, address)
        await loop.sock_sendall(client, CLOSE)
        received = b""
        while chunk := await loop.sock_recv(client, 4096):
            received += chunk
        client.close()
        if not received.endswith(b"Hello, world!"):
            raise SystemExit(f"accept: no response: {received[:80]!r}")
        await settle()
    listener.close()


async def run_cgi(count: int) -> None:
    from tricorn.io.h1 import H1Protocol

    class Written(Transport):
        """Wakes ``waiter`` when the response is written (the script runs outside: no polling)."""

        waiter: asyncio.Future[None] | None = None

        def write(self, data: bytes) -> None:
            super().write(data)
            self.wake()

        def writelines(self, parts: Any) -> None:
            super().writelines(parts)
            self.wake()

        def wake(self) -> None:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    loop = asyncio.get_running_loop()
    state = state_for("hello", cgi=(f"/cgi-bin={ROOT / 'bench' / 'cgi' / 'cgi-bin'}",))
    proto = H1Protocol(state)
    transport = Written()
    proto.connection_made(transport)  # type: ignore[arg-type]
    for _ in range(count):
        transport.waiter = loop.create_future()
        proto.data_received(CGI)
        await asyncio.wait_for(transport.waiter, 30)
        while state.cgi.running:  # (reaped at the end of its output, or soon after)
            await asyncio.sleep(0.001)
        if not transport.take().endswith(b"Hello, world!"):
            raise SystemExit("cgi: no response")


async def run_ws(count: int, size: int, pieces: int) -> None:
    from bench.wsload import masked_frame
    from tricorn.io.h1 import H1Protocol

    state = state_for("ws_echo")
    proto = H1Protocol(state)
    transport = Transport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    proto.data_received(UPGRADE)
    await settle()
    if not transport.take().startswith(b"HTTP/1.1 101 "):
        raise SystemExit("websocket: no 101")
    ws = transport.protocol
    payload = bytes(range(256)) * (size // 256)
    frame = masked_frame(payload)
    step = -(-len(frame) // pieces)
    parts = [frame[i : i + step] for i in range(0, len(frame), step)]
    for _ in range(count):
        for part in parts:
            ws.data_received(part)
        await settle()
        echo = transport.out[-1]  # the payload is written as it is, or after its frame head
        if echo != payload and echo[-size:] != payload:
            raise SystemExit(
                f"websocket: the echo differs from the message: {len(transport.out)} writes, "
                f"the last {len(echo)} bytes, {echo[:20]!r}"
            )
        transport.out.clear()
    ws.connection_lost(None)
    await settle()


async def run_wsgi(count: int, connections: int) -> None:
    from tricorn.io.h1 import H1Protocol

    state = state_for("wsgi_hello", "wsgi")
    loop = asyncio.get_running_loop()
    pairs = []
    for _ in range(connections):
        proto = H1Protocol(state)
        transport = Transport()
        proto.connection_made(transport)  # type: ignore[arg-type]
        pairs.append((proto, transport))
    answered = 0
    done: asyncio.Future[None] = loop.create_future()

    def written() -> None:
        nonlocal answered
        answered += 1
        if answered == connections and not done.done():
            done.set_result(None)

    for _, transport in pairs:
        transport.written = written
    for _ in range(count // connections or 1):
        answered = 0
        done = loop.create_future()
        for proto, _ in pairs:
            proto.data_received(HELLO)  # the reads of one loop turn
        await done
        for _, transport in pairs:
            if not transport.take().endswith(b"Hello, world!"):
                raise SystemExit("wsgi: no response")
    for proto, _ in pairs:
        proto.connection_lost(None)
    state.wsgi.pool.close()


_U32 = struct.Struct(">I").pack
_FRAME_HEAD = struct.Struct(">IBI").unpack_from  # a frame's length and type, flags, stream id
HELLO_BODY = b"Hello, world!"


class H2Client:
    """The client's side of the h2 scenarios: frames made by the h2 library in client mode, answers
    checked frame by frame (status 200 and the hello body on every stream)."""

    def __init__(self) -> None:
        import h2.config
        import h2.connection
        from hpack import Decoder

        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.decoder = Decoder()
        self.last_block = b""
        self.next_id = 1
        self.first = self.head = self.block = b""

    def preface(self) -> bytes:
        self.conn.initiate_connection()
        return bytes(self.conn.data_to_send())

    def settle_handshake(self, answer: bytes) -> bytes:
        """The server's SETTINGS (and its connection window): the h2 client's acknowledgement."""
        self.conn.receive_data(answer)
        return bytes(self.conn.data_to_send())

    def make_template(self) -> None:
        """The HEADERS frame of a repeated request (its block refers to the HPACK entries the first made)."""
        headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "127.0.0.1:8000"),
                   ("user-agent", "bench"), ("accept", "*/*")]  # fmt: skip
        frames = []
        for stream_id in (1, 3, 5):
            self.conn.send_headers(stream_id, headers, end_stream=True)
            frames.append(bytes(self.conn.data_to_send()))
        if frames[1][9:] != frames[2][9:] or frames[1][3] != 1 or frames[1][4] & 0x5 != 0x5:
            raise SystemExit(
                "h2: the h2 client's repeated request is not one HEADERS frame of the same block"
            )
        self.first = frames[0]
        self.head = frames[1][:5]
        self.block = frames[1][9:]
        self.next_id = 1

    def requests(self, n: int) -> tuple[bytes, list[int]]:
        """``n`` requests on new streams, one after the other in one piece."""
        first = self.next_id
        self.next_id = first + 2 * n
        ids = list(range(first, self.next_id, 2))
        if first == 1:
            return self.first + b"".join(self.head + _U32(i) + self.block for i in ids[1:]), ids
        return b"".join(self.head + _U32(i) + self.block for i in ids), ids

    def check(self, data: bytes, ids: list[int]) -> None:
        """Each stream of ``ids`` answered with HEADERS (:status 200) and DATA (the hello body, ending it),
        in this order, and nothing else."""
        pos = 0
        for stream_id in ids:
            word, flags, got = _FRAME_HEAD(data, pos)
            end = pos + 9 + (word >> 8)
            if word & 0xFF != 1 or flags & 0x5 != 0x4 or got != stream_id:  # HEADERS, END_HEADERS alone
                raise SystemExit(f"h2: stream {stream_id}: not a head that leaves it open: {data[pos:end]!r}")
            block = data[pos + 9 : end]
            if block != self.last_block:  # (decoded once a second: the date changes it)
                status = dict(self.decoder.decode(block, raw=True)).get(b":status")
                if status != b"200":
                    raise SystemExit(f"h2: stream {stream_id}: status {status!r}")
                self.last_block = block
            word, flags, got = _FRAME_HEAD(data, end)
            pos = end + 9 + (word >> 8)
            if word & 0xFF != 0 or not flags & 0x1 or got != stream_id or data[end + 9 : pos] != HELLO_BODY:
                raise SystemExit(f"h2: stream {stream_id}: not the hello body: {data[end:pos]!r}")
        if pos != len(data):
            raise SystemExit(f"h2: {len(data) - pos} bytes more than the answers of streams {ids}")


async def run_h2(count: int, streams: int) -> None:
    """``count`` requests on one HTTP/2 connection, ``streams`` of them (each on a new stream) a read."""
    from tricorn.io.h1 import H1Protocol

    state = state_for("hello")
    client = H2Client()
    h1 = H1Protocol(state)
    transport = Transport()
    h1.connection_made(transport)  # type: ignore[arg-type]
    h1.data_received(client.preface())  # the preface: the connection is handed to HTTP/2
    await settle()
    proto = transport.protocol
    proto.data_received(client.settle_handshake(transport.take()))
    await settle()
    transport.take()  # (the server's acknowledgement of the client's SETTINGS)
    client.make_template()
    for _ in range(count // streams or 1):
        data, ids = client.requests(streams)
        proto.data_received(data)  # the requests of one read
        await settle()
        client.check(transport.take(), ids)
    proto.connection_lost(None)


def run_scenario(name: str, count: int) -> None:
    import uvloop

    runs = {
        "hello": lambda: run_hello(count),
        "targets": lambda: run_hello(count, new_target),
        "fields": lambda: run_hello(count, new_field),
        "minimal-asgi": lambda: run_hello(count, server="minimal-asgi"),
        "hello8": lambda: run_hello(count, connections=8),
        "minimal-asgi8": lambda: run_hello(count, server="minimal-asgi", connections=8),
        "close": lambda: run_close(count),
        "accept": lambda: run_accept(count),
        "ws1k": lambda: run_ws(count, 1024, 1),
        "ws64k": lambda: run_ws(count, 65536, 1),
        "wsgi": lambda: run_wsgi(count, 1),
        "wsgi8": lambda: run_wsgi(count, 8),
        "cgi": lambda: run_cgi(count),
        "h2": lambda: run_h2(count, 1),
        "h2x8": lambda: run_h2(count, 8),
    }
    uvloop.run(runs[name]())


# Scenarios counted on the loop's thread alone (the main thread: callgrind's thread 1).
LOOP_ONLY = frozenset(("cgi",))


def callgrind(src: str, name: str, count: int, workdir: Path) -> int:
    out = workdir / f"callgrind.{name}.{count}.{abs(hash(src)) % 10000}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(ROOT)]), PYTHONHASHSEED="0")
    threads = ["--separate-threads=yes"] if name in LOOP_ONLY else []
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", *threads, f"--callgrind-out-file={out}", sys.executable, __file__,
         "--inner", name, str(count)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{name} under callgrind failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    if threads:
        m = re.search(r"^summary: (\d+)", Path(f"{out}-01").read_text(), re.MULTILINE)
        if not m:
            raise SystemExit(f"no summary in callgrind's file of the main thread ({out}-01)")
        return int(m.group(1))
    m = re.search(r"Collected : (\d+)", proc.stderr)
    if not m:
        raise SystemExit(f"no instruction count in callgrind's output:\n{proc.stderr[-2000:]}")
    return int(m.group(1))


def per_iteration(src: str, name: str, count: int, workdir: Path) -> float:
    return (callgrind(src, name, 2 * count, workdir) - callgrind(src, name, count, workdir)) / count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"of {', '.join(SCENARIOS)} (all)")
    p.add_argument("--count", type=int, default=2000, help="iterations of the smaller run (2000)")
    p.add_argument("--baseline", metavar="REV", help="also count tricorn at git revision REV")
    p.add_argument("--inner", nargs=2, metavar=("SCENARIO", "N"), help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.inner:
        sys.path.append(str(ROOT))  # bench.apps
        run_scenario(opts.inner[0], int(opts.inner[1]))
        return 0
    unknown = set(opts.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    if not shutil.which("valgrind"):
        print("valgrind required (apt-get install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tricorn-instructions-") as tmp:
        workdir = Path(tmp)
        sources = {"tricorn": str(ROOT / "src")}
        if opts.baseline:
            worktree = workdir / "baseline"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(worktree), opts.baseline],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            sources[f"tricorn@{opts.baseline}"] = str(worktree / "src")
        try:
            for name in opts.scenarios or SCENARIOS:
                counts = {
                    label: per_iteration(src, name, opts.count, workdir) for label, src in sources.items()
                }
                line = "  ".join(f"{label} {n:,.0f}" for label, n in counts.items())
                if len(counts) == 2:
                    now, before = counts.values()
                    line += f"  ({now / before - 1:+.1%})"
                print(f"{name}: instructions per iteration: {line}", flush=True)
        finally:
            if opts.baseline:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(workdir / "baseline")],
                    cwd=ROOT, check=False, capture_output=True,
                )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
