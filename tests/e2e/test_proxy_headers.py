"""Trusted proxy headers end to end: a real tricorn, real clients (httpx over HTTP/1.1 and HTTP/2, websockets,
raw sockets), apps that report what they see (tests/apps/proxy_apps.py), with Starlette's and Werkzeug's own
URL building. The tests' client plays the proxy: it connects from 127.0.0.1, trusted by default."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import TricornProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

ASGI = "tests.apps.proxy_apps:app"
WSGI = "tests.apps.proxy_apps:wsgi_app"
DEADLINE = 30.0

CHAIN = {
    "X-Forwarded-For": "198.51.100.9, 203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example.com",
}


@pytest.fixture
def servers(tricorn: type[TricornProcess]) -> type[TricornProcess]:
    return tricorn


def start(servers: type[TricornProcess], *args: str, port: int | None = None) -> TricornProcess:
    server = servers(list(args))  # stopped at the end of the test
    if port is not None:
        server.port, server.url = port, f"http://127.0.0.1:{port}"
    return server.wait_ready()


def get(server: TricornProcess, headers: dict[str, str] | None = None, http2: bool = False) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, http1=not http2, http2=http2, timeout=DEADLINE) as client:
        response = client.get("/path?q=1", headers=headers)
        assert response.status_code == 200
        if http2:
            assert response.http_version == "HTTP/2"
        return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_asgi_sees_the_client_scheme_and_host_the_proxy_reports(
    servers: type[TricornProcess], http2: bool
) -> None:
    server = start(servers, ASGI)
    seen = get(server, CHAIN, http2)
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "https"
    assert seen["host"] == "shop.example.com"
    assert seen["url"] == "https://shop.example.com/path?q=1"  # what Starlette rebuilds
    # the access log shows the client the proxy reported
    wait_for(lambda: "203.0.113.7 - - [" in server.output(), what="the access line")
    assert "127.0.0.1 - - [" not in server.output()


def test_x_forwarded_port_and_rfc7239_forwarded(servers: type[TricornProcess]) -> None:
    server = start(servers, ASGI)
    seen = get(
        server, {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "example.com", "X-Forwarded-Port": "8443"}
    )
    assert seen["url"] == "https://example.com:8443/path?q=1"
    seen = get(server, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=example.org, for=127.0.0.1'})
    assert seen["client"] == ["2001:db8::7", 4711]
    assert seen["url"] == "https://example.org/path?q=1"
    seen = get(server, {"Forwarded": "for=_hidden;proto=http"})
    assert seen["client"] is None
    # both families from a trusted peer: X-Forwarded-* wins, a client-sent Forwarded cannot spoof
    seen = get(server, {"Forwarded": "for=1.2.3.4;proto=https", "X-Forwarded-For": "203.0.113.7"})
    assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "http")


def test_untrusted_peer_and_no_proxy_headers_leave_the_socket_peer(servers: type[TricornProcess]) -> None:
    for args in (["--forwarded-allow-ips", "10.0.0.0/8"], ["--no-proxy-headers"]):
        server = start(servers, ASGI, *args)
        seen = get(server, CHAIN)
        assert seen["client"][0] == "127.0.0.1" and seen["client"][1] > 0
        assert (seen["scheme"], seen["host"]) == ("http", f"127.0.0.1:{server.port}")


def test_malformed_values_fall_back_to_the_socket_peer_with_one_debug_line(
    servers: type[TricornProcess],
) -> None:
    server = start(servers, ASGI, "--log-level", "debug")
    for headers in (
        {"X-Forwarded-For": "203.0.113.7, <script>"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Host": "evil.com/x"},
        {"Forwarded": 'for="[::1'},
    ):
        seen = get(server, headers)
        assert seen["client"][0] == "127.0.0.1"
        assert (seen["scheme"], seen["host"]) == ("http", f"127.0.0.1:{server.port}")
    wait_for(lambda: server.output().count("proxy headers ignored") == 4, what="4 debug lines")
    assert "<script>" in server.output() and "Traceback" not in server.output()


def test_wsgi_environ(servers: type[TricornProcess]) -> None:
    server = start(servers, WSGI)
    seen = get(server, {**CHAIN, "X-Forwarded-Port": "8443"})
    assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("203.0.113.7", "0")
    assert (seen["wsgi.url_scheme"], seen["HTTPS"]) == ("https", "on")
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == (
        "shop.example.com:8443",
        "shop.example.com",
        "8443",
    )
    assert seen["url"] == "https://shop.example.com:8443/path?q=1"  # what Werkzeug rebuilds
    seen = get(server, CHAIN, http2=True)
    assert (seen["REMOTE_ADDR"], seen["url"]) == ("203.0.113.7", "https://shop.example.com/path?q=1")
    plain = get(server, {"X-Forwarded-For": "bogus"})
    assert plain["REMOTE_ADDR"] == "127.0.0.1" and plain["wsgi.url_scheme"] == "http"


def test_websocket_scope(servers: type[TricornProcess]) -> None:
    server = start(servers, ASGI)

    async def talk() -> dict[str, Any]:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with connect(url, additional_headers=CHAIN) as ws:
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    seen = asyncio.run(asyncio.wait_for(talk(), DEADLINE))
    assert seen["client"] == ["203.0.113.7", 0]
    assert seen["scheme"] == "wss"
    assert seen["url"] == "wss://shop.example.com/ws"
    # the access line, written when the session ends, shows the client the proxy reported
    wait_for(lambda: '/ws HTTP/1.1" 101' in server.output(), what="the access line")
    assert "203.0.113.7 - - [" in server.output() and "127.0.0.1 - - [" not in server.output()


def test_unix_socket_peers_are_trusted_only_when_listed(
    servers: type[TricornProcess], tmp_path: Path
) -> None:
    for allow, trusted in (("127.0.0.1,::1", False), ("unix", True)):
        path = tmp_path / f"{allow.replace(',', '_')}.sock"
        port = free_port()
        start(
            servers,
            ASGI,
            "--bind",
            f"unix:{path}",
            "--bind",
            f"127.0.0.1:{port}",
            "--forwarded-allow-ips",
            allow,
            port=port,
        )
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://app.local", timeout=DEADLINE) as client:
            seen = client.get("/", headers=CHAIN).json()
        if trusted:
            assert (seen["client"], seen["url"]) == (["203.0.113.7", 0], "https://shop.example.com/")
        else:
            assert (seen["client"], seen["url"]) == (None, "http://app.local/")


def test_one_trust_decision_per_connection_on_a_keep_alive_connection(servers: type[TricornProcess]) -> None:
    # Pipelined requests with and without headers on one trusted connection: each is resolved on its own.
    server = start(servers, ASGI)
    requests = (
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /c HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.8\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(requests)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    bodies = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies.append(json.loads(rest[:length]))
        data = rest[length:]
    assert [b["client"][0] for b in bodies] == ["203.0.113.7", "127.0.0.1", "203.0.113.8"]


def test_wsgi_malformed_value_is_one_debug_line_and_the_access_line_shows_the_resolved_client(
    servers: type[TricornProcess],
) -> None:
    # The environ and the access line share one resolution: one debug line for a malformed value.
    server = start(servers, WSGI, "--log-level", "debug")
    assert get(server, {"X-Forwarded-Proto": "javascript"})["REMOTE_ADDR"] == "127.0.0.1"
    assert get(server, CHAIN)["REMOTE_ADDR"] == "203.0.113.7"
    wait_for(lambda: "203.0.113.7 - - [" in server.output(), what="the access line of the proxied request")
    assert server.output().count("proxy headers ignored") == 1


@pytest.mark.parametrize("app", [ASGI, WSGI], ids=["asgi", "wsgi"])
def test_repeated_heads_on_one_connection_are_resolved_every_time(
    servers: type[TricornProcess], app: str
) -> None:
    """The fast lane remembers the field blocks it has read, and whether each holds a proxy field: a head
    repeated on a keep-alive connection is resolved every time it carries one, and only then."""
    server = start(servers, app)
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        for _ in range(3):
            for headers, expected in ((CHAIN, "203.0.113.7"), ({}, "127.0.0.1")):
                seen = client.get("/path?q=1", headers=headers).json()
                assert (seen["client"][0] if app == ASGI else seen["REMOTE_ADDR"]) == expected, headers
