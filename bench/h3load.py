#!/usr/bin/env python3
"""HTTP/3 load generator for bench/run.py (the "h3" client), on aioquic's client.

    python bench/h3load.py --port P [--connections 8] [--streams 10] [--duration 10] [--warmup 2]

Opens ``--connections`` QUIC connections (certificate not verified: the bench's own), then keeps
``--streams`` GET requests in flight on each (a closed loop, like h2load's -m), for ``--warmup`` seconds
unmeasured and ``--duration`` seconds measured. The first response is compared with ``--expect``. A
request counts as failed if its stream is reset, its connection closes under it, its status is not 2xx,
or it is not answered within ``--timeout`` seconds (a datagram lost on the way is QUIC's to send again,
not a failure). Prints one JSON object: requests per second, p50/p99 latency, requests, errors, and the
share of one CPU this client used (``client_cpu``), so a saturated client is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import time
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset


class Stats:
    def __init__(self) -> None:
        self.recording = False
        self.count = 0
        self.latencies: list[float] = []
        self.errors = {"reset": 0, "status": 0, "closed": 0, "timeout": 0, "mismatch": 0}
        self.first_checked = False


class LoadProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.inflight: dict[int, list[Any]] = {}  # stream id -> [started, status, body parts]
        self.stats: Stats = None  # type: ignore[assignment]
        self.head: list[tuple[bytes, bytes]] = []
        self.expect = b""
        self.streams = 0
        self.running = True
        self.closed = False

    def start(self) -> None:
        for _ in range(self.streams):
            self.request()
        self.transmit()

    def request(self) -> None:
        stream_id = self._quic.get_next_available_stream_id()
        self.h3.send_headers(stream_id, self.head, end_stream=True)
        self.inflight[stream_id] = [time.perf_counter(), 0, []]

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.closed = True
            self.stats.errors["closed"] += len(self.inflight)
            self.inflight.clear()
            return
        if isinstance(event, StreamReset):
            if self.inflight.pop(event.stream_id, None) is not None:
                self.stats.errors["reset"] += 1
                self.next()
            return
        for h3_event in self.h3.handle_event(event):
            entry = self.inflight.get(getattr(h3_event, "stream_id", -1))
            if entry is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    if name == b":status":
                        entry[1] = int(value)
            elif isinstance(h3_event, DataReceived):
                entry[2].append(h3_event.data)
            if getattr(h3_event, "stream_ended", False):
                del self.inflight[h3_event.stream_id]
                self.done(entry)

    def done(self, entry: list[Any]) -> None:
        stats = self.stats
        started, status, parts = entry
        if not 200 <= status < 300:
            stats.errors["status"] += 1
        elif not stats.first_checked:
            stats.first_checked = True
            if self.expect and b"".join(parts) != self.expect:
                stats.errors["mismatch"] += 1
        if stats.recording:
            stats.count += 1
            stats.latencies.append(time.perf_counter() - started)
        self.next()

    def next(self) -> None:
        if self.running and not self.closed:
            self.request()
        # (the protocol transmits after each datagram it handled)

    def expire(self, timeout: float) -> None:
        now = time.perf_counter()
        for stream_id, entry in list(self.inflight.items()):
            if now - entry[0] > timeout:
                del self.inflight[stream_id]
                self.stats.errors["timeout"] += 1
                self.next()
        self.transmit()


async def connect(args: argparse.Namespace, stats: Stats) -> tuple[asyncio.DatagramTransport, LoadProtocol]:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
    configuration.verify_mode = ssl.CERT_NONE
    configuration.server_name = "localhost"
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: LoadProtocol(QuicConnection(configuration=configuration)), sock=sock
    )
    protocol.stats = stats
    protocol.head = [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", f"localhost:{args.port}".encode()),
        (b":path", args.path.encode()),
    ]
    protocol.expect = args.expect.encode()
    protocol.streams = args.streams
    protocol.connect((args.host, args.port))
    await asyncio.wait_for(protocol.wait_connected(), 10)
    return transport, protocol


async def main(args: argparse.Namespace) -> dict[str, Any]:
    stats = Stats()
    connections = [await connect(args, stats) for _ in range(args.connections)]
    for _, protocol in connections:
        protocol.start()
    await asyncio.sleep(args.warmup)
    stats.recording = True
    cpu0, wall0 = os.times(), time.perf_counter()
    end = wall0 + args.duration
    while time.perf_counter() < end:
        await asyncio.sleep(0.25)
        for _, protocol in connections:
            protocol.expire(args.timeout)
    stats.recording = False
    cpu1, wall = os.times(), time.perf_counter() - wall0
    for _, protocol in connections:
        protocol.running = False
    for transport, protocol in connections:
        protocol.close()
        transport.close()
    latencies = sorted(stats.latencies)

    def pct(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else None

    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "rps": stats.count / wall if stats.count else None,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "requests": stats.count,
        "errors": stats.errors,
        "client_cpu": cpu / wall,
        "protocol": f"h3 (aioquic client, {args.connections} connections x {args.streams} streams)",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--expect", default="")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    # asyncio's own loop: aioquic's client protocol never completes its handshake on uvloop's UDP transport.
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
    sys.exit(0)
