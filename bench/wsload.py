#!/usr/bin/env python3
"""WebSocket echo load generator for bench/run.py (the "ws" client).

    python bench/wsload.py --port P [--clients 100] [--size 1024] [--duration 10] [--warmup 2]

Opens ``--clients`` connections (no compression offered), then each one sends a binary message of
``--size`` bytes and waits for its echo before sending the next (a closed loop, like wrk's
request/response), for ``--warmup`` seconds unmeasured and ``--duration`` seconds measured. The first
echo on every connection is compared with what was sent; after that only frame headers are parsed and
payload bytes counted, so the client spends as little CPU per message as possible. Prints one JSON
object: messages per second, p50/p99 round-trip latency, messages, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from typing import Any

MASK = b"\x5a\x17\xc3\x81"


def masked_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x82, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
    key = int.from_bytes(MASK * (n // 4 + 1), "big") >> (8 * (4 - n % 4) % 32 if n % 4 else 0)
    masked = (int.from_bytes(payload, "big") ^ (key & ((1 << (8 * n)) - 1))).to_bytes(n, "big") if n else b""
    return head + MASK + masked


class Stats:
    def __init__(self) -> None:
        self.recording = False
        self.count = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.mismatches = 0


READ_BUFFER = 1 << 18  # what uvloop reads at most at once (its own receive buffer is 256 KiB)


class EchoClient(asyncio.BufferedProtocol):
    """One connection. Bytes are read into a buffer of its own (a BufferedProtocol): uvloop's plain
    protocols get each read as a new bytes object, a copy of every echo the server does not make."""

    def __init__(self, port: int, payload: bytes, stats: Stats, ready: asyncio.Future[None]) -> None:
        self.port = port
        self.payload = payload
        self.frame = masked_frame(payload)
        n = len(payload)
        self.echo_head = (
            struct.pack("!BB", 0x82, n)
            if n < 126
            else struct.pack("!BBH", 0x82, 126, n)
            if n < 65536
            else struct.pack("!BBQ", 0x82, 127, n)
        )
        self.echo_size = len(self.echo_head) + n
        self.stats = stats
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.open = False
        self.first = True
        self.sent_at = 0.0
        self.header = b""  # an incomplete frame header
        self.remaining = 0  # payload bytes left in the current frame
        self.opcode = 0
        self.message = bytearray()  # the first echo, kept for the comparison
        self.closed = False
        self.buffer = bytearray(READ_BUFFER)
        self.view = memoryview(self.buffer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(  # type: ignore[attr-defined]
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.stats.errors += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost during the handshake: {exc}"))

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.frame)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        if (
            nbytes == self.echo_size
            and not self.first
            and not self.remaining
            and not self.header
            and self.buffer.startswith(self.echo_head)
        ):
            self.opcode = 2
            self._frame_done()  # the common case: exactly one whole echo, checked by its header and size
            return
        self.data_received(bytes(self.view[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.buf += data
            if b"\r\n\r\n" not in self.buf:
                return
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(f"handshake refused: {head[:100]!r}"))
                return
            self.open = True
            self.buf = b""
            self.ready.set_result(None)
            if not rest:
                return
            data = rest
        pos, end = 0, len(data)
        while pos < end:
            if self.remaining:
                take = min(self.remaining, end - pos)
                if self.first and self.opcode == 2:
                    self.message += data[pos : pos + take]
                self.remaining -= take
                pos += take
                if not self.remaining:
                    self._frame_done()
                continue
            # A frame header (server frames are never masked): 2 bytes, then 2 or 8 of extended length.
            if len(self.header) < 2:
                take = min(2 - len(self.header), end - pos)
                self.header += data[pos : pos + take]
                pos += take
                if len(self.header) < 2:
                    return
            n = self.header[1] & 0x7F
            size = 4 if n == 126 else 10 if n == 127 else 2
            if len(self.header) < size:
                take = min(size - len(self.header), end - pos)
                self.header += data[pos : pos + take]
                pos += take
                if len(self.header) < size:
                    return
            header, self.header = self.header, b""
            self.opcode = header[0] & 0x0F
            if n == 126:
                n = struct.unpack("!H", header[2:4])[0]
            elif n == 127:
                n = struct.unpack("!Q", header[2:10])[0]
            self.remaining = n
            if not n:
                self._frame_done()

    def _frame_done(self) -> None:
        opcode = self.opcode
        if opcode == 9 or opcode == 10:  # a ping (answered by nobody: the bench is shorter than 20 s) or pong
            return
        if opcode == 8:
            self.closed = True
            self.stats.errors += 1
            return
        if self.first:
            self.first = False
            if bytes(self.message) != self.payload:
                self.stats.mismatches += 1
            self.message = bytearray()
        stats = self.stats
        if stats.recording:
            stats.count += 1
            stats.latencies.append(time.perf_counter() - self.sent_at)
        self.send()


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass
    loop = asyncio.get_running_loop()
    payload = os.urandom(opts.size)
    stats = Stats()
    clients: list[EchoClient] = []
    readies = []
    for _ in range(opts.clients):
        ready: asyncio.Future[None] = loop.create_future()
        _, client = await loop.create_connection(
            lambda r=ready: EchoClient(opts.port, payload, stats, r), "127.0.0.1", opts.port
        )
        clients.append(client)  # type: ignore[arg-type]
        readies.append(ready)
    await asyncio.wait_for(asyncio.gather(*readies), 30)
    for client in clients:
        client.send()
    await asyncio.sleep(opts.warmup)
    stats.recording = True
    started = time.perf_counter()
    await asyncio.sleep(opts.duration)
    stats.recording = False
    elapsed = time.perf_counter() - started
    for client in clients:
        client.closed = True
        if client.transport is not None:
            client.transport.close()
    lat = sorted(stats.latencies)
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: None)
    return {
        "rps": stats.count / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": stats.count,
        "mbps": stats.count * opts.size / elapsed / 1e6,
        "errors": {"closed": stats.errors, "mismatch": stats.mismatches},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    try:
        result = asyncio.run(main(parser.parse_args()))
    except (TimeoutError, OSError) as exc:
        print(json.dumps({"failed": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps(result))
