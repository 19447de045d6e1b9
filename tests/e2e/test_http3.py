"""HTTP/3 end to end: a real tricorn serving QUIC on loopback UDP, aioquic's HTTP/3 client (tests/h3_client.py)
and niquests as clients, certificates made at test time (trustme)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TricornProcess, free_port, wait_for
from tests.h3_client import H3Client, H3Response

pytestmark = pytest.mark.e2e

H3_NO_ERROR = 0x100
H3_INTERNAL_ERROR = 0x102
H3_MESSAGE_ERROR = 0x10E
H3_REQUEST_CANCELLED = 0x10C


class Certs:
    def __init__(self, root: Path) -> None:
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        self.cert, self.key, self.ca = root / "cert.pem", root / "key.pem", root / "ca.pem"
        server.cert_chain_pems[0].write_to_path(str(self.cert))
        server.private_key_pem.write_to_path(str(self.key))
        ca.cert_pem.write_to_path(str(self.ca))

    def args(self) -> list[str]:
        return ["--ssl-certfile", str(self.cert), "--ssl-keyfile", str(self.key)]

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("h3certs"))


def start_h3(
    certs: Certs, *args: str, app: str = "tests.apps.h3_apps:app", wait: bool = True
) -> TricornProcess:
    """tricorn with TLS on a TCP port and HTTP/3 on the same port number over UDP."""
    port = free_port()
    proc = TricornProcess(
        [app, "--bind", f"127.0.0.1:{port}", "--quic-bind", f"127.0.0.1:{port}", *certs.args(), *args]
    )
    proc.port = port
    proc.url = f"https://127.0.0.1:{port}"
    if wait:
        proc.wait_ready()
        wait_for(lambda: "HTTP/3 over QUIC" in proc.output(), what="the QUIC listener")
    return proc


@pytest.fixture(scope="module")
def server(certs: Certs) -> Iterator[TricornProcess]:
    proc = start_h3(certs, "--quic-idle-timeout", "2", "--limit-request-body", "2000000")
    yield proc
    proc.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def client(server: TricornProcess, certs: Certs, **kwargs: Any) -> H3Client:
    return H3Client(server.port, str(certs.ca), **kwargs)


def events(server: TricornProcess, certs: Certs) -> list[str]:
    response = httpx.get(f"{server.url}/events", verify=certs.context())
    return list(response.json()["events"])


# -- serving


def test_echo_scope_is_http3_https_with_tls(server: TricornProcess, certs: Certs) -> None:
    async def go() -> tuple[H3Response, H3Response]:
        async with client(server, certs) as c:
            echo = await c.request("POST", "/echo?a=1", [(b"x-test", b"yes")], body=b"ping")
            tls = await c.request("GET", "/tls")
            return echo, tls

    echo, tls = run(go())
    assert echo.status == 200
    info = json.loads(echo.body)
    assert info["http_version"] == "3"
    assert info["scheme"] == "https"
    assert info["body"] == "ping"
    assert info["query_string"] == "a=1"
    assert ["host", "localhost"] in info["headers"] and ["x-test", "yes"] in info["headers"]
    assert "tls" in info["extensions"]
    assert info["server"] == ["127.0.0.1", server.port]
    assert info["client"][0] == "127.0.0.1"
    extension = json.loads(tls.body)
    assert extension["tls_version"] == 0x0304
    assert "BEGIN CERTIFICATE" in extension["server_cert"]
    assert isinstance(extension["cipher_suite"], int)


def test_metrics_time_each_request_from_its_start(certs: Certs) -> None:
    """--metrics without an access log: an HTTP/3 request's duration is measured from when it began (it
    once counted from the clock's origin, every request past the largest bucket)."""
    metrics_port = free_port()
    proc = start_h3(certs, "--metrics-bind", f"127.0.0.1:{metrics_port}", "--no-access-log")
    try:

        async def go() -> H3Response:
            async with client(proc, certs) as c:
                return await c.request("GET", "/")

        assert run(go()).status == 200
        page = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        samples = {
            (sample.name, sample.labels.get("le")): sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.labels.get("http_request_method") == "GET"
            and sample.labels.get("http_response_status_code") == "200"
        }
        assert samples[("http_server_request_duration_seconds_count", None)] == 1
        assert samples[("http_server_request_duration_seconds_bucket", "10.0")] == 1
    finally:
        proc.close()


def test_tcp_responses_advertise_http3(server: TricornProcess, certs: Certs) -> None:
    for http2 in (False, True):
        with httpx.Client(verify=certs.context(), http2=http2) as http:
            response = http.get(f"{server.url}/")
        assert response.headers["alt-svc"] == f'h3=":{server.port}"; ma=86400'
    # An app that sends its own date still gets the advertisement, once.
    with httpx.Client(verify=certs.context()) as http:
        response = http.get(f"{server.url}/status/200")
    assert response.headers.get_list("alt-svc") == [f'h3=":{server.port}"; ma=86400']


def test_no_alt_svc_without_quic(tricorn: type[TricornProcess]) -> None:
    proc = tricorn(["tests.apps.basic:app"]).wait_ready()
    assert "alt-svc" not in httpx.get(f"{proc.url}/").headers


def test_upload_1mb_and_download_5mb_streamed(server: TricornProcess, certs: Certs) -> None:
    body = os.urandom(1024 * 1024)

    async def go() -> tuple[H3Response, H3Response]:
        async with client(server, certs) as c:
            up = await c.request("POST", "/upload", body=body)
            down = await c.request("GET", f"/big?size={5 * 1024 * 1024}")
            return up, down

    up, down = run(go())
    assert up.status == 200
    result = json.loads(up.body)
    assert result["bytes"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert down.status == 200
    assert len(down.body) == 5 * 1024 * 1024 and down.body == b"x" * len(down.body)


def test_twenty_concurrent_streams(server: TricornProcess, certs: Certs) -> None:
    async def go() -> list[H3Response]:
        async with client(server, certs) as c:
            return await asyncio.gather(
                *(c.request("POST", f"/echo?i={i}", body=b"%d" % i) for i in range(20))
            )

    responses = run(go())
    assert [json.loads(r.body)["body"] for r in responses] == [str(i) for i in range(20)]


def test_trailers_both_ways_and_early_hints(server: TricornProcess, certs: Certs) -> None:
    async def go() -> tuple[H3Response, H3Response, H3Response]:
        async with client(server, certs) as c:
            trailers = await c.request("GET", "/trailers")
            hints = await c.request("GET", "/hints")
            sent = await c.request(
                "POST", "/request-trailers", body=b"abc" * 1000, trailers=[(b"x-sum", b"1")]
            )
            return trailers, hints, sent

    trailers, hints, sent = run(go())
    assert trailers.body == b"part1 part2"
    assert (b"x-checksum", b"abc123") in trailers.trailers
    assert hints.informational and hints.informational[0][0] == 103
    assert (b"link", b"</a.css>; rel=preload; as=style") in hints.informational[0][1]
    assert hints.body == b"hinted"
    assert json.loads(sent.body) == {"bytes": 3000}


def test_connection_specific_fields_are_never_sent(server: TricornProcess, certs: Certs) -> None:
    async def go() -> H3Response:
        async with client(server, certs) as c:
            return await c.request("GET", "/conn-headers")

    response = run(go())
    names = {name for name, _ in response.headers}
    assert not names & {b"connection", b"keep-alive", b"transfer-encoding", b"proxy-connection", b"upgrade"}
    assert (b"x-kept", b"yes") in response.headers


def test_app_error_is_a_clean_500_and_after_start_a_reset(server: TricornProcess, certs: Certs) -> None:
    async def go() -> tuple[H3Response, H3Response, H3Response]:
        async with client(server, certs) as c:
            before = await c.request("GET", "/error")
            after = await c.request("GET", "/error-after-start")
            again = await c.request("GET", "/")  # the connection serves on
            return before, after, again

    before, after, again = run(go())
    assert before.status == 500 and before.body == b"internal server error\n"
    assert not {name for name, _ in before.headers} & {b"connection"}
    assert after.reset_code == H3_INTERNAL_ERROR
    assert again.body == b"hello, world"
    assert "Traceback" in server.output()


# -- clients that go away


def test_reset_stream_is_http_disconnect_for_the_app(server: TricornProcess, certs: Certs) -> None:
    async def go() -> H3Response:
        async with client(server, certs) as c:
            stream_id, _ = c.open_stream("POST", "/hold?id=h3reset", end_stream=False)
            wait = asyncio.get_running_loop().time() + 10
            while "hold started h3reset" not in events(server, certs):
                assert asyncio.get_running_loop().time() < wait
                await asyncio.sleep(0.05)
            c.reset(stream_id)
            return await c.request("GET", "/")

    assert run(go()).body == b"hello, world"
    wait_for(lambda: "disconnect h3reset" in events(server, certs), what="http.disconnect after RESET_STREAM")


def test_vanished_client_is_http_disconnect_after_the_idle_timeout(
    server: TricornProcess, certs: Certs
) -> None:
    async def go() -> None:
        c = client(server, certs)
        await c.__aenter__()
        c.open_stream("GET", "/hold?id=h3gone", end_stream=True)
        wait = asyncio.get_running_loop().time() + 10
        while "hold started h3gone" not in events(server, certs):
            assert asyncio.get_running_loop().time() < wait
            await asyncio.sleep(0.05)
        c.vanish()

    run(go())
    wait_for(
        lambda: "disconnect h3gone" in events(server, certs), what="http.disconnect after the idle timeout"
    )


def test_garbage_datagrams_are_dropped_and_others_served(server: TricornProcess, certs: Certs) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for payload in (
            b"",
            b"\x00",
            os.urandom(50),
            b"\xc0" + os.urandom(1300),  # a long header that does not parse
            b"\xc0\x00\x00\x00\x01\x08" + os.urandom(20),  # a truncated Initial
            b"\x40" + os.urandom(100),  # a short header for no connection
        ):
            sock.sendto(payload, ("127.0.0.1", server.port))

    async def go() -> H3Response:
        async with client(server, certs) as c:
            return await c.request("GET", "/")

    assert run(go()).body == b"hello, world"
    wait_for(lambda: "datagram(s) dropped" in server.output(), what="the dropped datagrams summary")


def test_unknown_version_gets_version_negotiation(server: TricornProcess) -> None:
    dcid, scid = os.urandom(8), os.urandom(8)
    packet = b"\xc0" + b"\x1a\x2a\x3a\x4a" + bytes([8]) + dcid + bytes([8]) + scid
    packet += b"\x00" * (1200 - len(packet))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(packet, ("127.0.0.1", server.port))
        answer = sock.recv(2048)
    assert answer[0] & 0x80 and answer[1:5] == b"\x00\x00\x00\x00"  # version 0: Version Negotiation
    assert answer[6 : 6 + 8] == scid  # echoed back, RFC 9000 §17.2.1
    assert b"\x00\x00\x00\x01" in answer[6 + 8 + 1 + 8 :]  # QUIC v1 offered


# -- hostile requests


def test_bad_requests_get_the_same_status_as_over_http2(server: TricornProcess, certs: Certs) -> None:
    async def go() -> list[H3Response]:
        async with client(server, certs) as c:
            results = []
            for method, path, headers in (
                ("FOO", "/", []),
                ("GET", "/" + "a" * 9000, []),
                ("GET", "/", [(b"x-many", b"v")] * 200),
            ):
                results.append(await c.request(method, path, headers))
            # A body announced over --limit-request-body is refused before it comes (the stream stays open).
            _, too_big = c.open_stream("POST", "/upload", [(b"content-length", b"999999999999")])
            await asyncio.wait_for(too_big.done.wait(), 10)
            results.append(too_big)
            # ... and one that goes over it as it comes: 413 as soon as it does.
            over = await c.request("POST", "/upload", body=b"x" * 2_100_000)
            results.append(over)
            results.append(await c.request("GET", "/"))
            return results

    statuses = [r.status for r in run(go())]
    assert statuses == [501, 414, 431, 413, 413, 200]


def test_malformed_header_closes_with_h3_message_error(server: TricornProcess, certs: Certs) -> None:
    async def go() -> tuple[int | None, H3Response]:
        async with client(server, certs) as c:
            c.open_stream("GET", "/", [(b"X-Upper", b"no")], end_stream=True)
            for _ in range(200):
                if c.protocol.terminated is not None:
                    break
                await asyncio.sleep(0.02)
            code = c.protocol.terminated.error_code if c.protocol.terminated else None
        async with client(server, certs) as c2:
            return code, await c2.request("GET", "/")

    code, response = run(go())
    assert code == H3_MESSAGE_ERROR
    assert response.body == b"hello, world"


def test_niquests_speaks_http3(server: TricornProcess, certs: Certs) -> None:
    niquests = pytest.importorskip("niquests")
    with niquests.Session(disable_http2=True, disable_http1=True) as session:
        session.quic_cache_layer.add_domain("127.0.0.1", server.port)
        response = session.post(f"{server.url}/echo", data=b"from niquests", verify=str(certs.ca))
    assert response.status_code == 200
    assert response.http_version == 30
    assert response.json()["http_version"] == "3"
    assert response.json()["body"] == "from niquests"


# -- settings


def test_quic_bind_without_certificate_is_one_line(tricorn: type[TricornProcess]) -> None:
    proc = tricorn(["tests.apps.basic:app", "--quic-bind", "127.0.0.1:0"])
    assert proc.wait() == 2
    assert "quic_bind: HTTP/3 needs a certificate" in proc.output()
    assert "Traceback" not in proc.output()


def test_quic_bind_without_aioquic_says_what_to_install(certs: Certs, tmp_path: Path) -> None:
    # A directory on the path whose aioquic package cannot be imported stands for the extra not installed.
    (tmp_path / "aioquic").mkdir()
    (tmp_path / "aioquic" / "__init__.py").write_text("raise ImportError('not installed')\n")
    port = free_port()
    proc = TricornProcess(
        ["tests.apps.basic:app", "--port", str(port), "--quic-bind", f"127.0.0.1:{port}", *certs.args()],
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])])},
    )
    try:
        assert proc.wait() == 2
        lines = [line for line in proc.output().splitlines() if "aioquic" in line]
        assert len(lines) == 1 and "pip install tricorn[http3]" in lines[0]
        assert "Traceback" not in proc.output()
    finally:
        proc.close()


def test_wsgi_app_over_http3(certs: Certs) -> None:
    proc = start_h3(certs, app="tests.apps.wsgi_basic:app")
    try:

        async def go() -> H3Response:
            async with client(proc, certs) as c:
                return await c.request("POST", "/echo", body=b"wsgi body")

        response = run(go())
        assert response.status == 200
        assert b"wsgi body" in response.body
    finally:
        proc.close()


def test_mounted_apps_are_dispatched_over_http3(certs: Certs) -> None:
    # The dispatch table (io/dispatch.py) routes HTTP/3 streams as it routes HTTP/1.1 and HTTP/2 requests.
    proc = start_h3(certs, "--mount", "/w=tests.apps.wsgi_basic:app")
    try:

        async def go() -> tuple[H3Response, H3Response]:
            async with client(proc, certs) as c:
                return await c.request("POST", "/w/echo", body=b"mounted"), await c.request("GET", "/")

        mounted, root = run(go())
        assert mounted.status == 200 and b"mounted" in mounted.body
        assert root.body == b"hello, world"
    finally:
        proc.close()


def test_quic_retry_validates_the_address_first(certs: Certs) -> None:
    # --quic-retry: the first Initial gets a Retry with a token, the connection starts when it comes back.
    proc = start_h3(certs, "--quic-retry")
    try:

        async def go() -> tuple[int, H3Response]:
            async with client(proc, certs) as c:
                return c.protocol._quic._retry_count, await c.request("GET", "/")

        retries, response = run(go())
        assert retries == 1
        assert response.body == b"hello, world"
    finally:
        proc.close()


def test_static_files_ride_http3(certs: Certs, tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_bytes(b"static over quic\n" * 5000)
    proc = start_h3(certs, "--static", f"/s={tmp_path}")
    try:

        async def go() -> H3Response:
            async with client(proc, certs) as c:
                return await c.request("GET", "/s/page.txt")

        response = run(go())
        assert response.status == 200
        assert response.body == b"static over quic\n" * 5000
    finally:
        proc.close()


def test_a_stalled_request_body_gets_408_and_stop_sending(certs: Certs) -> None:
    """--timeout-read over HTTP/3: an app waiting for body bytes that never come gets its client's 408
    (the stream's response), the server asks the client to stop sending the rest (STOP_SENDING), the app
    hears http.disconnect, and the connection serves on."""
    proc = start_h3(certs, "--timeout-read", "1")
    try:

        async def go() -> tuple[H3Response, H3Response]:
            async with client(proc, certs) as c:
                stream_id, stalled = c.open_stream("POST", "/upload", [(b"content-length", b"100")])
                c.send(stream_id, b"only a few bytes")
                await asyncio.wait_for(stalled.done.wait(), 15)
                return stalled, await c.request("GET", "/")

        stalled, after = run(go())
        assert stalled.status == 408
        assert stalled.body == b"request body not received in time\n"
        assert stalled.stop_code == 0x100  # H3_NO_ERROR: the response stands (RFC 9114 §4.1)
        assert after.status == 200
        wait_for(
            lambda: "408 request body not received in time (--timeout-read 1s)" in proc.output(),
            what="the log line",
        )
    finally:
        proc.close()
