"""--metrics-bind end to end: real tricorn processes (one process, a master and two workers), real traffic
(httpx over HTTP/1.1 and HTTP/2, websockets), the page scraped and parsed by prometheus_client's parser;
workers killed, blocked, reloaded and stopped while /livez and /readyz are watched. And the JSON logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.conftest import TricornProcess, free_port, raw_request, wait_for

pytestmark = pytest.mark.e2e

APP = "tests.apps.metrics_apps:app"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Server:
    """A tricorn process with a metrics listener."""

    def __init__(self, proc: TricornProcess, metrics_port: int) -> None:
        self.proc = proc
        self.url = proc.url
        self.metrics_url = f"http://127.0.0.1:{metrics_port}"
        self.metrics_port = metrics_port

    def probe(self, path: str) -> httpx.Response:
        return httpx.get(self.metrics_url + path, timeout=10)

    def scrape(self) -> Samples:
        response = self.probe("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def value(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_ready(self) -> Server:
        wait_for(lambda: _status(self, "/readyz") == 200, what=lambda: f"/readyz 200:\n{self.proc.output()}")
        return self


def _status(server: Server, path: str) -> int | None:
    try:
        return server.probe(path).status_code
    except httpx.HTTPError:
        return None


def wait_unready(server: Server, path: str = "/readyz") -> str:
    """Wait until ``path`` answers 503; its body."""
    seen: list[str] = []

    def unready() -> bool:
        try:
            response = server.probe(path)
        except httpx.HTTPError:
            return False
        if response.status_code == 503:
            seen.append(response.text)
        return bool(seen)

    wait_for(unready, what=f"{path} 503")
    return seen[0]


@pytest.fixture
def serve(tricorn: type[TricornProcess]) -> Iterator[object]:
    def start(*args: str, env: dict[str, str] | None = None, app: str = APP) -> Server:
        port = free_port()
        proc = tricorn([app, "--metrics-bind", f"127.0.0.1:{port}", *args], env=env).wait_ready()
        return Server(proc, port)

    yield start


def requests_total(samples: Samples, method: str = "GET", status: str = "200") -> float:
    key = (
        "http_server_requests_total",
        (("http_request_method", method), ("http_response_status_code", status)),
    )
    return samples.get(key, 0.0)


def check_histogram(samples: Samples) -> None:
    """Every duration series: cumulative buckets, +Inf equal to its count, equal to the requests counter."""
    counts = {k[1]: v for k, v in samples.items() if k[0] == "http_server_request_duration_seconds_count"}
    assert counts
    for labels, count in counts.items():
        buckets = sorted(
            (float(dict(k[1])["le"]), v)
            for k, v in samples.items()
            if k[0] == "http_server_request_duration_seconds_bucket"
            and tuple(i for i in k[1] if i[0] != "le") == labels
        )
        values = [v for _, v in buckets]
        assert values == sorted(values)
        assert buckets[-1] == (float("inf"), count)
        assert samples[("http_server_requests_total", labels)] == count
        assert samples[("http_server_request_duration_seconds_sum", labels)] >= 0


def test_one_process_counts_requests_connections_and_websockets(serve: object) -> None:
    server: Server = serve()  # type: ignore[operator]
    server.wait_ready()
    with httpx.Client() as client:
        for _ in range(3):
            assert client.get(server.url + "/").status_code == 200
        assert client.post(server.url + "/echo", content=b"x" * 1000).content == b"x" * 1000
        assert client.get(server.url + "/missing").status_code == 404
    with (
        httpx.Client(http1=False, http2=True) as h2,
        connect(server.url.replace("http", "ws") + "/ws") as ws,
    ):
        response = h2.get(server.url + "/")
        assert response.http_version == "HTTP/2"
        ws.send("hello")
        assert ws.recv() == "hello"
        samples = server.scrape()
        assert samples[("tricorn_open_connections", (("protocol", "h2"),))] == 1
        assert samples[("tricorn_open_connections", (("protocol", "websocket"),))] == 1
        assert samples[("tricorn_websocket_sessions_open", ())] == 1
        assert samples[("tricorn_websocket_sessions_total", ())] == 1
    samples = server.scrape()
    assert requests_total(samples) == 4  # three over HTTP/1.1, one over HTTP/2
    assert requests_total(samples, "POST") == 1
    assert requests_total(samples, "GET", "404") == 1
    body = ("tricorn_http_server_request_body_bytes_total", (("http_request_method", "POST"),))
    sent = ("tricorn_http_server_response_body_bytes_total", (("http_request_method", "POST"),))
    assert (samples[body], samples[sent]) == (1000, 1000)
    check_histogram(samples)
    assert samples[("http_server_active_requests", ())] == 0
    assert samples[("tricorn_websocket_sessions_open", ())] == 0
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert ("tricorn_worker_restarts_total", (("cause", "crash"),)) not in samples  # no master


def test_one_wsgi_process_counts_requests_and_body_bytes(serve: object) -> None:
    server: Server = serve(app="tests.apps.metrics_apps:wsgi_app")  # type: ignore[operator]
    server.wait_ready()
    with httpx.Client() as client:
        assert client.get(server.url + "/").status_code == 200
        assert client.put(server.url + "/echo", content=b"y" * 300).content == b"y" * 300
        assert client.get(server.url + "/nope").status_code == 404
    samples = server.scrape()
    assert (
        requests_total(samples),
        requests_total(samples, "PUT"),
        requests_total(samples, "GET", "404"),
    ) == (
        1,
        1,
        1,
    )
    assert samples[("tricorn_http_server_request_body_bytes_total", (("http_request_method", "PUT"),))] == 300
    check_histogram(samples)


def test_two_workers_add_up_and_a_killed_workers_counts_survive(serve: object) -> None:
    server: Server = serve("--workers", "2")  # type: ignore[operator]
    server.wait_ready()
    pids = set()
    for _ in range(20):  # a new connection each: both workers serve some
        pids.add(int(httpx.get(server.url + "/").text.split()[1]))
    wait_for(lambda: requests_total(server.scrape()) == 20, what="20 requests counted")
    samples = server.scrape()
    assert samples[("tricorn_workers", ())] == 2
    assert samples[("tricorn_worker_restarts_total", (("cause", "crash"),))] == 0
    check_histogram(samples)
    with httpx.Client(http1=False, http2=True) as h2:  # the gauges come with the workers' heartbeats
        h2.get(server.url + "/")
        wait_for(
            lambda: server.value("tricorn_open_connections", protocol="h2") == 1, what="an h2 connection"
        )
    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: server.value("tricorn_worker_restarts_total", cause="crash") == 1,
        what=lambda: f"a crash counted:\n{server.proc.output()}",
    )
    server.wait_ready()
    samples = server.scrape()
    assert requests_total(samples) == 21  # the dead worker's requests are still counted
    assert samples[("tricorn_workers", ())] == 2
    for _ in range(5):
        assert httpx.get(server.url + "/").status_code == 200
    wait_for(lambda: requests_total(server.scrape()) == 26, what="26 requests counted")
    check_histogram(server.scrape())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_term_turns_readiness_false_while_a_request_is_still_served(serve: object, workers: str) -> None:
    server: Server = serve("--workers", workers, "--timeout-graceful-shutdown", "20")  # type: ignore[operator]
    server.wait_ready()
    assert server.probe("/livez").status_code == 200
    result: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: result.append(httpx.get(server.url + "/slow?delay=4", timeout=30)))
    slow.start()
    wait_for(lambda: "metrics app: slow started" in server.proc.output(), what="the slow request")
    wait_for(lambda: server.value("http_server_active_requests") == 1, what="one request in flight")
    server.proc.send_signal(signal.SIGTERM)
    reason = wait_unready(server)
    assert slow.is_alive()  # readiness went first: the request in flight is still being answered
    assert "shutting down" in reason
    slow.join(30)
    assert result[0].status_code == 200
    assert result[0].text == "slow done"
    assert server.proc.wait() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_hup_turns_readiness_false_until_the_new_app_is_ready(serve: object, workers: str) -> None:
    # Each lifespan startup takes two seconds: a window the probe cannot miss.
    env = {"TRICORN_TEST_STARTUP_DELAY": "2"}
    server: Server = serve("--workers", workers, env=env)  # type: ignore[operator]
    server.wait_ready()
    server.proc.send_signal(signal.SIGHUP)
    reason = wait_unready(server)
    assert ("reloading" in reason) if workers == "2" else ("restarting in place" in reason), reason
    assert httpx.get(server.url + "/").status_code == 200  # the previous app serves meanwhile
    server.wait_ready()
    if workers == "2":
        assert server.value("tricorn_worker_restarts_total", cause="reload") == 2


def test_livez_fails_while_a_workers_event_loop_is_blocked(serve: object) -> None:
    server: Server = serve("--workers", "2")  # type: ignore[operator]
    server.wait_ready()
    blocked = threading.Thread(target=lambda: httpx.get(server.url + "/block?seconds=4", timeout=30))
    blocked.start()
    assert "silent for" in wait_unready(server, "/livez")
    assert server.probe("/readyz").status_code == 200  # the other worker serves
    blocked.join(30)
    wait_for(lambda: _status(server, "/livez") == 200, what="/livez 200 again")
    samples = server.scrape()
    assert samples[("tricorn_worker_heartbeat_misses_total", ())] >= 1
    assert samples[("tricorn_worker_restarts_total", (("cause", "heartbeat_timeout"),))] == 0
    assert "has sent no heartbeat for" in server.proc.output()


def test_the_probe_listener_answers_bad_requests_and_serves_on(serve: object) -> None:
    server: Server = serve()  # type: ignore[operator]
    server.wait_ready()
    port = server.metrics_port
    with socket.create_connection(("127.0.0.1", port)):  # an idle client holds nothing up
        assert raw_request(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(
            b"HTTP/1.1 400 "
        )
        assert raw_request(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000).startswith(b"HTTP/1.1 400 ")
        assert raw_request(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        assert raw_request(port, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
        head = raw_request(port, b"HEAD /livez HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
        assert server.probe("/livez").status_code == 200
    assert httpx.get(server.url + "/").status_code == 200


def test_a_metrics_bind_on_the_application_port_is_refused(tricorn: type[TricornProcess]) -> None:
    port = free_port()
    proc = tricorn([APP, "--port", str(port), "--metrics-bind", f"0.0.0.0:{port}"])
    assert proc.wait() == 2
    lines = [line for line in proc.output().splitlines() if "metrics_bind" in line]
    assert len(lines) == 1
    assert "give the metrics and probes an address of their own" in lines[0]


def test_a_unix_socket_metrics_listener(tricorn: type[TricornProcess], tmp_path: Path) -> None:
    path = tmp_path / "metrics.sock"
    proc = tricorn([APP, "--workers", "2", "--metrics-bind", f"unix:{path}"]).wait_ready()
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        wait_for(lambda: client.get("http://metrics/readyz").status_code == 200, what="/readyz over unix")
        assert httpx.get(proc.url + "/").status_code == 200
        text = client.get("http://metrics/metrics").text
    assert list(text_string_to_metric_families(text))
    assert proc.stop() == 0
    assert not path.exists()


# -- JSON logs ------------------------------------------------------------------------------------------


def test_log_format_json_writes_one_object_a_line_with_tracebacks_inside(
    tricorn: type[TricornProcess],
) -> None:
    proc = tricorn([APP, "--log-format", "json"]).wait_ready()
    request = b'GET /a%0a%22b%1b HTTP/1.1\r\nHost: x\r\nUser-Agent: x"\\y\xff\r\nConnection: close\r\n\r\n'
    assert raw_request(proc.port, request).startswith(b"HTTP/1.1 404 ")
    assert httpx.get(proc.url + "/raise").status_code == 500
    wait_for(lambda: '"status":500' in proc.output(), what="the access record of /raise")
    assert proc.stop() == 0
    records = [json.loads(line) for line in proc.output().splitlines() if line]  # every line is one object
    access = [r for r in records if "status" in r]
    errors = [r for r in records if "level" in r]
    assert access[0]["path"] == '/a\n"b\x1b'
    assert access[0]["user_agent"] == 'x"\\y\\xff'
    assert access[0]["status"] == 404
    assert access[0]["method"] == "GET"
    assert access[0]["protocol"] == "HTTP/1.1"
    assert access[1]["path"] == "/raise"
    failure = [r for r in errors if "exception" in r]
    assert len(failure) == 1
    assert failure[0]["level"] == "ERROR"
    assert "Traceback (most recent call last)" in failure[0]["exception"]
    assert "RuntimeError" in failure[0]["exception"]
    assert any("listening on" in r["message"] for r in errors)


def test_access_log_format_json_leaves_the_error_log_as_text(tricorn: type[TricornProcess]) -> None:
    proc = tricorn([APP, "--access-log-format", "json"]).wait_ready()
    assert httpx.get(proc.url + "/").status_code == 200
    with connect(proc.url.replace("http", "ws") + "/ws") as ws:
        ws.send("a")
        ws.recv()
    wait_for(lambda: '"status":101' in proc.output(), what="the WebSocket session's record")
    lines = proc.output().splitlines()
    access = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["status"] for r in access] == [200, 101]
    assert any(line.startswith("[") and "listening on" in line for line in lines)


def mount_requests(samples: Samples, mount: str) -> float:
    return samples.get(("tricorn_mount_requests_total", (("mount", mount),)), 0.0)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_requests_are_counted_by_mount_and_a_killed_workers_counts_stay(serve: object, workers: str) -> None:
    server: Server = serve(  # type: ignore[operator]
        "--workers",
        workers,
        "--mount",
        "/api=tests.apps.metrics_apps:app@asgi",
        app="tests.apps.metrics_apps:wsgi_app",
    )
    server.wait_ready()
    pids = set()
    for _ in range(6):  # a new connection each: with two workers, both serve some
        pids.add(int(httpx.get(server.url + "/").text.split()[1]))
    with httpx.Client() as client:
        for _ in range(4):
            assert client.get(server.url + "/api/x").status_code == 404  # the ASGI app's own 404
        assert client.get(server.url + "/apix").status_code == 404  # not under /api: the WSGI app's
    wait_for(lambda: requests_total(server.scrape(), "GET", "404") == 5, what="11 requests counted")
    samples = server.scrape()
    assert (mount_requests(samples, "/"), mount_requests(samples, "/api")) == (7, 4)
    for mount in ("/", "/api"):
        key = ("tricorn_mount_request_duration_seconds_total", (("mount", mount),))
        assert samples[key] > 0
    assert requests_total(samples) + requests_total(samples, "GET", "404") == 11
    if workers == "2":
        os.kill(next(iter(pids)), signal.SIGKILL)
        wait_for(
            lambda: server.value("tricorn_worker_restarts_total", cause="crash") == 1,
            what=lambda: f"a crash counted:\n{server.proc.output()}",
        )
        server.wait_ready()
    assert httpx.get(server.url + "/api/y").status_code == 404
    wait_for(lambda: mount_requests(server.scrape(), "/api") == 5, what="the sixth /api request counted")
    assert mount_requests(server.scrape(), "/") == 7  # the dead worker's are still counted


def test_one_app_has_no_mount_metrics(serve: object) -> None:
    server: Server = serve()  # type: ignore[operator]
    server.wait_ready()
    assert httpx.get(server.url + "/").status_code == 200
    wait_for(lambda: requests_total(server.scrape()) == 1, what="a request counted")
    assert not any(name.startswith("tricorn_mount_") for name, _ in server.scrape())
