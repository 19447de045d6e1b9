"""The PROXY protocol end to end over raw sockets: headers whole, byte by byte, before HTTP and before TLS;
every malformed case closed at once with one log line, never reaching the app, the server serving on."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import TricornProcess, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.proxy_apps:app"
DEADLINE = 30.0
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET /x HTTP/1.1\r\nHost: svc\r\n\r\n"


def v2(command: int = 1, family: int = 0x11, body: bytes = b"") -> bytes:
    return SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def inet4(src: str = "203.0.113.7", dst: str = "192.0.2.1", sport: int = 4711, dport: int = 443) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


@pytest.fixture(scope="module")
def server() -> Iterator[TricornProcess]:
    proc = TricornProcess([APP, "--proxy-protocol", "--timeout-request-header", "1"]).wait_ready()
    yield proc
    proc.close()


def exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        for part in parts:
            sock.sendall(part)
            if pause:
                time.sleep(pause)  # let each piece arrive on its own (the header in fragments)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def body(response: bytes) -> dict[str, Any]:
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    return json.loads(response.split(b"\r\n\r\n", 1)[1])  # type: ignore[no-any-return]


def test_v1_names_the_client_and_server(server: TricornProcess) -> None:
    seen = body(exchange(server.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n" + REQUEST))
    assert (seen["client"], seen["server"]) == (["203.0.113.7", 4711], ["192.0.2.1", 443])
    seen = body(exchange(server.port, b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n", REQUEST))
    assert (seen["client"], seen["server"]) == (["2001:db8::7", 4711], ["2001:db8::1", 443])
    seen = body(exchange(server.port, b"PROXY UNKNOWN\r\n" + REQUEST))
    assert seen["client"][0] == "127.0.0.1"  # the connection's own addresses
    wait_for(lambda: "203.0.113.7 - - [" in server.output(), what="the access line")


def test_header_in_fragments_and_keep_alive(server: TricornProcess) -> None:
    header = b"PROXY TCP4 203.0.113.8 192.0.2.1 4711 443\r\n"
    pieces = [header[i : i + 1] for i in range(len(header))]
    seen = body(exchange(server.port, *pieces, REQUEST, pause=0.005))
    assert seen["client"] == ["203.0.113.8", 4711]
    header2 = v2(body=inet4("203.0.113.9") + tlv(0x02, b"shop.example.com"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(header2[:5])
        time.sleep(0.05)
        sock.sendall(header2[5:20])
        time.sleep(0.05)
        sock.sendall(header2[20:] + REQUEST + REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b'"client": ["203.0.113.9", 4711]') == 2  # read once, for every request after it


def test_v2_proxy_local_and_ssl_tlv(server: TricornProcess) -> None:
    seen = body(exchange(server.port, v2(body=inet4()) + REQUEST))
    assert seen["client"] == ["203.0.113.7", 4711] and seen["tls"] is None
    seen = body(exchange(server.port, v2(command=0, family=0) + REQUEST))
    assert seen["client"][0] == "127.0.0.1"
    ssl_tlv = bytes([0x01 | 0x02]) + struct.pack("!I", 0)
    ssl_tlv += tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_128_GCM_SHA256") + tlv(0x22, b"alice")
    seen = body(exchange(server.port, v2(body=inet4() + tlv(0x20, ssl_tlv)) + REQUEST))
    assert seen["scheme"] == "https" and seen["url"] == "https://svc/x"
    assert seen["tls"] == {
        "client_cert_chain": [],
        "client_cert_name": "CN=alice",
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }


MALFORMED = [
    (b"GET /x HTTP/1.1\r\nHost: svc\r\n\r\n", "no PROXY protocol header"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 4711\r\n" + REQUEST, "4 fields"),
    (b"PROXY TCP4 203.0.113.777 192.0.2.1 4711 443\r\n" + REQUEST, "bad IPv4 address"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 99999\r\n" + REQUEST, "bad port"),
    (b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\n" + REQUEST, "not ended by CRLF"),
    (b"PROXY UNKNOWN " + b"f" * 120 + b"\r\n" + REQUEST, "longer than 107"),
    (b"\r\n\r\n\x00\r\nQUIX\n" + REQUEST, "signature"),
    (v2(body=inet4()[:8]) + REQUEST, "shorter than its address block"),
    (v2(body=inet4() + b"\x02\x00\xff") + REQUEST, "overruns"),
    (SIG + b"\x21\x11\x00", "in the middle of its header"),  # truncated, then the client's EOF
    (b"", "before sending a header"),
]


@pytest.mark.parametrize(("data", "reason"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_header_closes_at_once_with_one_line(
    server: TricornProcess, data: bytes, reason: str
) -> None:
    before = server.output().count(reason)
    try:
        answer = exchange(server.port, data)
    except OSError:  # closed with the client's bytes unread: a reset (perhaps before our shutdown)
        answer = b""
    assert answer == b""  # nothing answered: the app never ran
    wait_for(lambda: server.output().count(reason) == before + 1, what=f"one line saying {reason!r}")
    assert "Traceback" not in server.output()
    body(exchange(server.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n" + REQUEST))  # serving on


def test_a_header_that_never_comes_is_timed_out(server: TricornProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
        sock.sendall(b"PROXY TCP4 203.0")
        assert sock.recv(100) == b""  # closed by the server after --timeout-request-header
    wait_for(lambda: "no PROXY protocol header within 1s" in server.output(), what="the timeout line")


def test_peer_outside_proxy_allow_from_is_refused(tmp_path: Path) -> None:
    proc = TricornProcess([APP, "--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8"]).wait_ready()
    try:
        with pytest.raises(OSError):  # closed at once, the request unread: a reset
            exchange(proc.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n" + REQUEST)
        wait_for(lambda: "peer not in --proxy-allow-from" in proc.output(), what="the refusal line")
    finally:
        proc.close()


def test_before_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    args = ["--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
    proc = TricornProcess([APP, "--proxy-protocol", *args]).wait_ready()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        for header in (b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n", v2(body=inet4())):
            with socket.create_connection(("127.0.0.1", proc.port), timeout=DEADLINE) as raw:
                raw.sendall(header)
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                    data = b""
                    while chunk := sock.recv(65536):
                        data += chunk
            seen = body(data)
            assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 4711], "https")
            assert seen["tls"]["tls_version"] in (0x0303, 0x0304)  # the real handshake's
        # a TLS ClientHello where the header should be: refused before any handshake
        with (
            socket.create_connection(("127.0.0.1", proc.port), timeout=DEADLINE) as raw,
            pytest.raises(OSError),  # (ssl.SSLError is one)
        ):
            context.wrap_socket(raw, server_hostname="127.0.0.1")
        wait_for(
            lambda: "no PROXY protocol header (the connection starts with" in proc.output(), what="the line"
        )
    finally:
        proc.close()


def test_pre_fork_workers_read_the_header_too() -> None:
    proc = TricornProcess([APP, "--proxy-protocol", "--workers", "2"]).wait_ready()
    try:
        for _ in range(4):
            seen = body(exchange(proc.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 443\r\n" + REQUEST))
            assert seen["client"] == ["203.0.113.7", 4711]
    finally:
        proc.close()
