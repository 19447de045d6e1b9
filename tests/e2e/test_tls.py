"""TLS end to end: certificates made at test time (trustme), real clients (httpx, curl, ssl sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.conftest import TricornProcess, wait_for

pytestmark = pytest.mark.e2e


class Certs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert = root / "cert.pem"
        self.key = root / "key.pem"
        self.ca_file = root / "ca.pem"
        self.server.cert_chain_pems[0].write_to_path(str(self.cert))
        self.server.private_key_pem.write_to_path(str(self.key))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        client = self.ca.issue_cert("client@example.com", common_name="test client")
        self.client_cert = root / "client.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_cert))

    def args(self) -> list[str]:
        return ["--ssl-certfile", str(self.cert), "--ssl-keyfile", str(self.key)]

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


def start(*args: str) -> TricornProcess:
    return TricornProcess(list(args)).wait_ready()


@pytest.fixture
def servers() -> Iterator[list[TricornProcess]]:
    started: list[TricornProcess] = []
    yield started
    for server in started:
        server.close()


def log_has(server: TricornProcess, text: str) -> bool:
    return text in server.output()


@pytest.mark.parametrize("http2", [False, True])
def test_asgi_over_tls_has_https_scheme_and_tls_extension(
    certs: Certs, servers: list[TricornProcess], http2: bool
) -> None:
    server = start("tests.apps.tls_apps:app", *certs.args())
    servers.append(server)
    with httpx.Client(verify=certs.client_context(), http1=not http2, http2=http2) as client:
        response = client.get(f"https://127.0.0.1:{server.port}/")
    assert response.status_code == 200
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    info = response.json()
    assert info["scheme"] == "https"
    assert info["http_version"] == ("2" if http2 else "1.1")
    tls = info["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None


def test_wsgi_over_tls_has_https_environ(certs: Certs, servers: list[TricornProcess]) -> None:
    server = start("tests.apps.tls_apps:wsgi_app", *certs.args())
    servers.append(server)
    for http2 in (False, True):
        with httpx.Client(verify=certs.client_context(), http1=not http2, http2=http2) as client:
            info = client.get(f"https://127.0.0.1:{server.port}/").json()
        assert info["url_scheme"] == "https" and info["HTTPS"] == "on"
        assert info["SERVER_PROTOCOL"] == ("HTTP/2" if http2 else "HTTP/1.1")


def test_curl_negotiates_h2_by_alpn_and_http11_when_asked(
    certs: Certs, servers: list[TricornProcess]
) -> None:
    server = start("tests.apps.tls_apps:app", *certs.args())
    servers.append(server)
    url = f"https://127.0.0.1:{server.port}/"
    for flag, version in (("--http2", "2"), ("--http1.1", "1.1")):
        out = subprocess.run(
            ["curl", "-sS", flag, "--cacert", str(certs.ca_file), "-w", "\n%{http_version}", url],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
        assert out.rsplit("\n", 1)[1] == version


def test_no_http2_offers_only_http11(certs: Certs, servers: list[TricornProcess]) -> None:
    server = start("tests.apps.tls_apps:app", *certs.args(), "--no-http2")
    servers.append(server)
    context = certs.client_context(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", server.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_mutual_tls_gives_the_client_certificate(certs: Certs, servers: list[TricornProcess]) -> None:
    server = start(
        "tests.apps.tls_apps:app",
        *certs.args(),
        "--ssl-ca-certs",
        str(certs.ca_file),
        "--ssl-cert-reqs",
        "required",
    )
    servers.append(server)
    context = certs.client_context()
    context.load_cert_chain(str(certs.client_cert))
    with httpx.Client(verify=context) as client:
        info = client.get(f"https://127.0.0.1:{server.port}/").json()
    tls = info["tls"]
    assert len(tls["client_cert_chain"]) >= 1
    assert "CN=test client" in tls["client_cert_name"]
    # Without a certificate the handshake fails, one line in the log, and nothing reaches the app.
    with (
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        httpx.Client(verify=certs.client_context()) as client,
    ):
        client.get(f"https://127.0.0.1:{server.port}/")
    wait_for(
        lambda: "certificate" in server.output().split("listening on", 1)[1], what="the handshake log line"
    )


def test_plain_http_on_tls_port_is_closed_with_one_line(certs: Certs, servers: list[TricornProcess]) -> None:
    server = start("tests.apps.tls_apps:app", *certs.args())
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert b"HTTP/1.1 200" not in data
    wait_for(lambda: log_has(server, "plain HTTP request on a TLS port"), what="the log line")
    # The server serves on.
    with httpx.Client(verify=certs.client_context()) as client:
        assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200


def test_stalled_handshake_is_cut(certs: Certs, servers: list[TricornProcess]) -> None:
    server = start("tests.apps.tls_apps:app", *certs.args(), "--timeout-ssl-handshake", "0.5")
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        started = time.monotonic()
        assert sock.recv(4096) == b""
        assert time.monotonic() - started < 8
    wait_for(lambda: log_has(server, "TLS handshake timed out"), what="the log line")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: ["--ssl-certfile", str(c.root / "missing.pem")], "ssl_certfile"),
        (lambda c: ["--ssl-certfile", str(c.cert), "--ssl-keyfile", str(c.ca_file)], "ssl_keyfile"),
        (lambda c: ["--ssl-keyfile", str(c.key)], "ssl_keyfile"),
    ],
    ids=["missing-cert", "not-a-key", "key-without-cert"],
)
def test_bad_tls_settings_stop_startup_with_one_line(certs: Certs, change: object, expected: str) -> None:
    proc = TricornProcess(["tests.apps.tls_apps:app", *change(certs)])  # type: ignore[operator]
    try:
        assert proc.wait(20) == 2
        output = proc.output()
        assert expected in output
        assert "Traceback" not in output
    finally:
        proc.close()


@pytest.mark.parametrize("workers", [2, 1])  # one: the single process restarts in place
def test_hup_reload_serves_the_renewed_certificate(
    certs: Certs, tmp_path: Path, servers: list[TricornProcess], workers: int
) -> None:
    ca = trustme.CA()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = ca.issue_cert("127.0.0.1")
    first.cert_chain_pems[0].write_to_path(str(cert))
    first.private_key_pem.write_to_path(str(key))
    server = start(
        "tests.apps.tls_apps:app",
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
        "--workers",
        str(workers),
    )
    servers.append(server)

    def served_cert() -> bytes:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", server.port)) as raw, context.wrap_socket(raw) as sock:
            der = sock.getpeercert(binary_form=True)
            assert der is not None
            return der

    before = served_cert()
    renewed = ca.issue_cert("127.0.0.1")
    renewed.cert_chain_pems[0].write_to_path(str(cert))
    renewed.private_key_pem.write_to_path(str(key))
    server.send_signal(1)  # SIGHUP
    expected = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    assert before != expected
    wait_for(lambda: served_cert() == expected, what="the renewed certificate to be served")


def test_hup_with_broken_certificate_files_keeps_serving_the_old_one(
    certs: Certs, tmp_path: Path, servers: list[TricornProcess]
) -> None:
    """A renewal gone wrong (a key that no longer matches) is caught by the master when it reads the files
    again on HUP: one line naming the setting, no reload, the workers in place go on serving."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    certs.server.cert_chain_pems[0].write_to_path(str(cert))
    certs.server.private_key_pem.write_to_path(str(key))
    server = start(
        "tests.apps.tls_apps:app", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--workers", "2"
    )
    servers.append(server)
    wait_for(lambda: server.output().count("worker ready") >= 2, what="both workers")
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(key))  # not cert.pem's key
    server.send_signal(1)  # SIGHUP
    wait_for(lambda: "not reloading" in server.output(), what="the refused reload")
    line = next(line for line in server.output().splitlines() if "not reloading" in line)
    assert "ssl_keyfile" in line, line
    with httpx.Client(verify=certs.client_context()) as client:
        assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200
    assert server.output().count("worker ready") == 2  # no new worker was started (and failed)


def _tls_client(certs: Certs, raw: socket.socket) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A client TLS session over ``raw``, its handshake done, run by hand so the test decides when each
    side ends."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = certs.client_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    raw.sendall(outgoing.read())
    return tls, incoming, outgoing


def _read_all(tls: ssl.SSLObject, incoming: ssl.MemoryBIO, raw: socket.socket) -> bytes:
    """Everything the server sends until it closes, decrypted."""
    received = b""
    while data := raw.recv(65536):
        incoming.write(data)
        try:
            while chunk := tls.read(65536):
                received += chunk
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
    return received


@pytest.mark.parametrize("how", ["fin", "close_notify"])
def test_tls_half_closed_client_still_gets_its_response(
    certs: Certs, servers: list[TricornProcess], how: str
) -> None:
    """A TLS client that ends its side after its request, with a TCP FIN or with a TLS close_notify
    (a half-close in TLS 1.3, RFC 8446 §6.1), gets its response, as a cleartext one does (RFC 9112 §9.6);
    then the server closes, with no warning in the log, and serves on."""
    server = start("tests.apps.basic:app", *certs.args())
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        tls, incoming, outgoing = _tls_client(certs, raw)
        tls.write(b"GET /work?delay=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.sendall(outgoing.read())
        with httpx.Client(verify=certs.client_context()) as probe:
            url = f"https://127.0.0.1:{server.port}/events"
            wait_for(lambda: "work started" in probe.get(url).json()["events"], what="the app to start")
        if how == "close_notify":
            with pytest.raises(ssl.SSLWantReadError):
                tls.unwrap()  # writes close_notify, then would wait for the server's
            raw.sendall(outgoing.read())
        else:
            raw.shutdown(socket.SHUT_WR)
        response = _read_all(tls, incoming, raw)
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    assert response.endswith(b"work done")
    assert "eof_received" not in server.output()
    assert "Traceback" not in server.output()
    with httpx.Client(verify=certs.client_context()) as client:
        assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200


def test_corrupt_record_after_the_handshake_is_one_line(certs: Certs, servers: list[TricornProcess]) -> None:
    """A record that fails to decrypt (bit flipped on the wire) ends that connection with one log line
    and no traceback; the server serves on."""
    server = start("tests.apps.basic:app", *certs.args())
    servers.append(server)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        tls, _, outgoing = _tls_client(certs, raw)
        tls.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        record = bytearray(outgoing.read())
        record[-1] ^= 0xFF  # the authentication tag no longer matches
        raw.sendall(bytes(record))
        while raw.recv(65536):  # the server's alert, then its close
            pass
    wait_for(lambda: "TLS error, connection closed" in server.output(), what="the log line")
    assert server.output().count("TLS error") == 1
    assert "Traceback" not in server.output()
    with httpx.Client(verify=certs.client_context()) as client:
        assert client.get(f"https://127.0.0.1:{server.port}/").status_code == 200


def test_websocket_over_tls_has_wss_scheme_and_tls_extension(
    certs: Certs, servers: list[TricornProcess]
) -> None:
    server = start("tests.apps.proxy_apps:app", *certs.args())
    servers.append(server)

    async def talk() -> dict[str, Any]:
        async with connect(f"wss://127.0.0.1:{server.port}/ws", ssl=certs.client_context()) as ws:
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    seen = asyncio.run(asyncio.wait_for(talk(), 30))
    assert seen["scheme"] == "wss"
    assert seen["url"] == f"wss://127.0.0.1:{server.port}/ws"
    tls = seen["tls"]
    assert tls is not None and tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
