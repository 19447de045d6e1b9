"""WSGI (PEP 3333) end to end: a real tricorn process serving tests.apps.wsgi_basic, over real sockets.

Most tests share one server per parser backend (module scope: starting a process per test would
dominate the run); tests that need other settings start their own.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TricornProcess, raw_request, rss_kib, wait_for
from tests.e2e.test_http import Reader, connect, get, log_lines, parse

pytestmark = pytest.mark.e2e

APP = "tests.apps.wsgi_basic:app"
BACKENDS = [pytest.param("httptools", id="httptools"), pytest.param("h11", id="h11")]

Start = Callable[..., TricornProcess]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest) -> Iterator[TricornProcess]:
    process = TricornProcess(
        ["--http", request.param, "--threads", "4", APP], env={"TRICORN_TEST_SECRET": "leaked-value"}
    )
    try:
        yield process.wait_ready()
    finally:
        process.close()


@pytest.fixture
def start(tricorn: type[TricornProcess]) -> Start:
    def starter(*options: str, app: str = APP, env: dict[str, str] | None = None) -> TricornProcess:
        return tricorn([*options, app], env=env).wait_ready()

    return starter


def events(server: TricornProcess) -> dict[str, Any]:
    return httpx.get(f"{server.url}/events", headers={"connection": "close"}).json()  # type: ignore[no-any-return]


def request(server: TricornProcess, data: bytes) -> list[Any]:
    return parse(raw_request(server.port, data))


# -- environ


def test_environ_is_complete(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /echo/caf%C3%A9%20x%2Fy?x=1&y=%20 HTTP/1.1\r\nHost: test.example:8080\r\n"
            b"X-Dup: one\r\nX-Other: a\r\nx-dup: two\r\nCookie: a=1\r\nCookie: b=2\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\nX_Smuggled: yes\r\nConnection: close\r\n\r\nhello"
        )
        client_port = sock.getsockname()[1]
        response = Reader(sock).response()
    assert response.status == 200
    environ = response.json()
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    # The percent-decoded bytes, decoded as latin-1 (PEP 3333); %2F decoded too, as every server does.
    assert environ["PATH_INFO"] == "/echo/caf\u00c3\u00a9 x/y"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/echo/café x/y"
    assert environ["QUERY_STRING"] == "x=1&y=%20"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in environ["keys"]
    assert "HTTP_CONTENT_LENGTH" not in environ["keys"]
    assert environ["HTTP_X_DUP"] == "one, two"
    assert environ["HTTP_X_OTHER"] == "a"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"  # RFC 6265 §5.4: cookies are joined with "; "
    assert environ["HTTP_HOST"] == "test.example:8080"
    assert "HTTP_X_SMUGGLED" not in environ["keys"]  # "_" in a header name: dropped, as nginx does
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", str(server.port))
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", str(client_port))
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["types"] == {"wsgi.input": True, "wsgi.errors": True, "wsgi.file_wrapper": True}
    assert environ["body"] == "hello"


def test_no_process_environment_in_environ(server: TricornProcess) -> None:
    environ = httpx.get(f"{server.url}/echo").json()
    assert "TRICORN_TEST_SECRET" not in environ["keys"]
    assert "leaked-value" not in json.dumps(environ)
    assert not {"PATH", "HOME", "PYTHONPATH"} & set(environ["keys"])
    assert "CONTENT_TYPE" not in environ["keys"]  # only when the request has one
    assert "CONTENT_LENGTH" not in environ["keys"]


def test_http_10_environ(server: TricornProcess) -> None:
    (response,) = request(server, b"GET /echo HTTP/1.0\r\n\r\n")
    environ = response.json()
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in environ["keys"]


def test_root_path_is_script_name(start: Start) -> None:
    server = start("--root-path", "/mount")
    environ = httpx.get(f"{server.url}/echo/x?a=b").json()
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/echo/x"


# -- request bodies


READ_MODES = ["read", "read_n", "readline", "readline_n", "readlines", "iter"]
BODY = b"".join(b"line %d of the body, %s\n" % (i, b"x" * (i % 50)) for i in range(3000))


def test_wsgi_input_of_a_bodyless_request_reads_empty_in_every_mode(server: TricornProcess) -> None:
    # A GET on a keep-alive connection (the fast lane's request) gets the shared empty wsgi.input.
    with httpx.Client(base_url=server.url) as client:
        for mode in READ_MODES:
            result = client.get(f"/read?mode={mode}&n=30").json()
            assert (result["bytes"], result["lengths"], result["eof"]) == (
                0,
                [] if mode != "read" else [0],
                "",
            )


@pytest.mark.parametrize("mode", READ_MODES)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_wsgi_input_read_modes(server: TricornProcess, mode: str, chunked: bool) -> None:
    def pieces() -> Iterator[bytes]:
        for i in range(0, len(BODY), 10_000):
            yield BODY[i : i + 10_000]

    response = httpx.post(f"{server.url}/read?mode={mode}&n=30", content=pieces() if chunked else BODY)
    assert response.status_code == 200
    result = response.json()
    assert result["bytes"] == len(BODY)
    assert result["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert result["eof"] == ""
    assert result["content_length"] == (None if chunked else str(len(BODY)))
    if mode in ("readline", "readlines", "iter"):
        assert result["lengths"] == [len(line) for line in BODY.splitlines(keepends=True)]
    if mode == "read_n":
        assert set(result["lengths"][:-1]) == {30}
    if mode == "readline_n":
        assert max(result["lengths"]) == 30


def test_chunked_body_sent_in_pieces(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /read?mode=readline HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        for piece in (b"3\r\n", b"a\nb\r", b"\n4\r\nc\nde", b"\r\n", b"0\r\n", b"\r\n"):
            sock.sendall(piece)
        result = Reader(sock).response().json()
    assert result["lengths"] == [2, 3, 2]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_large_body_is_streamed_not_held_in_memory(server: TricornProcess) -> None:
    size = 64 * 1024 * 1024
    block = b"b" * 65536

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    events(server)  # warm up
    before = rss_kib(server.proc.pid)
    response = httpx.post(f"{server.url}/read?mode=read_n&n=65536", content=body(), timeout=60)
    assert response.json()["bytes"] == size
    grown = rss_kib(server.proc.pid) - before
    assert grown < 32 * 1024, f"server RSS grew by {grown} KiB for a {size // 1024} KiB body"


def test_bad_input_after_pipelined_requests_is_answered_after_them(server: TricornProcess) -> None:
    responses = request(
        server,
        get("/")
        + b"POST /read HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc"
        + b"GET /\x7f HTTP/1.1\r\n\r\n",
    )
    assert [r.status for r in responses] == [200, 200, 400]
    assert responses[1].json()["bytes"] == 3
    assert responses[2].header("connection") == "close"


def test_client_disconnecting_mid_body_makes_the_read_fail(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /read-disconnect HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10
        )
        wait_for(lambda: "reading" in events(server)["events"])  # the app waits for the rest of the body
    wait_for(lambda: "read failed: ClientDisconnected" in events(server)["events"])
    assert httpx.get(server.url).text == "hello, world"


def test_expect_100_continue(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(
            b"POST /read HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
            b"Connection: close\r\n\r\n"
        )
        reader = Reader(sock)
        assert reader.response().status == 100
        sock.sendall(b"hello")
        assert reader.response().json()["bytes"] == 5
    with connect(server.port) as sock:  # an app that answers without reading gets no 100
        sock.sendall(b"POST / HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        reader = Reader(sock)
        assert reader.response().status == 200
        assert reader.at_eof()  # the unread body: the connection cannot be reused
    assert b"100 Continue" not in reader.buf


# -- responses


def test_generator_without_length_is_chunked_and_closed(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/stream?n=2", "Connection: close\r\n"))
    assert b"transfer-encoding: chunked\r\n" in data
    assert data.endswith(b"\r\n\r\n8\r\nchunk 0\n\r\n8\r\nchunk 1\n\r\n0\r\n\r\n")
    wait_for(lambda: "closed /stream" in events(server)["events"])


def test_write_callable(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/write").text == "written and returned"


def test_start_response_during_iteration_and_empty_bodies(server: TricornProcess) -> None:
    late = httpx.get(f"{server.url}/late-start")
    assert (late.status_code, late.text) == (201, "late")
    empty = httpx.get(f"{server.url}/empty-generator")
    assert (empty.status_code, empty.content, empty.headers["content-length"]) == (200, b"", "0")


def test_list_body_gets_a_content_length(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/write")
    assert "content-length" not in response.headers  # streamed with write(): chunked
    response = httpx.get(f"{server.url}/exc-info-replace")
    assert response.headers["content-length"] == "8"  # a list: the whole body is known


def test_close_is_called(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/close-tracked").text == "hello"
    wait_for(lambda: "closed /close-tracked" in events(server)["events"])


def test_close_is_called_when_the_client_disconnects(server: TricornProcess) -> None:
    with connect(server.port) as sock:
        sock.sendall(get("/forever"))
        Reader(sock).until(b"tick 1\n")
    wait_for(lambda: "closed /forever" in events(server)["events"])
    assert "generator ended /forever" in events(server)["events"]
    assert "ERROR" not in server.output()


def test_head_strips_the_body(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        get("/head-test", method="HEAD") + get("/stream", method="HEAD") + get("/", "Connection: close\r\n"),
    )
    head, stream, hello = parse(data, ["HEAD", "HEAD"])
    assert head.header("content-length") == "13"
    assert head.header("x-method") == "HEAD"
    assert stream.header("transfer-encoding") is None
    assert hello.body == b"hello, world"
    assert b"body for HEAD" not in data


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: TricornProcess, code: int) -> None:
    data = raw_request(server.port, get(f"/status?code={code}") + get("/", "Connection: close\r\n"))
    first, second = parse(data)
    assert first.status == code
    assert first.body == b""
    assert b"a body the server must drop" not in data
    assert second.body == b"hello, world"


def test_keep_alive_and_pipelining(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        get("/echo?i=1")
        + b"POST /echo?i=2 HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody"
        + get("/stream?n=1")
        + get("/echo?i=3", "Connection: close\r\n"),
    )
    responses = parse(data)
    assert [r.status for r in responses] == [200, 200, 200, 200]
    assert responses[0].json()["QUERY_STRING"] == "i=1"
    assert responses[1].json()["body"] == "body"
    assert responses[2].body == b"chunk 0\n"
    assert responses[3].json()["QUERY_STRING"] == "i=3"
    with httpx.Client(base_url=server.url) as client:
        ports = {client.get("/echo").json()["REMOTE_PORT"] for _ in range(4)}
    assert len(ports) == 1


def test_a_list_body_shorter_than_its_content_length_ends_the_connection(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/declared-length?n=20") + get("/"))
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"\r\n\r\nhello, world")  # what there is, then the close: no second response
    assert data.count(b"HTTP/1.1") == 1


def test_a_list_body_longer_than_its_content_length_is_refused(server: TricornProcess) -> None:
    assert raw_request(server.port, get("/declared-length?n=5") + get("/")) == b""  # nothing of it sent
    log_lines(
        server, 1, "invalid response from wsgi application: response body longer than its content-length"
    )
    assert httpx.get(server.url).status_code == 200


# -- errors


def test_exception_before_start_response_is_a_500_without_traceback(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/error")
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "boom" not in response.text
    log_lines(server, 1, "RuntimeError: boom before start_response")
    assert "Traceback (most recent call last)" in server.output()
    assert httpx.get(server.url).status_code == 200


def test_exception_after_the_response_started_cuts_the_connection(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/error-after-start"))
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"first part\n" in data
    assert not data.endswith(b"0\r\n\r\n")  # cut, not completed
    log_lines(server, 1, "RuntimeError: boom after the response started")
    wait_for(lambda: "closed /error-after-start" in events(server)["events"])


def test_exc_info_replaces_the_response_before_anything_was_sent(server: TricornProcess) -> None:
    response = httpx.get(f"{server.url}/exc-info-replace")
    assert (response.status_code, response.text) == (503, "replaced")


def test_exc_info_is_reraised_after_the_response_started(server: TricornProcess) -> None:
    data = raw_request(server.port, get("/exc-info-reraise"))
    assert b"already sent\n" in data
    assert not data.endswith(b"0\r\n\r\n")
    log_lines(server, 1, "ValueError: too late to replace")


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/twice", "start_response() called a second time without exc_info"),
        ("/no-start", "returned without calling start_response()"),
        ("/bad-header", "invalid byte (cr, lf or nul) in response header b'X-Bad'"),
        ("/bad-status", "invalid wsgi status 'OK'"),
        ("/str-body", "wsgi response body must be bytes, got str"),
    ],
)
def test_application_errors_are_500s(server: TricornProcess, path: str, logged: str) -> None:
    data = raw_request(server.port, get(path))
    (response,) = parse(data)
    assert response.status == 500
    assert b"Injected" not in data
    log_lines(server, 1, logged)
    assert httpx.get(server.url).status_code == 200


def test_wsgi_errors_goes_to_the_error_log(server: TricornProcess) -> None:
    assert httpx.get(f"{server.url}/errors").text == "logged"
    assert log_lines(server, 1, "[ERROR] app says: something went wrong")
    assert log_lines(server, 1, "[ERROR] partial line")


def test_access_log(server: TricornProcess) -> None:
    httpx.get(f"{server.url}/echo?x=1", headers={"user-agent": "wsgi-probe"})
    (line,) = log_lines(server, 1, '"wsgi-probe"')
    assert '"GET /echo?x=1 HTTP/1.1" 200 ' in line


# -- files


def test_file_wrapper_uses_sendfile(server: TricornProcess, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 40_000  # 10 MB
    path.write_bytes(data)
    calls = events(server)["sendfile_calls"]
    response = httpx.get(f"{server.url}/file", params={"path": str(path)})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data
    assert events(server)["sendfile_calls"] > calls
    # From the file's current position; then the connection is reused for the next request.
    with httpx.Client(base_url=server.url) as client:
        part = client.get("/file", params={"path": str(path), "offset": "1000"})
        assert part.content == data[1000:]
        assert client.get("/").text == "hello, world"


def test_file_wrapper_head_and_file_like_objects(server: TricornProcess, tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"small file\n")
    head = httpx.head(f"{server.url}/file", params={"path": str(path)})
    assert head.headers["content-length"] == "11"
    assert head.content == b""
    response = httpx.get(f"{server.url}/file-like")  # no fileno(): iterated in blocks
    assert response.content == b"from a BytesIO " * 1000


# -- threads and flow control


def test_blocking_requests_overlap_and_the_loop_keeps_serving(start: Start) -> None:
    server = start("--threads", "3")
    results: list[int] = []

    def barrier() -> None:
        results.append(
            httpx.get(f"{server.url}/barrier", params={"group": "a", "n": "3"}, timeout=30).status_code
        )

    first = [threading.Thread(target=barrier) for _ in range(2)]
    for thread in first:
        thread.start()
    # Two threads are blocked in the app; the third serves this, and the loop is not blocked.
    assert httpx.get(server.url).text == "hello, world"
    barrier()  # the third member: all three run at once, so all complete
    for thread in first:
        thread.join()
    assert results == [200, 200, 200]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_client_that_does_not_read_does_not_fill_memory(server: TricornProcess) -> None:
    size = 256 * 1024 * 1024
    events(server)
    before = rss_kib(server.proc.pid)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(get(f"/big?size={size}"))
        reader = Reader(sock)
        assert reader.until(b"\r\n\r\n").startswith(b"HTTP/1.1 200")
        # The app's thread waits for the client: its progress stops well short of the whole body.
        readings: list[int] = []

        def stalled() -> bool:
            readings.append(events(server)["big"]["sent"])
            return len(readings) >= 3 and readings[-1] > 0 and len(set(readings[-3:])) == 1

        wait_for(stalled, timeout=30)
        assert not events(server)["big"]["done"]
        assert events(server)["big"]["sent"] < size // 4
        grown = rss_kib(server.proc.pid) - before
        assert grown < 64 * 1024, f"server RSS grew by {grown} KiB while the client was not reading"
        received = len(reader.buf)
        while True:
            data = sock.recv(1 << 20)
            if not data or data.endswith(b"0\r\n\r\n"):
                received += len(data)
                break
            received += len(data)
    assert received > size
    wait_for(lambda: events(server)["big"]["done"])


# -- shutdown


def test_graceful_shutdown_lets_a_blocking_request_finish(start: Start) -> None:
    server = start()
    with connect(server.port) as sock:
        sock.sendall(get("/sleep?seconds=1"))
        # Served while the first request sleeps in its thread:
        wait_for(lambda: "sleep started" in events(server)["events"])
        server.send_signal(signal.SIGTERM)
        reader = Reader(sock)
        response = reader.response()
        assert response.body == b"slept"
        assert response.header("connection") == "close"
        assert reader.at_eof()
    assert server.wait() == 0
    assert "stopped" in server.output()


def test_graceful_timeout_with_a_request_blocked_forever(start: Start) -> None:
    server = start("--timeout-graceful-shutdown", "0.3")
    with connect(server.port) as sock:
        sock.sendall(get("/forever"))
        Reader(sock).until(b"tick 0\n")
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    log = server.output()
    assert "graceful shutdown timed out" in log


# -- shared with the HTTP/1.1 core


def test_hostile_input_is_refused_by_the_core(server: TricornProcess) -> None:
    data = raw_request(
        server.port,
        b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400 ")
    assert raw_request(server.port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").startswith(
        b"HTTP/1.1 400 "
    )
    assert httpx.get(server.url).status_code == 200


def test_limit_request_body(start: Start) -> None:
    server = start("--limit-request-body", "16")
    assert httpx.post(f"{server.url}/read", content=b"x" * 16).json()["bytes"] == 16
    assert httpx.post(f"{server.url}/read", content=b"x" * 17).status_code == 413


# -- wsgiref.validate


def test_validator_accepts_get_post_chunked_and_streamed(start: Start, tmp_path: Path) -> None:
    server = start(app="tests.apps.wsgi_basic:validated")
    path = tmp_path / "f.txt"
    path.write_bytes(b"file body")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").text == "hello, world"
        # (The validator insists on read(size): PEP 3333's read() takes one.)
        assert client.post("/read?mode=read_n", content=BODY).json()["bytes"] == len(BODY)
        assert client.post("/read?mode=readline", content=iter([BODY[:5000], BODY[5000:]])).json()[
            "bytes"
        ] == len(BODY)
        assert client.post("/read?mode=iter", content=BODY).json()["bytes"] == len(BODY)
        assert client.get("/stream?n=3").text == "chunk 0\nchunk 1\nchunk 2\n"
        assert client.get("/write").text == "written and returned"
        assert client.get("/file", params={"path": str(path)}).text == "file body"
        assert client.head("/head-test").status_code == 200
    output = server.output()
    assert "AssertionError" not in output
    assert "Warning" not in output
    assert "ERROR" not in output


# -- interface selection


def test_interface_auto_and_forced(start: Start) -> None:
    auto = start(app="wsgiref.simple_server:demo_app")
    assert "Hello world!" in httpx.get(auto.url).text
    forced = start("--interface", "wsgi", app="wsgiref.simple_server:demo_app")
    assert "Hello world!" in httpx.get(forced.url).text


def test_demo_wsgi_app(start: Start) -> None:
    server = start(app="tricorn.demo:wsgi_app")
    page = httpx.get(server.url)
    assert page.status_code == 200
    assert "WSGI" in page.text
    echo = httpx.post(f"{server.url}/echo?hello=world", content=b"ping").json()
    assert echo["interface"] == "wsgi"
    assert echo["query_string"] == "hello=world"
    assert echo["body"] == "ping"
