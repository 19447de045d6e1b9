#!/usr/bin/env python3
"""The memory a worker keeps after many connections have come and gone: its RSS idle, with N connections
open at once, and after they have all closed, over several rounds on the same worker.

    .venv/bin/python bench/connmem.py [--connections 10000] [--rounds 2] [--close] [--server tricorn]
                                      [--src DIR]

Starts one worker (``python -m tricorn bench.apps:hello``, or uvicorn with ``--server uvicorn``) on a free
port, sends one request and reads ``VmRSS`` from ``/proc/PID/status`` (idle). Each round then opens
``--connections`` connections at once, each sending one request (keep-alive, or ``Connection: close`` with
``--close``) and reading its response, reads the RSS with all of them open (for ``--close``, the server
has already closed them: "open" is then its peak), closes them, waits for the RSS to settle, and reads it
again (after). "held" is after minus idle: the issue's target is 10 MB at most. "fds open" is the server's
open descriptors when "open" was read (the connections, and a few of its own): idle connections are kept
600 s (``--timeout-keep-alive``), as opening 10,000 takes a loaded machine longer than the default 5 s.

The client runs in this process (asyncio); the soft limit on open files is raised to the hard one, for the
client and for the server it starts (each needs one descriptor per connection).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from run import ROOT, free_port, server_env  # bench/run.py, beside this script

KEEP_ALIVE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: connmem\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: connmem\r\nConnection: close\r\n\r\n"
ANSWER = b"Hello, world!"


# The servers keep idle connections this long (s): opening 10,000 takes a loaded machine longer than the
# default 5 s, and every connection must still be open when the RSS is read.
KEEP = "600"


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def server_command(server: str, port: int) -> list[str]:
    py = sys.executable
    if server == "tricorn":
        return [py, "-m", "tricorn", "bench.apps:hello", "--port", str(port), "--no-access-log",
                "--log-level", "warning", "--backlog", "4096", "--timeout-keep-alive", KEEP]  # fmt: skip
    if server == "uvicorn":
        return [py, "-m", "uvicorn", "bench.apps:hello", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning", "--backlog", "4096", "--timeout-keep-alive", KEEP]  # fmt: skip
    raise SystemExit(f"unknown server {server!r} (tricorn, uvicorn)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def settled_rss(pid: int, timeout: float = 10.0) -> float:
    """The RSS once it has not changed for half a second (the worker has handled the closes), at least
    two seconds on (the server's once-a-second tick has run: it may give memory back then)."""
    time.sleep(2)
    last = rss_mb(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_mb(pid)
        if abs(now - last) < 0.05:
            return now
        last = now
    return last


async def one(port: int, request: bytes, gate: asyncio.Semaphore) -> asyncio.StreamWriter:
    async with gate:  # bounded connects in flight: the listen queue is not overrun
        for attempt in range(20):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.05)
        writer.write(request)
        received = b""
        while not received.endswith(ANSWER):
            chunk = await reader.read(4096)
            if not chunk:
                raise SystemExit(f"the connection closed before the response: {received[:80]!r}")
            received += chunk
        return writer


async def open_all(port: int, count: int, request: bytes) -> list[asyncio.StreamWriter]:
    gate = asyncio.Semaphore(256)
    return list(await asyncio.gather(*(one(port, request, gate) for _ in range(count))))


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(CLOSE)
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
                if data.endswith(ANSWER):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not answer in time")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=10000, help="connections open at once (10000)")
    p.add_argument("--rounds", type=int, default=2, help="rounds on the same worker (2)")
    p.add_argument("--close", action="store_true", help="requests with Connection: close")
    p.add_argument("--server", default="tricorn", help="tricorn (default) or uvicorn")
    p.add_argument("--src", default=str(ROOT / "src"), help="the tricorn sources to run (this checkout's)")
    opts = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = opts.connections + 200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise SystemExit(f"the hard limit on open files ({hard}) is below {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY else hard, hard))

    port = free_port()
    proc = subprocess.Popen(server_command(opts.server, port), cwd=ROOT, env=server_env(opts.src))
    try:
        wait_ready(port, proc)
        idle = settled_rss(proc.pid)
        request = CLOSE if opts.close else KEEP_ALIVE
        kind = "Connection: close" if opts.close else "keep-alive"
        print(f"{opts.server}: {opts.connections:,} connections at once ({kind}), then closed; RSS in MB")
        print(f"{'round':>5} {'idle':>7} {'open':>7} {'after':>7} {'held':>7} {'fds open':>9}")
        loop = asyncio.new_event_loop()
        for n in range(1, opts.rounds + 1):
            writers = loop.run_until_complete(open_all(port, opts.connections, request))
            opened = rss_mb(proc.pid)
            fds = open_fds(proc.pid)
            loop.run_until_complete(close_all(writers))
            del writers
            after = settled_rss(proc.pid)
            print(
                f"{n:>5} {idle:>7.1f} {opened:>7.1f} {after:>7.1f} {after - idle:>+7.1f} {fds:>9,}",
                flush=True,
            )
        loop.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
