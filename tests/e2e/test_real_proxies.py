"""tricorn behind real proxies from Debian: nginx (X-Forwarded-* headers, over TCP and a unix socket, upstream
keep-alive, WebSocket proxying) and haproxy (send-proxy, send-proxy-v2 with its TLVs, TLS ended by haproxy),
configured as docs/deployment.md says.

The client connects to the proxy from 127.0.0.2, an address no setting trusts (Linux routes all of
127.0.0.0/8 to the loopback), so it is a client from elsewhere to tricorn; the proxy connects from
127.0.0.1, trusted by default."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.conftest import TricornProcess, die_with_parent, free_port, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (apt install nginx)"),
]

APP = "tests.apps.proxy_apps:app"
CLIENT = "127.0.0.2"  # the client's address, trusted by no one
DEADLINE = 30.0


class Daemon:
    """A proxy process in the foreground, stopped (group and all) at the end of the test."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                die_with_parent(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> Daemon:
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args} exited: {self.log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_for(listening, what="the proxy listening")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


@pytest.fixture
def stack() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for item in reversed(started):
        item.stop() if isinstance(item, Daemon) else item.close()


def tricorn(stack: list[Any], *args: str, unix: Path | None = None) -> TricornProcess:
    port = free_port()
    binds = ["--bind", f"127.0.0.1:{port}"] + (["--bind", f"unix:{unix}"] if unix else [])
    server = TricornProcess([APP, *binds, *args])
    server.port, server.url = port, f"http://127.0.0.1:{port}"
    stack.append(server)
    return server.wait_ready()


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=CLIENT, **kwargs), timeout=DEADLINE)


# -- nginx ------------------------------------------------------------------------------------------------

# The location block of docs/deployment.md, for one upstream.
NGINX_LOCATION = """
        location {path} {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_read_timeout 60s;
        }}
"""


def nginx(stack: list[Any], tmp: Path, tcp_port: int, unix: Path) -> Daemon:
    port = free_port()
    temp = "\n".join(
        f"    {kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}
    upstream tricorn_tcp {{
        server 127.0.0.1:{tcp_port};
        keepalive 8;
    }}
    upstream tricorn_unix {{
        server unix:{unix};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        {NGINX_LOCATION.format(path="/", upstream="tricorn_tcp")}
        {NGINX_LOCATION.format(path="/unix/", upstream="tricorn_unix")}
    }}
}}
"""
    conf = tmp / "nginx.conf"
    conf.write_text(config)
    daemon = Daemon(["nginx", "-p", str(tmp), "-c", str(conf)], port, tmp / "nginx.out")
    stack.append(daemon)
    return daemon.wait_ready()


@pytest.fixture
def behind_nginx(stack: list[Any], tmp_path: Path) -> tuple[TricornProcess, Daemon]:
    unix = tmp_path / "tricorn.sock"
    server = tricorn(stack, "--forwarded-allow-ips", "127.0.0.1,::1,unix", unix=unix)
    return server, nginx(stack, tmp_path, server.port, unix)


def established(port: int) -> int:
    """Established TCP connections to ``port`` (the upstream connections nginx holds open)."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.splitlines())


@pytest.mark.parametrize("path", ["/", "/unix/"], ids=["tcp", "unix"])
def test_nginx_forwards_client_scheme_and_host(
    behind_nginx: tuple[TricornProcess, Daemon], path: str
) -> None:
    server, proxy = behind_nginx
    with client() as http:
        # the client's own X-Forwarded-For and Forwarded, passed on by nginx, are not believed
        spoof = {
            "X-Forwarded-For": "6.6.6.6",
            "Forwarded": "for=6.6.6.6;proto=https",
            "Host": "shop.example.com",
        }
        seen = http.get(f"http://127.0.0.1:{proxy.port}{path}page?x=1", headers=spoof).json()
    assert seen["client"][0] == CLIENT and seen["client"][1] == 0
    assert seen["scheme"] == "http"
    assert seen["host"] == f"shop.example.com:{proxy.port}"
    assert seen["url"] == f"http://shop.example.com:{proxy.port}{path}page?x=1"  # as the client typed it
    wait_for(lambda: f"{CLIENT} - - [" in server.output(), what="the access line with the client")


def test_nginx_upstream_keep_alive(behind_nginx: tuple[TricornProcess, Daemon]) -> None:
    server, proxy = behind_nginx
    with client() as http:
        for _ in range(20):
            assert http.get(f"http://127.0.0.1:{proxy.port}/").json()["client"][0] == CLIENT
    # 20 requests over nginx's kept-alive upstream connection(s): one, not twenty
    assert 1 <= established(server.port) <= 2


def test_nginx_websocket(behind_nginx: tuple[TricornProcess, Daemon]) -> None:
    _, proxy = behind_nginx

    async def talk(path: str) -> dict[str, Any]:
        url = f"ws://127.0.0.1:{proxy.port}{path}ws"
        async with connect(url, local_addr=(CLIENT, 0)) as ws:
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    for path in ("/", "/unix/"):
        seen = asyncio.run(asyncio.wait_for(talk(path), DEADLINE))
        assert seen["client"][0] == CLIENT
        assert (seen["scheme"], seen["url"]) == ("ws", f"ws://127.0.0.1:{proxy.port}{path}ws")


def test_nginx_to_an_untrusted_unix_socket(stack: list[Any], tmp_path: Path) -> None:
    # Without `unix` in --forwarded-allow-ips, whatever reaches the socket is not believed.
    unix = tmp_path / "tricorn.sock"
    server = tricorn(stack, unix=unix)
    proxy = nginx(stack, tmp_path, server.port, unix)
    with client() as http:
        seen = http.get(f"http://127.0.0.1:{proxy.port}/unix/").json()
    assert seen["client"] is None  # a unix-socket peer, as the socket says


# -- haproxy ----------------------------------------------------------------------------------------------


def haproxy(
    stack: list[Any],
    tmp: Path,
    backend: int,
    server_options: str,
    bind: str = "",
    mode: str = "tcp",
    frontend: str = "",
) -> Daemon:
    port = free_port()
    config = f"""
global
    maxconn 256
defaults
    mode {mode}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend edge
    bind 127.0.0.1:{port} {bind}
    {frontend}
    default_backend app
backend app
    server tricorn 127.0.0.1:{backend} {server_options}
"""
    conf = tmp / f"haproxy-{port}.cfg"
    conf.write_text(config)
    daemon = Daemon(["haproxy", "-db", "-f", str(conf)], port, tmp / "haproxy.out")
    stack.append(daemon)
    return daemon.wait_ready()


needs_haproxy = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")


@needs_haproxy
@pytest.mark.parametrize("option", ["send-proxy", "send-proxy-v2"])
def test_haproxy_send_proxy(stack: list[Any], tmp_path: Path, option: str) -> None:
    server = tricorn(stack, "--proxy-protocol")
    proxy = haproxy(stack, tmp_path, server.port, option)
    with client() as http:
        for _ in range(3):  # keep-alive: the header was read once, it holds for every request
            seen = http.get(f"http://127.0.0.1:{proxy.port}/x").json()
            assert seen["client"][0] == CLIENT and seen["client"][1] > 0
            assert seen["server"] == ["127.0.0.1", proxy.port]  # where the client connected
            assert seen["scheme"] == "http"
    wait_for(lambda: f"{CLIENT} - - [" in server.output(), what="the access line with the client")
    # a client going around the proxy, straight to tricorn, is refused (and could not send a header)
    with client() as http, pytest.raises(httpx.TransportError):
        http.get(f"http://127.0.0.1:{server.port}/")
    wait_for(
        lambda: f"{CLIENT}:" in server.output() and "peer not in --proxy-allow-from" in server.output(),
        what="the refusal",
    )


@needs_haproxy
def test_haproxy_ending_tls_sends_its_tlvs(stack: list[Any], tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("shop.example.com")
    pem = tmp_path / "haproxy.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    user = ca.issue_cert("alice@example.com", common_name="alice")
    user_pem = tmp_path / "alice.pem"
    user.private_key_and_cert_chain_pem.write_to_path(str(user_pem))

    server = tricorn(stack, "--proxy-protocol")
    proxy = haproxy(
        stack,
        tmp_path,
        server.port,
        "send-proxy-v2 proxy-v2-options ssl,cert-cn,ssl-cipher,authority,unique-id,crc32c",
        bind=f"ssl crt {pem} ca-file {ca_file} verify optional",
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.load_cert_chain(str(user_pem))
    with (
        socket.create_connection(
            ("127.0.0.1", proxy.port), source_address=(CLIENT, 0), timeout=DEADLINE
        ) as raw,
        context.wrap_socket(raw, server_hostname="shop.example.com") as sock,
    ):
        sock.sendall(b"GET /x HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        version = sock.version()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    seen = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert seen["client"][0] == CLIENT
    assert (seen["scheme"], seen["url"]) == ("https", "https://shop.example.com/x")
    tls = seen["tls"]
    assert tls["tls_version"] == {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303}[version]
    assert isinstance(tls["cipher_suite"], int)
    assert (tls["client_cert_name"], tls["client_cert_error"]) == ("CN=alice", None)
    # the CRC32C checked out, nothing was refused (but the test's readiness probe, which sends nothing)
    refused = [line for line in server.output().splitlines() if "PROXY protocol" in line]
    assert all("before sending a header" in line for line in refused), refused


@needs_haproxy
def test_haproxy_http_mode_forwardfor(stack: list[Any], tmp_path: Path) -> None:
    server = tricorn(stack)
    proxy = haproxy(
        stack,
        tmp_path,
        server.port,
        "",
        mode="http",
        frontend="option forwardfor\n    http-request set-header X-Forwarded-Proto https",
    )
    with client() as http:
        seen = http.get(f"http://127.0.0.1:{proxy.port}/x", headers={"X-Forwarded-For": "6.6.6.6"}).json()
    assert seen["client"][0] == CLIENT and seen["scheme"] == "https"
