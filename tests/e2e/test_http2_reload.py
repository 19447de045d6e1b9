"""No HTTP/2 request is lost when workers are replaced (HUP): clients keep sending on several connections
while it happens, and every stream the server took is answered.

GOAWAY comes in two steps (RFC 9113 §6.8): the first says "no new streams", the second, a round trip
later, names the last stream taken, so streams the client opened before it saw the first are served rather
than refused. The clients here behave as RFC 9113 asks: after a GOAWAY they open no new stream on that
connection and take a new one. (h2load counts the requests it had queued but not yet sent when a GOAWAY
arrived as failed; on a quiet machine it sees none, see docs/benchmarks.md, on a loaded one it may: that
is the client's queue, not a stream the server refused.)"""

from __future__ import annotations

import signal
import socket
import ssl
import threading
from pathlib import Path

import pytest

from tests.conftest import TricornProcess, wait_for
from tests.e2e.test_http2 import H2Client

pytestmark = pytest.mark.e2e


class Outcome:
    def __init__(self) -> None:
        self.ok = 0
        self.failures: list[str] = []
        self.goaways = 0
        self.lock = threading.Lock()


def client_loop(port: int, context: ssl.SSLContext | None, stop: threading.Event, outcome: Outcome) -> None:
    """Keep 5 streams in flight on one connection; after a GOAWAY, finish what it took, then reconnect."""
    while not stop.is_set():
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
        except OSError:
            continue  # no request was sent: a client tries again
        client = H2Client(port, sock=sock)
        in_flight: set[int] = set()
        try:
            while True:
                while not client.goaways and not stop.is_set() and len(in_flight) < 5:
                    in_flight.add(client.send_headers("/"))
                if not in_flight and (client.goaways or stop.is_set()):
                    break
                client.pump(10)
                if client.goaways and client.goaways[-1][0] != 0x7FFFFFFF:
                    last = client.goaways[-1][0]
                    refused = {s for s in in_flight if s > last}
                    if refused:
                        with outcome.lock:
                            outcome.failures.append(f"streams {sorted(refused)} above the last one taken")
                        in_flight -= refused
                for stream_id in list(in_flight):
                    response = client.streams[stream_id]
                    if response.ended or response.reset is not None:
                        in_flight.discard(stream_id)
                        with outcome.lock:
                            if response.reset is not None or response.status != 200:
                                outcome.failures.append(
                                    f"stream {stream_id}: {response.status} {response.reset}"
                                )
                            else:
                                outcome.ok += 1
                if client.eof:
                    if in_flight:
                        with outcome.lock:
                            outcome.failures.append(
                                f"connection closed with streams {sorted(in_flight)} open"
                            )
                    break
            if client.goaways:
                with outcome.lock:
                    outcome.goaways += 1
        finally:
            sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_hup_loses_no_http2_request(tls: bool, tmp_path: Path) -> None:
    args = ["tests.apps.basic:app", "--workers", "2", "--no-access-log"]
    context = None
    if tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        args += ["--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.set_alpn_protocols(["h2"])
    server = TricornProcess(args).wait_ready()
    outcome = Outcome()
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(server.port, context, stop, outcome)) for _ in range(4)
    ]
    try:
        wait_for(lambda: server.output().count("worker ready") >= 2, what="both workers")
        for thread in threads:
            thread.start()
        wait_for(lambda: outcome.ok > 200, what="the clients to be served")
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: server.output().count("worker ready") >= 4, what="the new workers")
        wait_for(lambda: outcome.goaways >= 4, what="every connection to be told GOAWAY")
        served = outcome.ok
        wait_for(lambda: outcome.ok > served + 200, what="the new workers to serve")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        server.close()
    assert outcome.failures == []


def test_max_requests_recycling_loses_no_http2_request() -> None:
    """A worker that reaches --max-requests retires like one replaced by HUP: GOAWAY, its streams finish."""
    server = TricornProcess(
        ["tests.apps.basic:app", "--workers", "2", "--no-access-log", "--max-requests", "300"]
    ).wait_ready()
    outcome = Outcome()
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(server.port, None, stop, outcome)) for _ in range(4)
    ]
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: server.output().count("worker ready") >= 5, what="three workers recycled")
        wait_for(lambda: outcome.goaways >= 2, what="connections told GOAWAY")
        assert "served its max requests" in server.output()
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        server.close()
    assert outcome.ok > 600
    assert outcome.failures == []
