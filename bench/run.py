#!/usr/bin/env python3
"""Benchmark tricorn against its peers on this machine, in one run.

    .venv/bin/python bench/run.py [--duration 10] [--connections 64] [--only CASE...]
                                  [--servers tricorn,uvicorn,...] [--no-write] [--profile]

Every server runs one worker pinned to CPU 0 (``taskset -c 0``); wrk runs pinned to CPU 1.
Servers and cases are plain data (``SERVERS``, ``SECTIONS``) so further sections (WSGI,
WebSocket, workers) are added as entries, not as new plumbing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DOCS = ROOT / "docs"
DOC_FILE = DOCS / "benchmarks.md"
PY = sys.executable
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"


# --------------------------------------------------------------------------------------
# Data: servers, cases, sections
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """A self-signed certificate for 127.0.0.1 and its key, made at run time (``make_certs``)."""

    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class Server:
    """A server under test. ``commands`` maps an interface ("asgi", "wsgi", ...) to a command
    template (split with shlex); ``{py}``, ``{app}``, ``{host}``, ``{port}`` and ``{root}`` (the
    repository) are substituted.
    ``tls`` holds the options that serve TLS (``{certfile}``, ``{keyfile}``), appended for a
    case with ``tls=True``. ``src``, when set, is put first on the server's PYTHONPATH, so that
    ``python -m tricorn`` imports the package there (``--baseline``: a git worktree of another
    revision) rather than this checkout's."""

    name: str
    package: str  # distribution whose version is reported
    commands: dict[str, str]
    tls: str = ""
    src: str = ""

    def argv(self, interface: str, app: str, port: int, certs: Certs | None = None) -> list[str]:
        subst = {
            "py": PY,
            "app": app,
            "host": HOST,
            "port": str(port),
            "docroot": str(STATIC_ROOT),
            "root": str(ROOT),
        }
        template = self.commands[interface]
        if certs is not None:
            template += " " + self.tls
            subst |= {"certfile": str(certs.certfile), "keyfile": str(certs.keyfile)}
        return [part.format(**subst) for part in shlex.split(template)]


# tricorn's commands use only long-standing options (--port, --no-access-log, --log-level, --interface,
# --workers): --baseline runs the same commands against an older tricorn, which would exit on an
# option it does not know yet. A new option belongs in a case of its own, not in these commands.
SERVERS: dict[str, Server] = {
    s.name: s
    for s in (
        Server(
            "tricorn",
            "tricorn",
            {
                "asgi": "{py} -m tricorn {app} --port {port} --no-access-log --log-level warning",
                "websocket": "{py} -m tricorn {app} --port {port} --no-access-log --log-level warning",
                # The default --threads (10): the same thread count as the peers below.
                "wsgi": "{py} -m tricorn {app} --interface wsgi --port {port} --no-access-log --log-level warning",
                # HTTP/2 is on by default: h2c by prior knowledge on a cleartext port, ALPN h2 over TLS.
                "http2": "{py} -m tricorn {app} --port {port} --no-access-log --log-level warning",
                # HTTP/3 on the same port number over UDP (the TCP listener answers the readiness poll).
                "http3": "{py} -m tricorn {app} --port {port} --quic-bind {host}:{port} --no-access-log"
                " --log-level warning",
                # (--cgi is newer than the commands above: a --baseline before it cannot run this section.)
                "cgi": "{py} -m tricorn {app} --cgi /cgi-bin={root}/bench/cgi/cgi-bin --port {port}"
                " --no-access-log --log-level warning",
            },
            tls="--ssl-certfile {certfile} --ssl-keyfile {keyfile}",
        ),
        Server(
            "uvicorn",
            "uvicorn",
            {
                "asgi": "{py} -m uvicorn {app} --host {host} --port {port} --workers 1"
                " --loop uvloop --http httptools --no-access-log --log-level warning",
                "websocket": "{py} -m uvicorn {app} --host {host} --port {port} --workers 1"
                " --loop uvloop --http httptools --ws websockets --no-access-log --log-level warning",
            },
            tls="--ssl-certfile {certfile} --ssl-keyfile {keyfile}",
        ),
        Server(
            "uvicorn-wsproto",
            "uvicorn",
            {
                "websocket": "{py} -m uvicorn {app} --host {host} --port {port} --workers 1"
                " --loop uvloop --http httptools --ws wsproto --no-access-log --log-level warning",
            },
        ),
        Server(
            "granian",
            "granian",
            {
                # granian's access log is off by default; --no-access-log makes it explicit.
                "asgi": "{py} -m granian --interface asgi --host {host} --port {port} --workers 1"
                " --no-ws --loop uvloop --http 1 --log-level warning --no-access-log {app}",
                "websocket": "{py} -m granian --interface asgi --host {host} --port {port} --workers 1"
                " --loop uvloop --http 1 --log-level warning --no-access-log {app}",
                "wsgi": "{py} -m granian --interface wsgi --host {host} --port {port} --workers 1"
                " --blocking-threads 10 --http 1 --log-level warning --no-access-log {app}",
                # --http auto (its default): HTTP/1.1 and h2c by prior knowledge on one cleartext port, and
                # ALPN over TLS, as tricorn and hypercorn serve them.
                "http2": "{py} -m granian --interface asgi --host {host} --port {port} --workers 1"
                " --no-ws --loop uvloop --http auto --log-level warning --no-access-log {app}",
            },
            # --ssl-keyfile must be PKCS#8 ("BEGIN PRIVATE KEY"), which make_certs writes.
            tls="--ssl-certificate {certfile} --ssl-keyfile {keyfile}",
        ),
        Server(
            "hypercorn",
            "hypercorn",
            {
                # hypercorn writes no access log unless --access-logfile is given.
                "asgi": "{py} -m hypercorn -w 1 -k uvloop -b {host}:{port} --log-level warning {app}",
                # The same command: hypercorn serves h2c by prior knowledge beside HTTP/1.1, and ALPN h2.
                "http2": "{py} -m hypercorn -w 1 -k uvloop -b {host}:{port} --log-level warning {app}",
                "http3": "{py} -m hypercorn -w 1 -k uvloop -b {host}:{port} --quic-bind {host}:{port}"
                " --log-level warning {app}",
            },
            tls="--certfile {certfile} --keyfile {keyfile}",
        ),
        # gunicorn writes no access log unless --access-logfile is given.
        Server(
            "gunicorn-gthread",
            "gunicorn",
            {
                "wsgi": "{py} -m gunicorn -w 1 -k gthread --threads 10 -b {host}:{port} --log-level warning {app}"
            },
        ),
        Server(
            "gunicorn-sync",
            "gunicorn",
            {"wsgi": "{py} -m gunicorn -w 1 -k sync -b {host}:{port} --log-level warning {app}"},
        ),
        # The "static" section: a directory of files ({docroot}), made at run time (make_static_root).
        # --static is newer than --baseline's older revisions may know: the section is its own interface.
        Server(
            "tricorn-static",
            "tricorn",
            {
                "static": "{py} -m tricorn --static /={docroot} --port {port} --no-access-log --log-level warning"
            },
        ),
        Server("nginx", "nginx", {"static": "{py} bench/nginx_static.py {port} {docroot}"}),
        # Debian's lighttpd, one process, mod_cgi (bench/cgi/lighttpd.conf).
        Server(
            "lighttpd",
            "lighttpd",
            {
                "cgi": "env BENCH_PORT={port} BENCH_CGI_ROOT={root}/bench/cgi"
                " lighttpd -D -f {root}/bench/cgi/lighttpd.conf"
            },
        ),
        # Not a peer: tricorn with its proxy headers off. wrk connects from 127.0.0.1, a trusted proxy by
        # default, so "tricorn" reads each request's headers for X-Forwarded-*; this one does not (the
        # cost of the check: --servers tricorn,tricorn-no-proxy-headers --only hello hello-proxied).
        Server(
            "tricorn-no-proxy-headers",
            "tricorn",
            {
                "asgi": "{py} -m tricorn {app} --port {port} --no-access-log --log-level warning --no-proxy-headers",
                "wsgi": "{py} -m tricorn {app} --interface wsgi --port {port} --no-access-log --log-level warning"
                " --no-proxy-headers",
            },
        ),
        # Not peers: ceilings, run as references of the cases that name them (Case.references). The
        # ceiling of a Python WSGI server on tricorn's own parts, with no validation at all
        # (bench/minimal_wsgi.py) and of a Python ASGI server the same way (bench/minimal_asgi.py), and
        # uvloop answering every request head with fixed bytes: no parsing, no app (bench/canned.py; it
        # ignores {app} and answers as bench.apps:hello does).
        Server("minimal-wsgi", "httptools", {"wsgi": "{py} bench/minimal_wsgi.py {app} {port}"}),
        Server("minimal-asgi", "httptools", {"asgi": "{py} bench/minimal_asgi.py {app} {port}"}),
        Server("canned", "uvloop", {"asgi": "{py} bench/canned.py {port}"}),
        # -- pre-fork workers (section "workers"): each server with 1 and with 2 worker processes.
        # tricorn with one worker is a single process (no master), as it is deployed that way.
        *(
            Server(
                f"tricorn-w{n}",
                "tricorn",
                {
                    "workers": f"{{py}} -m tricorn {{app}} --port {{port}} --workers {n}"
                    " --no-access-log --log-level warning"
                },
            )
            for n in (1, 2)
        ),
        # gunicorn's master with uvicorn's worker class (uvicorn-worker, formerly uvicorn.workers).
        *(
            Server(
                f"gunicorn-uvicorn-w{n}",
                "gunicorn",
                {
                    "workers": f"{{py}} -m gunicorn -w {n} -k uvicorn_worker.UvicornWorker -b {{host}}:{{port}}"
                    " --log-level warning {app}"
                },
            )
            for n in (1, 2)
        ),
        *(
            Server(
                f"granian-w{n}",
                "granian",
                {
                    "workers": f"{{py}} -m granian --interface asgi --host {{host}} --port {{port}} --workers {n}"
                    " --no-ws --loop uvloop --http 1 --log-level warning --no-access-log {app}"
                },
            )
            for n in (1, 2)
        ),
    )
}

CheckFn = Callable[[int, http.client.HTTPResponse, bytes], str | None]


def expect_body(expected: bytes, chunked: bool | None = None) -> CheckFn:
    """Sanity check run once before loading: status 200, the exact body, and (optionally)
    whether the response must / must not use chunked transfer-encoding."""

    def check(status: int, resp: http.client.HTTPResponse, body: bytes) -> str | None:
        if status != 200:
            return f"status {status}"
        if body != expected:
            return f"body mismatch: got {len(body)} bytes, expected {len(expected)}"
        te = (resp.getheader("transfer-encoding") or "").lower()
        if chunked is True and "chunked" not in te:
            return f"expected chunked transfer-encoding, got headers {resp.getheaders()}"
        if chunked is False and resp.getheader("content-length") is None:
            return "expected a content-length header"
        return None

    return check


ONE_MIB = b"a" * (1024 * 1024)  # must match bench/post1m.lua

# The files of the "static" section, written into the run's temporary directory by main().
STATIC_FILES = {"1k.bin": bytes(range(256)) * 4, "1m.bin": bytes(range(256)) * 4096}
STATIC_ROOT: Path | None = None


def make_static_root(directory: Path) -> Path:
    root = directory / "static"
    root.mkdir()
    for name, data in STATIC_FILES.items():
        (root / name).write_bytes(data)
    return root


@dataclass(frozen=True)
class Case:
    name: str
    app: str  # "module:attr", imported by the server from the repo root
    description: str
    client: str = "wrk"  # load generator, a key of CLIENTS
    tls: bool = False  # https://: the server gets its Server.tls options and a run-time certificate
    path: str = "/"
    wrk_script: str | None = None  # Lua script under bench/
    wrk_args: tuple[str, ...] = ()
    connections: int | None = None  # wrk -c for this case, instead of --connections
    check_method: str = "GET"
    check_body: bytes | None = None
    check: CheckFn | None = None
    # Also report the CPU the server spent per request, its reaped children (CGI scripts) included, from
    # /proc: unlike the rate, it hardly moves when other processes share the machine.
    cpu_per_request: bool = False
    # Reference servers (ceilings, not peers) run for this case after the section's servers, unless
    # --servers leaves them out; shown last, with the same ratio column.
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    key: str  # docs markers <!-- bench:KEY:start -->, chart docs/benchmarks-KEY.png
    title: str
    interface: str  # key into Server.commands
    servers: tuple[str, ...]  # first one is the reference for ratios
    cases: tuple[Case, ...]
    intro: str = ""
    # Where the servers and wrk run (taskset -c CPU lists), and how the docs say it ("" for the default
    # sentence: one worker per server, pinned to SERVER_CPU).
    server_cpus: str = SERVER_CPU
    client_cpus: str = CLIENT_CPU
    setup: str = ""


SECTIONS: dict[str, Section] = {
    s.key: s
    for s in (
        Section(
            key="asgi",
            title="ASGI",
            interface="asgi",
            servers=("tricorn", "uvicorn", "granian", "hypercorn"),
            intro="Plain ASGI callables from `bench/apps.py` (no framework), served by each server.",
            cases=(
                Case(
                    "hello",
                    "bench.apps:hello",
                    "GET /, 200 text/plain `Hello, world!` with content-length; `canned` is the ceiling "
                    "(`bench/canned.py`: uvloop writing fixed bytes per request head, no parsing, no app), "
                    "`minimal-asgi` the ceiling of a Python ASGI server on these parts (`bench/minimal_asgi.py`: "
                    "httptools and the app stepped directly, no validation)",
                    check=expect_body(b"Hello, world!", chunked=False),
                    references=("canned", "minimal-asgi"),
                ),
                Case(
                    "close",
                    "bench.apps:hello",
                    "GET / with `Connection: close`, 32 connections: a new connection per request (accept, "
                    "answer, close); `canned` is the ceiling",
                    wrk_args=("-H", "Connection: close"),
                    connections=32,
                    check=expect_body(b"Hello, world!", chunked=False),
                    references=("canned",),
                ),
                Case(
                    "hello-proxied",
                    "bench.apps:hello",
                    "hello as a proxy sends it: with X-Forwarded-For and X-Forwarded-Proto (believed from "
                    "127.0.0.1 by tricorn and uvicorn)",
                    wrk_args=("-H", "X-Forwarded-For: 203.0.113.7", "-H", "X-Forwarded-Proto: https"),
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
                Case(
                    "stream",
                    "bench.apps:stream",
                    "GET /, 10 x 1 KiB `http.response.body` parts, no content-length (chunked)",
                    check=expect_body(b"x" * 10240, chunked=True),
                ),
                Case(
                    "post1m",
                    "bench.apps:echo",
                    "POST of a 1 MiB body, read fully via receive() and echoed back with content-length",
                    wrk_script="post1m.lua",
                    check_method="POST",
                    check_body=ONE_MIB,
                    check=expect_body(ONE_MIB, chunked=False),
                ),
            ),
        ),
        Section(
            key="wsgi",
            title="WSGI",
            interface="wsgi",
            servers=("tricorn", "granian", "gunicorn-gthread", "gunicorn-sync"),
            intro="Plain WSGI callables from `bench/apps.py` (no framework), one worker process each, "
            "10 threads where the server has threads (tricorn's default `--threads`, granian "
            "`--blocking-threads 10`, gunicorn `-k gthread --threads 10`; gunicorn's `sync` worker "
            "serves one request at a time and closes every connection).",
            cases=(
                Case(
                    "hello",
                    "bench.apps:wsgi_hello",
                    "GET /, 200 text/plain `Hello, world!` with content-length; `minimal-wsgi` is the "
                    "ceiling (`bench/minimal_wsgi.py`: the same parts, no validation)",
                    check=expect_body(b"Hello, world!", chunked=False),
                    references=("minimal-wsgi",),
                ),
                Case(
                    "blocking",
                    "bench.apps:wsgi_blocking",
                    "GET /, the app blocks 10 ms (`time.sleep`) then answers `Hello, world!`; 16 "
                    "connections: at most threads / 10 ms = 1,000 req/s with 10 threads",
                    connections=16,
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
        Section(
            key="websocket",
            title="WebSocket",
            interface="websocket",
            servers=("tricorn", "uvicorn", "uvicorn-wsproto", "granian"),
            intro="Echo of binary messages by `bench.apps:ws_echo` (a plain ASGI callable), 100 WebSocket "
            "clients from `bench/wsload.py`, each sending one message and waiting for its echo before the "
            "next (no compression offered). uvicorn runs twice: `--ws websockets` (uvicorn) and "
            "`--ws wsproto` (uvicorn-wsproto). The rate is messages echoed per second.",
            cases=(
                # For the "ws" client, wrk_args are bench/wsload.py's own arguments.
                Case(
                    "echo1k",
                    "bench.apps:ws_echo",
                    "1 KiB binary messages echoed, 100 clients",
                    client="ws",
                    connections=100,
                    wrk_args=("--size", "1024"),
                ),
                Case(
                    "echo64k",
                    "bench.apps:ws_echo",
                    "64 KiB binary messages echoed, 100 clients",
                    client="ws",
                    connections=100,
                    wrk_args=("--size", "65536"),
                ),
            ),
        ),
        Section(
            key="workers",
            title="Workers",
            interface="workers",
            servers=(
                "tricorn-w2",
                "gunicorn-uvicorn-w2",
                "granian-w2",
                "tricorn-w1",
                "gunicorn-uvicorn-w1",
                "granian-w1",
            ),
            intro="The ASGI `hello` app served by 1 and by 2 worker processes: tricorn `--workers N`, "
            "gunicorn `-w N` with uvicorn's worker class, granian `--workers N`. The server processes and "
            "wrk share every CPU (no pinning), so on a 2-CPU machine the second worker competes with wrk: "
            "compare servers at the same worker count, and read the 1-to-2 gain as a lower bound.",
            server_cpus="0-1",
            client_cpus="0-1",
            setup="1 or 2 worker processes on CPUs 0-1 (unpinned)",
            cases=(
                Case(
                    "hello",
                    "bench.apps:hello",
                    "GET /, 200 text/plain `Hello, world!` with content-length",
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
        Section(
            key="tls",
            title="TLS",
            interface="asgi",
            servers=("tricorn", "uvicorn"),
            intro="The ASGI `hello` app over HTTP/1.1 and TLS: wrk on `https://` with 64 keep-alive "
            "connections, so 64 handshakes open a run of many thousand requests, and the run measures "
            "TLS records and the server's TLS transport; compare with the cleartext ASGI `hello`. The "
            "certificate is self-signed (ECDSA P-256), made with `openssl` at run time.",
            cases=(
                Case(
                    "hello",
                    "bench.apps:hello",
                    "GET / over TLS, 200 text/plain `Hello, world!` with content-length",
                    tls=True,
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
        Section(
            key="static",
            title="Static files",
            interface="static",
            servers=("tricorn-static", "nginx"),
            intro="A directory served by `tricorn --static /=DIR` (no app) and by nginx (Debian's package, "
            "`worker_processes 1`, `sendfile on`, `tcp_nopush on`, no access log; `bench/nginx_static.py`), "
            "each pinned to CPU 0 like every other section. Files of 1 KiB and 1 MiB, GET with keep-alive.",
            cases=(
                Case(
                    "file1k",
                    "",
                    "GET /1k.bin, a 1 KiB file (tricorn: held in memory, one write)",
                    path="/1k.bin",
                    check=expect_body(STATIC_FILES["1k.bin"], chunked=False),
                ),
                Case(
                    "file1m",
                    "",
                    "GET /1m.bin, a 1 MiB file (both: sendfile)",
                    path="/1m.bin",
                    check=expect_body(STATIC_FILES["1m.bin"], chunked=False),
                ),
            ),
        ),
        Section(
            key="http2",
            title="HTTP/2",
            interface="http2",
            servers=("tricorn", "hypercorn", "granian"),
            intro="The ASGI `hello` app over HTTP/2, loaded by h2load: 16 connections with 10 concurrent "
            "streams each. `h2c` is cleartext HTTP/2 by prior knowledge (no Upgrade), `h2-tls` is HTTP/2 "
            "negotiated by ALPN (h2load offers only `h2`) with a self-signed ECDSA P-256 certificate made "
            "with `openssl` at run time. Every server serves HTTP/1.1 and HTTP/2 on the same port. "
            "hypercorn ends a connection with GOAWAY after 1,000 requests (its `keep_alive_max_requests` "
            "default, which its command line does not set): the streams in flight then are its errors.",
            cases=(
                # For the "h2load" client, wrk_args are h2load's own arguments.
                Case(
                    "h2c",
                    "bench.apps:hello",
                    "GET / over cleartext HTTP/2 (prior knowledge), 16 connections x 10 streams",
                    client="h2load",
                    connections=16,
                    wrk_args=("-m10",),
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
                Case(
                    "h2-tls",
                    "bench.apps:hello",
                    "GET / over HTTP/2 and TLS (ALPN h2), 16 connections x 10 streams",
                    client="h2load",
                    tls=True,
                    connections=16,
                    wrk_args=("-m10",),
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
        Section(
            key="http3",
            title="HTTP/3",
            interface="http3",
            servers=("tricorn", "hypercorn"),
            intro="The ASGI `hello` app over HTTP/3 (QUIC on UDP, `--quic-bind` on the TLS port's number), "
            "loaded by `bench/h3load.py`: aioquic's client, the QUIC stack both servers are built on, so "
            "the two sides of each exchange do the same packet and crypto work. Python QUIC clients are "
            "slow, so the client's share of its CPU is shown: near 100% the client, not the server, sets "
            "the rate. hypercorn is the only other Python server with HTTP/3.",
            cases=(
                # For the "h3" client, wrk_args are bench/h3load.py's own arguments.
                Case(
                    "hello",
                    "bench.apps:hello",
                    "GET / over HTTP/3, 8 connections x 10 streams",
                    client="h3",
                    tls=True,
                    connections=8,
                    wrk_args=("--streams", "10", "--expect", "Hello, world!"),
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
        Section(
            key="cgi",
            title="CGI",
            interface="cgi",
            servers=("tricorn", "lighttpd"),
            intro="The same CGI/1.1 script, `bench/cgi/cgi-bin/hello.sh` (POSIX sh, Debian's dash), run once "
            "per request: tricorn `--cgi /cgi-bin=bench/cgi/cgi-bin` (in front of the ASGI `hello` app, "
            "which serves no request here) against Debian's lighttpd with `mod_cgi` "
            "(`bench/cgi/lighttpd.conf`: one process, no access log). 8 keep-alive connections, under "
            "tricorn's default `--cgi-max-concurrent` (10). Starting a process dominates: the rate is "
            "mostly the kernel's fork and exec and the shell's start-up, on the server's CPU, where the "
            "scripts run too (they inherit its pinning). `CPU µs/req` is the CPU time the server and its "
            "scripts spent per request during the measured run (`/proc/PID/stat`: utime, stime, cutime, "
            "cstime): it hardly depends on what else the machine runs, where the rate does.",
            cases=(
                Case(
                    "hello",
                    "bench.apps:hello",
                    "GET /cgi-bin/hello.sh, a sh script printing 200 text/plain `Hello, world!` with "
                    "content-length",
                    path="/cgi-bin/hello.sh",
                    connections=8,
                    cpu_per_request=True,
                    check=expect_body(b"Hello, world!", chunked=False),
                ),
            ),
        ),
    )
}


# --------------------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------------------

_LIVE: set[subprocess.Popen[bytes]] = set()


def _on_signal(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env(src: str = "") -> dict[str, str]:
    env = dict(os.environ)
    # Repo root so `bench.apps` imports; src/ so an uninstalled tricorn checkout runs. A baseline's src
    # goes first instead of this checkout's: it shadows the editable install's path (a .pth entry,
    # added after PYTHONPATH).
    paths = [src, str(ROOT)] if src else [str(ROOT), str(ROOT / "src")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerProcess:
    def __init__(
        self, argv: list[str], log_dir: Path, label: str, cpus: str = SERVER_CPU, src: str = ""
    ) -> None:
        self.argv = ["taskset", "-c", cpus, *argv]
        self.log_path = log_dir / f"{label}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=server_env(src),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: killed as a whole, no Ctrl-C
        )
        _LIVE.add(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def stop(self) -> None:
        kill_group(self.proc)
        _LIVE.discard(self.proc)
        self._log.close()


def kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = proc.pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # Leader gone; give its children (e.g. granian workers) the same signal.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        return


def kill_all() -> None:
    for proc in list(_LIVE):
        kill_group(proc, grace=2.0)
        _LIVE.discard(proc)


@dataclass(frozen=True)
class Baseline:
    """``--baseline REV``: tricorn at another git revision, checked out into a detached worktree of this
    repository, served by this venv's Python with the worktree's src/ first on PYTHONPATH."""

    rev: str  # as given on the command line
    commit: str  # full hash
    short: str  # short hash: the servers are named NAME@SHORT
    subject: str
    worktree: Path

    @property
    def src(self) -> str:
        return str(self.worktree / "src")

    def name(self, server: str) -> str:
        return f"{server}@{self.short}"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def add_baseline(rev: str, directory: Path) -> Baseline:
    """``git worktree add --detach`` of REV under ``directory`` (the run's temporary directory);
    ``remove_baseline`` takes it away at exit. Raises ValueError if REV is not a commit."""
    found = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode != 0:
        raise ValueError(f"--baseline {rev}: not a commit of {ROOT}")
    commit = found.stdout.strip()
    short = git("rev-parse", "--short", commit).stdout.strip() or commit[:7]
    subject = git("log", "-1", "--format=%s", commit).stdout.strip()
    worktree = directory / f"baseline-{short}"
    added = git("worktree", "add", "--detach", str(worktree), commit)
    if added.returncode != 0:
        raise ValueError(f"git worktree add {worktree} {rev} failed: {added.stderr.strip()}")
    return Baseline(rev, commit, short, subject, worktree)


def remove_baseline(baseline: Baseline) -> None:
    if git("worktree", "remove", "--force", str(baseline.worktree)).returncode != 0:
        shutil.rmtree(baseline.worktree, ignore_errors=True)
        git("worktree", "prune")


def imported_tricorn(src: str = "") -> str:
    """The ``tricorn/__init__.py`` that ``python -m tricorn`` imports with ``server_env(src)``, from the
    same directory as the servers (one ``python -c`` run; the path is the same for ``-m``)."""
    proc = subprocess.run(
        [PY, "-c", "import tricorn, sys; print(tricorn.__file__, file=sys.stderr)"],
        cwd=ROOT,
        env=server_env(src),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = proc.stderr.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ValueError(f"importing tricorn failed: {(lines or ['no output'])[-1]}")
    return lines[-1]


def make_certs(directory: Path) -> Certs:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (and localhost), valid for a day. The key is
    PKCS#8 (``BEGIN PRIVATE KEY``), the one form every server here reads (granian reads no other)."""
    certs = Certs(directory / "cert.pem", directory / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(certs.keyfile), "-out", str(certs.certfile)],
        check=True, capture_output=True,
    )  # fmt: skip
    return certs


def client_context(certs: Certs) -> ssl.SSLContext:
    """Readiness polls and sanity checks verify the server's certificate: it must be the one we made."""
    return ssl.create_default_context(cafile=str(certs.certfile))


def tls_probe(port: int, context: ssl.SSLContext) -> str:
    """The TLS version and cipher a handshake with OpenSSL's defaults gets from the server (wrk sets no
    TLS 1.3 suites of its own, nor does ``client_context``, so wrk negotiates the same)."""
    try:
        with (
            socket.create_connection((HOST, port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=HOST) as tls,
        ):
            cipher = tls.cipher()
            return f"{tls.version()}, {cipher[0] if cipher else '?'}"
    except OSError as exc:
        return f"TLS probe failed: {exc}"


def http_request(
    port: int,
    method: str = "GET",
    path: str = "/",
    body: bytes | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, http.client.HTTPResponse, bytes]:
    conn = (
        http.client.HTTPSConnection(HOST, port, timeout=timeout, context=context)
        if context is not None
        else http.client.HTTPConnection(HOST, port, timeout=timeout)
    )
    try:
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp, data
    finally:
        conn.close()


def wait_ready(
    srv: ServerProcess, port: int, path: str, timeout: float, context: ssl.SSLContext | None = None
) -> str | None:
    """Poll until an HTTP request (HTTPS with ``context``) gets a response. Returns an error string, or
    None."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    last = "no attempt"
    while time.monotonic() < deadline:
        if not srv.alive():
            return f"exited with code {srv.proc.returncode} before becoming ready"
        try:
            http_request(port, "GET", path, timeout=2.0, context=context)
            return None
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    return f"not ready after {timeout:.0f}s (last error: {last})"


# --------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    res["p99_ms"] = _ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"^\s*50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    res["p50_ms"] = _ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    res["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sock = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=False)) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    res["errors"] = {"non2xx": non2xx, **{k: sock.get(k, 0) for k in ("connect", "read", "write", "timeout")}}
    res["errors_total"] = sum(res["errors"].values())
    return res


def url(case: Case, port: int) -> str:
    return f"{'https' if case.tls else 'http'}://{HOST}:{port}{case.path}"


def wrk_argv(
    case: Case,
    port: int,
    threads: int,
    connections: int,
    duration: float,
    latency: bool,
    cpus: str = CLIENT_CPU,
) -> list[str]:
    connections = case.connections or connections
    argv = ["taskset", "-c", cpus, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s"]
    if latency:
        argv.append("--latency")
    if case.wrk_script:
        argv += ["-s", str(BENCH / case.wrk_script)]
    argv += [*case.wrk_args, url(case, port)]
    return argv


def run_wrk(case: Case, port: int, opts: argparse.Namespace) -> dict[str, Any]:
    cpus = getattr(opts, "client_cpus", CLIENT_CPU)  # set per section by bench_one
    if opts.warmup > 0:
        subprocess.run(
            wrk_argv(case, port, opts.threads, opts.connections, opts.warmup, latency=False, cpus=cpus),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=opts.warmup + 60,
        )
    argv = wrk_argv(case, port, opts.threads, opts.connections, opts.duration, latency=True, cpus=cpus)
    pid = getattr(opts, "cpu_pid", 0)  # set by bench_one for a case with cpu_per_request
    before = cpu_ticks(pid) if pid else 0
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=opts.duration + 60)
    res = parse_wrk(proc.stdout)
    if pid and res.get("requests"):
        res["cpu_us"] = (cpu_ticks(pid) - before) * 1e6 / os.sysconf("SC_CLK_TCK") / res["requests"]
    res["wrk_cmd"] = " ".join(argv)
    res["wrk_output"] = proc.stdout + proc.stderr
    if proc.returncode != 0 or res["rps"] is None:
        res["failed"] = f"wrk exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return res


def cpu_ticks(pid: int) -> int:
    """User and system time of ``pid`` and of its children it has reaped, in clock ticks (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime (fields 14-17 of stat)


def ws_argv(
    case: Case, port: int, connections: int, duration: float, warmup: float, cpus: str = CLIENT_CPU
) -> list[str]:
    return [
        "taskset", "-c", cpus, PY, str(BENCH / "wsload.py"), "--port", str(port),
        "--clients", str(case.connections or connections), "--duration", f"{duration:g}",
        "--warmup", f"{warmup:g}", *case.wrk_args,
    ]  # fmt: skip


def run_ws(case: Case, port: int, opts: argparse.Namespace) -> dict[str, Any]:
    """bench/wsload.py: WebSocket echo clients on the client CPU; the warm-up is part of its run."""
    cpus = getattr(opts, "client_cpus", CLIENT_CPU)  # set per section by bench_one
    argv = ws_argv(case, port, opts.connections, opts.duration, opts.warmup, cpus)
    res = run_json_client(argv, "wsload", opts)
    if "failed" not in res and res.get("errors", {}).get("mismatch"):
        res["failed"] = "echo mismatch: the server did not send back what it received"
    return res


def run_json_client(argv: list[str], name: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Run one of bench/'s own load generators, which print one JSON object of results last."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=opts.duration + opts.warmup + 90
    )
    res: dict[str, Any] = {"rps": None}
    try:
        res.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        res["failed"] = f"{name} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
    res["errors_total"] = sum((res.get("errors") or {}).values())
    res["wrk_cmd"] = " ".join(argv)
    res["wrk_output"] = proc.stdout + proc.stderr
    if "failed" not in res and (proc.returncode != 0 or not res["rps"]):
        res["failed"] = f"{name} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return res


def parse_h2load(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    m = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", out, re.M)
    res["rps"] = float(m.group(1)) if m else None
    m = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
        re.M,
    )
    names = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    counts = dict(zip(names, map(int, m.groups()), strict=True)) if m else {}
    res["requests"] = counts.get("done")
    res["succeeded"] = counts.get("succeeded", 0)
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
    non2xx = int(m.group(3)) + int(m.group(4)) if m else 0
    # h2load's "errored" are requests that failed other than by their status (reset streams, closed
    # connections), timeouts included.
    res["errors"] = {"non2xx": non2xx, "errored": counts.get("errored", 0)}
    res["errors_total"] = sum(res["errors"].values())
    protocol = re.search(r"^Application protocol: (\S+)", out, re.M)
    tls = re.search(r"^TLS Protocol: (\S+)", out, re.M)
    cipher = re.search(r"^Cipher: (\S+)", out, re.M)
    res["protocol"] = ", ".join(x.group(1) for x in (protocol, tls, cipher) if x)
    return res


def latency_from_log(path: Path) -> dict[str, float | None]:
    """p50 and p99 in ms from h2load's --log-file (one line per request of the measured run: start
    time in µs, status, µs to the end of the response); h2load itself prints only min/max/mean/sd."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        lines = []
    times = sorted(int(cols[2]) for line in lines if len(cols := line.split("\t")) >= 3)
    if not times:
        return {"p50_ms": None, "p99_ms": None}

    def at(q: float) -> float:
        return times[min(len(times) - 1, int(q * len(times)))] / 1000

    return {"p50_ms": at(0.50), "p99_ms": at(0.99)}


def h2load_argv(case: Case, port: int, *options: str, cpus: str = CLIENT_CPU) -> list[str]:
    # Over TLS, offer h2 alone: a server that does not negotiate it fails instead of falling back to
    # HTTP/1.1 (h2load's default list ends with http/1.1). Cleartext is h2c by prior knowledge.
    alpn = ["--npn-list=h2"] if case.tls else []
    return ["taskset", "-c", cpus, "h2load", *alpn, *options, url(case, port)]


H2LOAD_NOISE = (
    "starting benchmark",
    "spawning thread",
    "progress:",
    "finished in",
    "status codes:",
    "traffic:",
    "min ",
    "time for",
    "time to",
    "req/s",
    # Cleartext is h2c by the client's choice, not negotiated: saying so adds nothing.
    "Application protocol: h2c",
)


def run_h2load(case: Case, port: int, opts: argparse.Namespace) -> dict[str, Any]:
    """h2load on the client CPU: one request on one connection that must come back over HTTP/2, then the
    measured run in duration mode (its warm-up is part of the run and not counted)."""
    cpus = getattr(opts, "client_cpus", CLIENT_CPU)  # set per section by bench_one
    probe = subprocess.run(
        h2load_argv(case, port, "-n1", "-c1", "-m1", cpus=cpus),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    first = parse_h2load(probe.stdout)
    if first["succeeded"] != 1 or not first["protocol"].startswith("h2"):
        # h2load's own messages and its request counts, without the statistics tables.
        said = [
            line.strip()
            for line in (probe.stdout + probe.stderr).splitlines()
            if line.strip() and not line.strip().startswith(H2LOAD_NOISE)
        ]
        return {
            "rps": None,
            "wrk_cmd": " ".join(probe.args),
            "wrk_output": probe.stdout + probe.stderr,
            "failed": f"no HTTP/2 response ({'ALPN h2' if case.tls else 'h2c by prior knowledge'}): "
            + "; ".join(said),
        }
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log") as log:
        # -D and --warm-up-time take whole units: milliseconds.
        options = [
            f"-t{opts.threads}",
            f"-c{case.connections or opts.connections}",
            *case.wrk_args,
            f"-D{round(opts.duration * 1000)}ms",
            *([f"--warm-up-time={round(opts.warmup * 1000)}ms"] if opts.warmup > 0 else []),
            f"--log-file={log.name}",
        ]
        argv = h2load_argv(case, port, *options, cpus=cpus)
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=opts.duration + opts.warmup + 60
        )
        res = parse_h2load(proc.stdout) | latency_from_log(Path(log.name))
    res["wrk_cmd"] = " ".join(argv).replace(log.name, "LOG")
    res["wrk_output"] = proc.stdout + proc.stderr
    if proc.returncode != 0 or not res["rps"] or not res["succeeded"]:
        res["failed"] = f"h2load exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return res


def run_h3(case: Case, port: int, opts: argparse.Namespace) -> dict[str, Any]:
    """bench/h3load.py: aioquic's HTTP/3 client on the client CPU; the warm-up is part of its run."""
    cpus = getattr(opts, "client_cpus", CLIENT_CPU)  # set per section by bench_one
    argv = [
        "taskset", "-c", cpus, PY, str(BENCH / "h3load.py"), "--port", str(port),
        "--connections", str(case.connections or opts.connections), "--duration", f"{opts.duration:g}",
        "--warmup", f"{opts.warmup:g}", "--path", case.path, *case.wrk_args,
    ]  # fmt: skip
    res = run_json_client(argv, "h3load", opts)
    if "failed" not in res and res.get("errors", {}).get("mismatch"):
        res["failed"] = "response mismatch: the first response was not the expected body"
    return res


# Load generators by Case.client.
CLIENTS: dict[str, Callable[[Case, int, argparse.Namespace], dict[str, Any]]] = {
    "wrk": run_wrk,
    "ws": run_ws,
    "h2load": run_h2load,
    "h3": run_h3,
}


# --------------------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    section: str
    case: str
    server: str
    ok: bool = False
    rps: float | None = None
    p99_ms: float | None = None
    p50_ms: float | None = None
    requests: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    errors_total: int = 0
    error: str | None = None  # why this server failed for this case
    cpu_us: float | None = None  # server CPU per request, reaped children included (Case.cpu_per_request)
    protocol: str = ""  # what was negotiated, where the client says (h2load; TLS sanity checks)
    server_cmd: str = ""
    wrk_cmd: str = ""
    wrk_output: str = ""
    runs: list[float] = field(default_factory=list)  # req/s of every run (--rounds), this one the median
    client_cpu: float | None = None  # the load generator's share of its CPU, where it reports it (h3)


def median_result(runs: list[Result]) -> Result:
    """One server's runs of one case as one result: a failed run if any failed, else the run with the
    median rate (its latency and errors are reported), with every run's rate in ``runs``."""
    for r in runs:
        if not r.ok:
            r.runs = [x.rps for x in runs if x.rps is not None]
            return r
    ordered = sorted(runs, key=lambda r: r.rps or 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.runs = [r.rps for r in runs if r.rps is not None]
    return chosen


def bench_one(
    section: Section, case: Case, server: Server, opts: argparse.Namespace, log_dir: Path
) -> Result:
    res = Result(section.key, case.name, server.name)
    port = free_port()
    certs: Certs | None = opts.certs if case.tls else None
    context = client_context(certs) if certs is not None else None
    argv = server.argv(section.interface, case.app, port, certs)
    res.server_cmd = " ".join(["taskset", "-c", section.server_cpus, *argv])
    if server.src:
        res.server_cmd = f"PYTHONPATH={server.src} {res.server_cmd}"
    srv = ServerProcess(
        argv, log_dir, f"{section.key}-{case.name}-{server.name}", section.server_cpus, server.src
    )
    try:
        err = wait_ready(srv, port, case.path, opts.ready_timeout, context)
        if err is None and case.check is not None:
            try:
                status, resp, body = http_request(
                    port, case.check_method, case.path, case.check_body, timeout=10, context=context
                )
                err = case.check(status, resp, body)
                if err:
                    err = f"sanity check failed: {err}"
            except (OSError, http.client.HTTPException) as exc:
                err = f"sanity check failed: {type(exc).__name__}: {exc}"
        if err is not None:
            tail = srv.tail()
            if not srv.alive() and tail:
                err += f": {tail.splitlines()[-1].strip()}"  # usually why it exited
            res.error = f"{err}\n--- server output (tail) ---\n{tail}"
            return res
        section_opts = argparse.Namespace(
            **vars(opts), client_cpus=section.client_cpus, cpu_pid=srv.pid if case.cpu_per_request else 0
        )
        out = CLIENTS[case.client](case, port, section_opts)
        for key in (
            "rps",
            "p99_ms",
            "p50_ms",
            "requests",
            "errors",
            "errors_total",
            "wrk_cmd",
            "wrk_output",
            "cpu_us",
            "client_cpu",
        ):
            setattr(res, key, out.get(key))
        res.protocol = out.get("protocol") or (tls_probe(port, context) if context is not None else "")
        if out.get("failed"):
            res.error = out["failed"]
        elif not srv.alive():
            res.error = f"server died during the run (code {srv.proc.returncode})\n{srv.tail()}"
        else:
            res.ok = True
        return res
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------


def fmt_rps(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_errors(r: Result) -> str:
    if not r.errors:
        return "-"
    if not r.errors_total:
        return "0"
    detail = ", ".join(f"{k} {v}" for k, v in r.errors.items() if v)
    return f"{r.errors_total} ({detail})"


def ratio(ref: Result | None, r: Result) -> str:
    if ref is None or not ref.ok or not r.ok or not ref.rps or not r.rps:
        return "n/a"
    return f"{ref.rps / r.rps:.2f}x"


def shown_servers(section: Section, results: list[Result]) -> list[str]:
    """The section's servers, each followed by its ``--baseline`` twin (``tricorn@REV``) if that has
    results, then any opt-in server (``--servers``) that has results, in run order."""
    ran = list(dict.fromkeys(r.server for r in results))
    out: list[str] = []
    for name in section.servers:
        out += [name, *(s for s in ran if s.startswith(f"{name}@"))]
    return [*out, *(s for s in ran if s not in out)]


def table_rows(section: Section, case: Case, results: list[Result]) -> tuple[list[str], list[list[str]]]:
    ref_name = section.servers[0]
    by_server = {r.server: r for r in results if r.case == case.name}
    ref = by_server.get(ref_name)
    rate = "msg/s" if case.client == "ws" else "req/s"
    header = ["server", rate, "p99 ms", "errors", f"{ref_name} ÷ server"]
    spread = any(len(r.runs) > 1 for r in by_server.values())
    if spread:
        header.insert(2, "runs (min-max)")
    client_cpu = any(r.client_cpu is not None for r in by_server.values())
    if client_cpu:
        header.insert(len(header) - 1, "client CPU")
    cpu = case.cpu_per_request
    if cpu:
        header.insert(-1, "CPU µs/req")
    rows = []
    for name in shown_servers(section, results):
        r = by_server.get(name)
        if r is None:
            continue
        if not r.ok and r.rps is None:
            extra = ["-"] * (client_cpu + cpu)
            rows.append([name, "FAILED", *(["-"] if spread else []), "-", "-", *extra, "n/a"])
            continue
        row = [
            name,
            fmt_rps(r.rps),
            fmt_ms(r.p99_ms),
            fmt_errors(r),
            "—" if name == ref_name else ratio(ref, r),
        ]
        if spread:
            row.insert(2, f"{fmt_rps(min(r.runs))}-{fmt_rps(max(r.runs))}" if r.runs else "-")
        if client_cpu:
            row.insert(len(row) - 1, f"{r.client_cpu:.0%}" if r.client_cpu is not None else "-")
        if cpu:
            row.insert(-1, "-" if r.cpu_us is None else f"{r.cpu_us:,.0f}")
        rows.append(row)
    return header, rows


def reference_notes(section: Section, case: Case, results: list[Result]) -> list[str]:
    """One line per reference server of ``case`` that ran: what share of its ceiling the first server
    reaches."""
    ref_name = section.servers[0]
    by_server = {r.server: r for r in results if r.case == case.name}
    ref = by_server.get(ref_name)
    notes = []
    for name in case.references:
        r = by_server.get(name)
        if r is not None and ref is not None and ref.ok and r.ok and ref.rps and r.rps:
            notes.append(f"{name} is a ceiling, not a peer: {ref_name} reaches {ref.rps / r.rps:.2f} of it")
    return notes


def print_table(section: Section, case: Case, results: list[Result]) -> None:
    header, rows = table_rows(section, case, results)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n== {section.key}/{case.name}: {case.description}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            )
        )
    for note in reference_notes(section, case, results):
        print(f"  {note}")
    for r in results:
        if r.case == case.name and r.error:
            print(f"  {r.server}: {r.error.splitlines()[0]}")
        elif r.case == case.name and r.protocol:
            print(f"  {r.server}: {r.protocol}")


def md_table(section: Section, case: Case, results: list[Result]) -> str:
    header, rows = table_rows(section, case, results)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pkg_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    if name == "nginx" and shutil.which("nginx"):
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr
        return out.strip().rpartition("/")[2] or "unknown"
    if name == "tricorn":
        init = ROOT / "src" / "tricorn" / "__init__.py"
        m = re.search(r'__version__\s*=\s*"([^"]+)"', init.read_text()) if init.exists() else None
        return f"{m.group(1)} (src checkout)" if m else "not installed"
    if shutil.which(name):  # a server that is not a Python package (lighttpd): its own -v line
        out = subprocess.run([name, "-v"], capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr or "?").split()[0]  # "lighttpd/1.4.69 (ssl) - a light..."
    return "not installed"


def git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return out.stdout.strip() or "uncommitted"
    except OSError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_line: list[str] = []
    if shutil.which("wrk"):
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk_line = (wrk_v.stdout + wrk_v.stderr).strip().splitlines()
    h2load_line: list[str] = []
    if shutil.which("h2load"):
        h2load_v = subprocess.run(["h2load", "--version"], capture_output=True, text=True, check=False)
        h2load_line = h2load_v.stdout.strip().splitlines()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "wrk": " ".join(wrk_line[0].split()[:2]) if wrk_line else "wrk",
        "h2load": h2load_line[0] if h2load_line else "h2load",
        # The OpenSSL that tricorn, uvicorn and hypercorn use through this Python's ssl module.
        "openssl": ssl.OPENSSL_VERSION,
        "git": git_rev(),
    }


def rounds_note(options: dict[str, Any]) -> str:
    rounds = options.get("rounds", 1)
    if rounds <= 1:
        return ""
    return (
        f" Each case runs {rounds} rounds, every server once per round and in a rotated order, and the "
        "table gives each server's median run (its latency and errors) with the spread of its runs."
    )


def baseline_note(meta: dict[str, Any], ref: str) -> list[str]:
    b = meta.get("baseline")
    if not b:
        return []
    return [
        f"- **Baseline:** {', '.join(f'`{n}`' for n in b['servers'])}: tricorn at git {b['short']} "
        f"({b['subject']}), in the same run: a detached `git worktree` of that revision (`WORKTREE-{b['short']}`, "
        "removed afterwards), started with the same Python and command with the worktree's `src/` first "
        f"on PYTHONPATH; its ratio is {ref} ÷ {ref}@{b['short']} (above 1.00x: the change is faster)."
    ]


def render_section(
    section: Section, cases: Sequence[Case], results: list[Result], meta: dict[str, Any], chart: str | None
) -> str:
    m = meta["machine"]
    o = meta["options"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    ref = section.servers[0]
    if any(c.tls for c in section.cases):
        versions += f"; Python's ssl: {m.get('openssl', '?')}"
    # The cases' own connection counts where they set one (the WSGI "blocking" case, the CGI section).
    conns = " | ".join(dict.fromkeys(str(c.connections or o["connections"]) for c in cases))
    out = [
        f"## {section.title}",
        "",
        "_Generated by `bench/run.py`; edits between the markers are overwritten._",
        "",
        section.intro,
        "",
        f"- **Date:** {meta['date']} (git {m['git']})",
        f"- **Machine:** {m['nproc']} CPUs (`nproc`), {m['cpu']}, Linux {m['kernel']}",
        f"- **Python:** {m['python_impl']} {m['python']}",
        f"- **Versions:** {versions}",
        f"- **Method:** each server runs "
        f"{section.setup or f'one worker pinned to CPU {section.server_cpus}'} "
        f"(`taskset -c {section.server_cpus}`), access logs off; {m['wrk']} pinned to CPU {section.client_cpus}: "
        f"`taskset -c {section.client_cpus} wrk -t{o['threads']} -c{conns} -d{o['duration']:g}s --latency`, "
        f"{conns} keep-alive connections, after a {o['warmup']:g}s warm-up; each server is started "
        "on a fresh port per case, polled until it answers, sanity-checked with one request, then killed."
        + rounds_note(o),
        f"- **Ratio:** {ref} req/s ÷ that server's req/s (above 1.00x means {ref} is faster).",
        "- **Errors:** wrk non-2xx/3xx responses plus socket errors (connect/read/write/timeout).",
        *baseline_note(meta, ref),
        "",
        "Server commands (`{app}` is the case's app, `P` a free port):",
        "",
    ]
    if all(c.client == "ws" for c in section.cases):
        # WebSocket sections are loaded by bench/wsload.py, not wrk.
        ws_method = (
            f"- **Method:** each server runs one worker pinned to CPU {section.server_cpus} "
            f"(`taskset -c {section.server_cpus}`), access logs off; `bench/wsload.py` (asyncio + uvloop, "
            f"raw frames, one message in flight per connection) pinned to CPU {section.client_cpus}, "
            f"{o['duration']:g}s measured after a {o['warmup']:g}s warm-up; each server is started on a fresh "
            "port per case, polled until it answers HTTP, and every connection's first echo is compared with "
            "what was sent." + rounds_note(o)
        )
        out = [
            ws_method
            if line.startswith("- **Method:**")
            else "- **Ratio:** tricorn msg/s ÷ that server's msg/s (above 1.00x means tricorn is faster)."
            if line.startswith("- **Ratio:**")
            else "- **Errors:** connections closed before the end of the run, and echoes that differed."
            if line.startswith("- **Errors:**")
            else line
            for line in out
        ]
    if all(c.client == "h2load" for c in section.cases):
        load = " | ".join(
            dict.fromkeys(
                f"-c{c.connections or o['connections']} {' '.join(c.wrk_args)}" for c in section.cases
            )
        )
        h2_method = (
            f"- **Method:** each server runs one worker pinned to CPU {section.server_cpus} "
            f"(`taskset -c {section.server_cpus}`), access logs off; {m.get('h2load', 'h2load')} pinned to CPU "
            f"{section.client_cpus}: `taskset -c {section.client_cpus} h2load -t{o['threads']} {load} "
            f"-D{o['duration']:g}s --warm-up-time={o['warmup']:g}s URL`, "
            "`--npn-list=h2` over TLS so that no server falls back to HTTP/1.1; each server is started on a "
            "fresh port per case, polled until it answers HTTP/1.1, sanity-checked with one HTTP/1.1 request "
            "and one HTTP/2 request (which must succeed over h2c or ALPN h2), then killed. p50/p99 come from "
            "h2load's `--log-file` (per request, measured run only)." + rounds_note(o)
        )
        out = [
            h2_method
            if line.startswith("- **Method:**")
            else "- **Errors:** h2load 4xx/5xx responses plus requests that errored (reset streams, closed "
            "connections, timeouts)."
            if line.startswith("- **Errors:**")
            else line
            for line in out
        ]
    if all(c.client == "h3" for c in section.cases):
        h3_method = (
            f"- **Method:** each server runs one worker pinned to CPU {section.server_cpus} "
            f"(`taskset -c {section.server_cpus}`), access logs off, TLS and HTTP/3 on the same port number "
            f"with a self-signed ECDSA P-256 certificate made with `openssl` at run time; `bench/h3load.py` "
            f"(aioquic's client, asyncio) pinned to CPU {section.client_cpus}, a closed loop of requests per "
            f"stream, {o['duration']:g}s measured after a {o['warmup']:g}s warm-up; each server is started on "
            "a fresh port per case, polled until it answers HTTPS on TCP, sanity-checked with one request, and "
            "the first HTTP/3 response is compared with the expected body. **client CPU** is the client's CPU "
            "time over the measured run's wall time." + rounds_note(o)
        )
        out = [
            h3_method
            if line.startswith("- **Method:**")
            else "- **Errors:** requests whose stream was reset, whose connection closed under them, that got "
            "a status other than 2xx, or that were not answered within 10 s (a lost datagram is sent again by "
            "QUIC: it is an error only if the request fails)."
            if line.startswith("- **Errors:**")
            else line
            for line in out
        ]
    commands: dict[str, dict[str, list[str]]] = {}  # server -> command -> cases
    for r in results:
        if not r.server_cmd:
            continue
        cmd = r.server_cmd.replace(PY, "python").replace(str(ROOT) + "/", "")
        cmd = re.sub(r"bench\.apps:\w+", "{app}", cmd)
        cmd = re.sub(r"(--port |-b 127\.0\.0\.1:|--quic-bind 127\.0\.0\.1:)\d+", r"\g<1>P", cmd)
        cmd = re.sub(r"(--port |-b 127\.0\.0\.1:|BENCH_PORT=)\d+", r"\g<1>P", cmd)
        cmd = re.sub(r"\S+/cert\.pem", "CERT", re.sub(r"\S+/key\.pem", "KEY", cmd))
        cmd = re.sub(r"PYTHONPATH=\S+/baseline-(\w+)/src", r"PYTHONPATH=WORKTREE-\1/src", cmd)
        commands.setdefault(r.server, {}).setdefault(cmd, []).append(r.case)
    for server, by_cmd in commands.items():
        for cmd, on in by_cmd.items():
            label = f"{server} ({', '.join(on)})" if len(by_cmd) > 1 else server
            out.append(f"- {label}: `{cmd}`")
    if any(c.tls for c in section.cases):
        out += ["", "`CERT`, `KEY`: the run's self-signed certificate and its PKCS#8 key."]
    out.append("")
    for case in cases:
        out += [
            f"### {case.name}",
            "",
            case.description + (f" (`bench/{case.wrk_script}`)" if case.wrk_script else ""),
            "",
        ]
        out += [md_table(section, case, results), ""]
        out += [f"- {note}." for note in reference_notes(section, case, results)]
        for r in results:
            if r.case == case.name and r.error:
                first = r.error.splitlines()[0]
                out.append(f"- {r.server}: {first}")
        negotiated = [f"{r.server} {r.protocol}" for r in results if r.case == case.name and r.protocol]
        if negotiated:
            out.append(f"- Protocol: {'; '.join(negotiated)}.")
        out.append("")
    if chart:
        out += [f"![{section.title} requests/sec per case and server]({chart})", ""]
    return "\n".join(out).replace("\n\n\n", "\n\n")


def write_chart(section: Section, cases: Sequence[Case], results: list[Result], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: no chart", file=sys.stderr)
        return False
    servers = [s for s in shown_servers(section, results) if any(r.server == s for r in results)]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(cases), figsize=(3.4 * len(cases) + 0.6, 3.8), squeeze=False)
    width = 0.8 / max(len(servers), 1)
    for ax, case in zip(axes[0], cases, strict=False):
        by = {r.server: r for r in results if r.case == case.name}
        for i, s in enumerate(servers):
            r = by.get(s)
            v = r.rps if r is not None and r.ok and r.rps else 0.0
            bar = ax.bar(i * width, v, width * 0.95, color=colors[i % len(colors)], label=s)
            ax.bar_label(bar, labels=[f"{v:,.0f}" if v else "failed"], fontsize=7, rotation=90, padding=2)
        ax.set_title(case.name)
        ax.set_xticks([])
        ax.set_ylabel("requests/sec" if ax is axes[0][0] else "")
        ax.margins(y=0.25)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(servers), frameon=False)
    setup = section.setup or "1 worker on 1 CPU"
    fig.suptitle(f"{section.title}: requests/sec, {setup} (higher is better)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


DOC_INTRO = """# Benchmarks

How tricorn compares with other Python application servers on the same machine, in the same
run. Reproduce with `.venv/bin/python bench/run.py` (see `bench/README.md`). Absolute numbers
depend on the machine; the ratios are what to compare.

The sections between `<!-- bench:NAME:start -->` / `<!-- bench:NAME:end -->` markers are
generated; everything outside them is hand-written and kept.
"""


def update_doc(section_key: str, body: str) -> None:
    start, end = f"<!-- bench:{section_key}:start -->", f"<!-- bench:{section_key}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = DOC_FILE.read_text() if DOC_FILE.exists() else DOC_INTRO
    if start in text and end in text and text.index(start) < text.index(end):
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.mkdir(parents=True, exist_ok=True)
    DOC_FILE.write_text(text)


# --------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------


def ensure_py_spy() -> str:
    exe = Path(PY).parent / "py-spy"
    if exe.exists():
        return str(exe)
    if found := shutil.which("py-spy"):
        return found
    print("py-spy missing: installing it into this environment", flush=True)
    subprocess.run([PY, "-m", "pip", "install", "py-spy"], check=True)
    return str(exe) if exe.exists() else "py-spy"


def profile(
    section: Section,
    cases: Sequence[Case],
    servers: Sequence[Server],
    opts: argparse.Namespace,
    log_dir: Path,
) -> int:
    py_spy = ensure_py_spy()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    rc = 0
    for case in cases:
        for server in servers:
            port = free_port()
            certs: Certs | None = opts.certs if case.tls else None
            srv = ServerProcess(
                server.argv(section.interface, case.app, port, certs),
                log_dir,
                f"profile-{case.name}-{server.name}",
                src=server.src,
            )
            try:
                context = client_context(certs) if certs is not None else None
                err = wait_ready(srv, port, case.path, opts.ready_timeout, context)
                if err:
                    print(f"{server.name}/{case.name}: {err}\n{srv.tail()}", file=sys.stderr)
                    rc = 1
                    continue
                svg = RESULTS / f"profile-{section.key}-{case.name}-{server.name}-{stamp}.svg"
                # py-spy attaches to the running server; it runs on the client CPU with the load.
                spy_cmd = [
                    "taskset",
                    "-c",
                    CLIENT_CPU,
                    py_spy,
                    "record",
                    "--pid",
                    str(srv.pid),
                    "--duration",
                    str(int(opts.duration) + 1),
                    "--rate",
                    str(opts.profile_rate),
                    "--format",
                    "flamegraph",
                    "--output",
                    str(svg),
                ]
                if opts.profile_native:
                    spy_cmd.append("--native")
                spy = subprocess.Popen(spy_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    # The case's own load generator (wrk, wsload, h2load), with no warm-up: py-spy's
                    # duration covers the measured run.
                    load_opts = argparse.Namespace(**(vars(opts) | {"warmup": 0, "client_cpus": CLIENT_CPU}))
                    res = CLIENTS[case.client](case, port, load_opts)
                    spy_out, _ = spy.communicate(timeout=opts.duration + 60)
                finally:
                    if spy.poll() is None:
                        spy.send_signal(signal.SIGINT)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            spy.wait(timeout=10)
                        if spy.poll() is None:
                            spy.kill()
                print(
                    f"{server.name}/{case.name}: {fmt_rps(res['rps'])} req/s under py-spy (sampling slows it down)"
                )
                if spy.returncode == 0 and svg.exists():
                    print(f"  flamegraph: {svg.relative_to(ROOT)}")
                else:
                    print(
                        f"  py-spy failed (exit {spy.returncode}):\n{spy_out.strip()[-1000:]}",
                        file=sys.stderr,
                    )
                    rc = 1
            finally:
                srv.stop()
    return rc


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--section",
        nargs="+",
        default=list(SECTIONS),
        choices=list(SECTIONS),
        help="sections to run (default: all)",
    )
    p.add_argument("--only", nargs="+", metavar="CASE", help="only these cases (e.g. hello stream post1m)")
    p.add_argument("--servers", help="comma-separated servers (default: all of the section's)")
    p.add_argument(
        "--duration", type=float, default=10, help="seconds of measurement per server and case (10)"
    )
    p.add_argument("--warmup", type=float, default=2, help="seconds of warm-up load before measuring (2)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs per server and case, interleaved; the median is reported (1)",
    )
    p.add_argument("--connections", type=int, default=64, help="wrk keep-alive connections (64)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1: wrk has one CPU)")
    p.add_argument(
        "--ready-timeout", type=float, default=20, help="seconds to wait for a server to answer (20)"
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run tricorn as it is at git revision REV, as the server tricorn@SHORT beside the "
        "others (a detached git worktree of REV, removed at exit); its ratio is tricorn ÷ tricorn@SHORT",
    )
    p.add_argument("--no-write", action="store_true", help="print only: no results JSON, no docs update")
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead of benchmarking, record py-spy flamegraphs (SVG in bench/results/) of the "
        "selected cases; servers default to tricorn",
    )
    p.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second (250)")
    p.add_argument("--profile-native", action="store_true", help="py-spy --native (C extension frames)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    chosen = [c for k in opts.section for c in SECTIONS[k].cases if not opts.only or c.name in opts.only]
    tools = {"taskset": "util-linux"}
    tools |= {"wrk": "wrk"} if any(c.client == "wrk" for c in chosen) else {}
    tools |= {"h2load": "nghttp2-client"} if any(c.client == "h2load" for c in chosen) else {}
    tools |= {"openssl": "openssl"} if any(c.tls for c in chosen) else {}
    tools |= {"nginx": "nginx"} if "static" in opts.section else {}
    missing = {cmd: pkg for cmd, pkg in tools.items() if not shutil.which(cmd)}
    if missing:
        print(
            f"{', '.join(missing)} required (apt-get install {' '.join(missing.values())})", file=sys.stderr
        )
        return 2
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 CPUs; server and wrk will share a CPU", file=sys.stderr)

    wanted_servers = [s.strip() for s in opts.servers.split(",")] if opts.servers else None
    if opts.profile and wanted_servers is None:
        wanted_servers = ["tricorn"]
    unknown = set(wanted_servers or []) - set(SERVERS)
    named = [SERVERS[n] for n in wanted_servers or () if n in SERVERS]
    if opts.baseline and named and not any(s.package == "tricorn" for s in named):
        print("--baseline runs beside tricorn: name tricorn in --servers too", file=sys.stderr)
        return 2
    if unknown:
        print(
            f"unknown server(s): {', '.join(sorted(unknown))}; known: {', '.join(SERVERS)}", file=sys.stderr
        )
        return 2
    all_cases = {c.name for k in opts.section for c in SECTIONS[k].cases}
    if opts.only and set(opts.only) - all_cases:
        print(
            f"unknown case(s): {', '.join(sorted(set(opts.only) - all_cases))}; known: {', '.join(sorted(all_cases))}",
            file=sys.stderr,
        )
        return 2

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    log_dir = Path(tempfile.mkdtemp(prefix="tricorn-bench-"))
    rc = 0
    baseline: Baseline | None = None
    opts.baseline_meta = None
    try:
        # One certificate for the whole run, in the temporary directory removed at exit.
        opts.certs = make_certs(log_dir) if any(c.tls for c in chosen) else None
        global STATIC_ROOT
        STATIC_ROOT = make_static_root(log_dir)
        if opts.baseline:
            try:
                baseline = add_baseline(opts.baseline, log_dir)
            except ValueError as exc:
                print(exc, file=sys.stderr)
                return 2
            # Every tricorn server (tricorn, tricorn-w1, ...) gets a twin NAME@SHORT with the same
            # commands, run right after it.
            for server in [s for s in SERVERS.values() if s.package == "tricorn"]:
                twin = replace(server, name=baseline.name(server.name), src=baseline.src)
                SERVERS[twin.name] = twin
        plan: list[tuple[Section, list[Case], list[Server]]] = []
        for key in opts.section:
            section = SECTIONS[key]
            cases = [c for c in section.cases if not opts.only or c.name in opts.only]
            names = [s for s in section.servers if wanted_servers is None or s in wanted_servers]
            names += [s for s in wanted_servers or () if s not in section.servers]  # opt-in servers
            if wanted_servers is None:
                names += [r for r in dict.fromkeys(r for c in cases for r in c.references) if r not in names]
            if baseline is not None:
                names = [m for n in names for m in (n, baseline.name(n)) if m in SERVERS]
            servers = [SERVERS[n] for n in names if section.interface in SERVERS[n].commands]
            if cases and servers:
                plan.append((section, cases, servers))
        # Which tricorn each tricorn server imports: this checkout's, or the baseline worktree's.
        imports: dict[str, list[str]] = {}
        for name in dict.fromkeys(
            s.name for _, _, servers in plan for s in servers if s.package == "tricorn"
        ):
            imports.setdefault(SERVERS[name].src, []).append(name)
        for src, names in imports.items():
            try:
                path = imported_tricorn(src)
            except ValueError as exc:
                print(f"{', '.join(names)}: {exc}", file=sys.stderr)
                return 2
            print(f"{', '.join(names)}: {path}" + (f" (git {baseline.short})" if src and baseline else ""))
            if baseline is not None and src == baseline.src:
                if not Path(path).resolve().is_relative_to(baseline.worktree.resolve()):
                    print(f"{names[0]} would import {path}, not the worktree's tricorn", file=sys.stderr)
                    return 2
                opts.baseline_meta = {
                    "rev": baseline.rev,
                    "commit": baseline.commit,
                    "short": baseline.short,
                    "subject": baseline.subject,
                    "servers": names,
                    "tricorn_file": path,
                }
        for section, cases, servers in plan:
            if opts.profile:
                rc |= profile(section, cases, servers, opts, log_dir)
                continue
            rc |= run_section(section, cases, servers, opts, log_dir)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping servers", file=sys.stderr)
        rc = 130
    finally:
        kill_all()
        if baseline is not None:
            remove_baseline(baseline)
        shutil.rmtree(log_dir, ignore_errors=True)
    return rc


def run_section(
    section: Section, cases: list[Case], servers: list[Server], opts: argparse.Namespace, log_dir: Path
) -> int:
    load = {
        "ws": lambda c: f"bench/wsload.py -d{opts.duration:g}s",
        "h3": lambda c: (
            f"bench/h3load.py --connections {c.connections or opts.connections} "
            f"{' '.join(c.wrk_args[:2])} --duration {opts.duration:g}"
        ),
        "h2load": lambda c: (
            f"h2load -t{opts.threads} -c{c.connections or opts.connections} "
            f"{' '.join(c.wrk_args)} -D{opts.duration:g}s"
        ),
        "wrk": lambda c: f"wrk -t{opts.threads} -c{c.connections or opts.connections} -d{opts.duration:g}s",
    }
    print(
        f"# {section.title}: servers {', '.join(s.name for s in servers)}; cases {', '.join(c.name for c in cases)}; "
        + ", ".join(dict.fromkeys(load[c.client](c) for c in cases))
        + f" (+{opts.warmup:g}s warm-up)",
        flush=True,
    )
    results: list[Result] = []
    references = {r for c in cases for r in c.references}
    for case in cases:
        # A reference server runs only for the cases that name it (it may serve nothing else).
        case_servers = [s for s in servers if s.name not in references or s.name in case.references]
        if not case_servers:
            continue
        runs: dict[str, list[Result]] = {server.name: [] for server in case_servers}
        for round_no in range(opts.rounds):
            # Interleaved and rotated, so a slow spell of the machine does not fall on one server only.
            shift = round_no % len(case_servers)
            for server in case_servers[shift:] + case_servers[:shift]:
                label = f" (round {round_no + 1})" if opts.rounds > 1 else ""
                print(f"  {case.name} / {server.name}{label} ...", end=" ", flush=True)
                r = bench_one(section, case, server, opts, log_dir)
                runs[server.name].append(r)
                if r.ok:
                    print(f"{fmt_rps(r.rps)} {'msg' if case.client == 'ws' else 'req'}/s", flush=True)
                else:
                    print("FAILED", flush=True)
                    print("    " + (r.error or "").replace("\n", "\n    "), flush=True)
        results += [median_result(runs[server.name]) for server in case_servers]
        print_table(section, case, results)
        print(flush=True)

    failed = [r for r in results if not r.ok]
    if opts.no_write:
        return 1 if failed and len(failed) == len(results) else 0

    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": {s.package: pkg_version(s.package) for s in servers}
        | {p: pkg_version(p) for p in ("uvloop", "httptools")},
        "options": {k: getattr(opts, k) for k in ("duration", "warmup", "connections", "threads", "rounds")},
        "section": section.key,
        "cases": [c.name for c in cases],
        "servers": [s.name for s in servers],
    }
    if opts.baseline_meta and any(s.src for s in servers):
        meta["baseline"] = opts.baseline_meta | {"servers": [s.name for s in servers if s.src]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{section.key}-{stamp}.json"
    out.write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2))
    print(f"results: {out.relative_to(ROOT)}")

    chart_name = f"benchmarks-{section.key}.png"
    chart = chart_name if write_chart(section, cases, results, DOCS / chart_name) else None
    update_doc(section.key, render_section(section, cases, results, meta, chart))
    print(f"docs: {DOC_FILE.relative_to(ROOT)}" + (f", docs/{chart_name}" if chart else ""))
    return 1 if failed and len(failed) == len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
