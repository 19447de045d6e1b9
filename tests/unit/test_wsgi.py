"""tricorn.interfaces.wsgi without a server: environ building, start_response's checks, wsgi.input over a
stand-in cycle, the worker pool, and interface detection."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any
from wsgiref.validate import validator

import pytest

from tricorn.config import Config
from tricorn.importer import detect_interface
from tricorn.interfaces.wsgi import (
    ConnectionEnviron,
    ErrorStream,
    FileWrapper,
    WorkerPool,
    WSGIInput,
    WSGIServer,
    base_environ,
    build_environ,
    connection_environ,
    request_environ,
)
from tricorn.interfaces.wsgi.environ import _parse_start
from tricorn.proto.h1 import H1Connection, Request

BACKENDS = ["httptools", "h11"]


def parse_request(raw: bytes, backend: str = "httptools") -> Request:
    events = H1Connection(backend=backend).receive_data(raw)  # type: ignore[arg-type]
    request = events[0]
    assert isinstance(request, Request)
    return request


def environ_of(
    raw: bytes,
    backend: str = "httptools",
    server: tuple[str, int | None] | None = ("127.0.0.1", 8000),
    client: tuple[str, int] | None = ("10.0.0.7", 51234),
    root_path: str = "",
) -> dict[str, Any]:
    base = base_environ(multithread=True, multiprocess=False, root_path=root_path)
    return build_environ(parse_request(raw, backend), server, client, base, object())


# -- environ


@pytest.mark.parametrize("backend", BACKENDS)
def test_environ_keys_and_values(backend: str) -> None:
    environ = environ_of(
        b"POST /a%20b/caf%C3%A9%2Fx?q=%20&r=1 HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\nx-dup: 2\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 3\r\nCookie: a=1\r\ncookie: b=2\r\n\r\nabc",
        backend,
    )
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/a b/caf\xc3\xa9/x"
    assert environ["QUERY_STRING"] == "q=%20&r=1"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["HTTP_X_DUP"] == "1, 2"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_HOST"] == "example.com"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["SERVER_PROTOCOL"]) == (
        "127.0.0.1",
        "8000",
        "HTTP/1.1",
    )
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("10.0.0.7", "51234")
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.multiprocess"] is False
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert isinstance(environ["wsgi.errors"], ErrorStream)
    for key, value in environ.items():  # PEP 3333: CGI keys are native strings
        if not key.startswith("wsgi."):
            assert type(value) is str, key


def test_environ_has_no_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRICORN_UNIT_SECRET", "leak")
    environ = environ_of(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert "TRICORN_UNIT_SECRET" not in environ
    assert "PATH" not in environ
    assert "leak" not in environ.values()
    assert "CONTENT_TYPE" not in environ
    assert "CONTENT_LENGTH" not in environ


def test_header_names_with_underscores_are_dropped() -> None:
    environ = environ_of(
        b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"
    )
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_root_path_absolute_form_and_non_ascii_bytes() -> None:
    environ = environ_of(
        b"GET http://example.com:8080/p%FFq?x HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", root_path="/mount"
    )
    assert environ["SCRIPT_NAME"] == "/mount"
    assert environ["PATH_INFO"] == "/p\xffq"  # an undecodable byte survives, as latin-1
    assert environ["QUERY_STRING"] == "x"
    assert environ["HTTP_HOST"] == "example.com:8080"


def test_unix_socket_server_name_from_host() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n"
    environ = environ_of(raw, server=("/run/app.sock", None), client=None)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("::1", "9000")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("", "")
    environ = environ_of(b"GET / HTTP/1.0\r\n\r\n", server=None)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["SERVER_PROTOCOL"]) == (
        "localhost",
        "80",
        "HTTP/1.0",
    )


# -- start_response


@pytest.mark.parametrize("backend", BACKENDS)
def test_environs_of_one_connection_start_from_the_last_one_only_where_it_holds(backend: str) -> None:
    # A connection's environs reuse the last request's header keys, and its request-line keys too when
    # the line repeats; each request still gets an environ of its own, equal to one built afresh.
    conn = ConnectionEnviron(
        connection_environ(base_environ(True, False, ""), ("127.0.0.1", 8000), ("10.0.0.7", 5))
    )
    heads = [
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",  # the same again
        b"GET /b%20c?y HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",  # another line, the same fields
        b"HEAD /b%20c?y HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",  # another method
        b"HEAD /b%20c?y HTTP/1.0\r\nHost: h\r\nAccept: */*\r\n\r\n",  # another version
        b"HEAD /b%20c?y HTTP/1.0\r\nHost: h\r\nAccept: text/html\r\n\r\n",  # another field value
        b"HEAD /b%20c?y HTTP/1.0\r\nHost: h\r\n\r\n",  # a field fewer
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    ]
    seen = []
    for raw in heads:
        request = parse_request(raw, backend)
        wsgi_input = object()
        environ = request_environ(request, conn, wsgi_input)
        fresh = environ_of(raw, backend, client=("10.0.0.7", 5))
        assert environ == fresh | {"wsgi.input": wsgi_input, "wsgi.errors": environ["wsgi.errors"]}
        assert all(environ is not other for other in seen)
        environ["HTTP_ACCEPT"] = "changed by the app"  # an app's changes stay in its own environ
        environ["EXTRA"] = "x"
        seen.append(environ)


def test_parse_start() -> None:
    status, headers, length = _parse_start(
        "404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", " 12 "), ("X-Café", "é")]
    )
    assert status == 404
    assert headers == [
        (b"Content-Type", b"text/plain"),
        (b"Content-Length", b" 12 "),
        (b"X-Caf\xe9", b"\xe9"),
    ]
    assert length == 12
    assert _parse_start("200", [])[0] == 200


def test_parse_start_repeats_only_what_was_asked() -> None:
    # Heads are kept by value: a list changed since, a generator of pairs, a pair given as a list (not
    # kept, still checked) each get their own answer.
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    first = _parse_start("200 OK", headers)
    assert _parse_start("200 OK", headers) == first
    headers.append(("X-More", "1"))
    assert _parse_start("200 OK", headers)[1] == [*first[1], (b"X-More", b"1")]
    assert _parse_start("201 Created", headers)[0] == 201
    assert _parse_start("200 OK", (pair for pair in headers[:1])) == (200, [first[1][0]], None)
    for _ in range(2):
        assert _parse_start("200 OK", [["X", "1"]]) == (200, [(b"X", b"1")], None)  # type: ignore[list-item]
        with pytest.raises(TypeError):
            _parse_start("200 OK", [["X", 1]])  # type: ignore[list-item]


def test_start_response_repeats_the_last_call_only_by_value() -> None:
    # start_response finds the last call again before _parse_start: the same list changed in place since,
    # a tuple or a generator of the same pairs, a pair given as a list, a bad value each get their own
    # answer, checked as the first time.
    class Stream:
        proxy_trust = None

    server = WSGIServer(lambda e, s: [], asyncio.new_event_loop(), 1)
    server.loop.close()  # (start_response needs no loop)
    request = parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    def started(status: Any, headers: Any) -> Any:
        cycle = server.new_cycle(Stream(), request)  # type: ignore[arg-type]  # a stand-in
        cycle.start_response(status, headers)
        return cycle.started

    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    first = started("200 OK", headers)
    assert first == (200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")], 5)
    assert started("200 OK", headers) is first
    assert started("200 OK", list(headers)) is first
    headers[1] = ("Content-Length", "6")
    assert started("200 OK", headers)[2] == 6
    headers.append(("X-More", "1"))
    assert started("200 OK", headers)[1][2] == (b"X-More", b"1")
    assert started("201 Created", headers)[0] == 201
    assert started("201 Created", tuple(headers))[0] == 201
    assert started("201 Created", (pair for pair in headers[:1])) == (
        201,
        [(b"Content-Type", b"text/plain")],
        None,
    )
    assert started("200 OK", [["X", "1"]]) == (200, [(b"X", b"1")], None)
    with pytest.raises(TypeError):
        started("200 OK", [["X", 1]])
    with pytest.raises(TypeError):
        started(b"200 OK", headers)


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (b"200 OK", [], TypeError),
        ("OK", [], ValueError),
        ("2000 OK", [], ValueError),
        ("200 OK", [(b"X", "1")], TypeError),
        ("200 OK", [("X", 1)], TypeError),
        ("200 OK", [("X", "\u20ac")], UnicodeEncodeError),
    ],
)
def test_parse_start_refuses(status: Any, headers: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        _parse_start(status, headers)


# -- wsgi.input


class FakeCycle:
    """A cycle whose whole body has arrived, in the given pieces."""

    def __init__(self, *pieces: bytes) -> None:
        self.chunks = deque(pieces)

    def next_chunk(self) -> bytes | None:
        return self.chunks.popleft() if self.chunks else None


def stream(*pieces: bytes) -> WSGIInput:
    return WSGIInput(FakeCycle(*pieces))  # type: ignore[arg-type]


def test_read_sizes_span_pieces() -> None:
    body = stream(b"abc", b"defg", b"h")
    assert body.read(2) == b"ab"
    assert body.read(4) == b"cdef"
    assert body.read(0) == b""
    assert body.read() == b"gh"
    assert body.read() == b""
    assert body.read(5) == b""
    assert stream(b"ab", b"cd").read(None) == b"abcd"
    assert stream(b"ab", b"cd").read(10) == b"abcd"


def test_readline_and_iteration() -> None:
    assert list(stream(b"one\ntw", b"o\n", b"\nthree")) == [b"one\n", b"two\n", b"\n", b"three"]
    body = stream(b"abcdef\n", b"gh")
    assert body.readline(4) == b"abcd"
    assert body.readline() == b"ef\n"
    assert body.readline(-1) == b"gh"
    assert body.readline() == b""
    assert stream(b"a\nb\nc\n").readlines(3) == [b"a\n", b"b\n"]
    assert stream(b"a\nb\n").readlines() == [b"a\n", b"b\n"]


# -- wsgi.errors and the file wrapper


def test_error_stream_logs_whole_lines(caplog: pytest.LogCaptureFixture) -> None:
    errors = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        errors.write("one\ntw")
        errors.write("o\n")
        errors.writelines(["three\x1b[31m", "\n"])
        errors.write("tail")
        errors.flush()
    assert [r.getMessage() for r in caplog.records] == ["one", "two", "three\\x1b[31m", "tail"]


def test_error_stream_keeps_a_written_traceback_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    # What Flask's and Django's loggers write: a header and a traceback in one write(), quotes and all.
    traceback_text = (
        "Exception on /flask [GET]\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app.py", line 5, in view\n'
        '    {}["missing \\"key\\""]\n'
        "KeyError: 'missing \"key\"'\n"
    )
    errors = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="tricorn.error"):
        errors.write(traceback_text)
    assert [r.getMessage() for r in caplog.records] == [traceback_text.removesuffix("\n")]
    with pytest.raises(TypeError):
        errors.write(b"bytes")  # type: ignore[arg-type]


def test_file_wrapper_iterates_and_closes() -> None:
    class File:
        closed = False

        def __init__(self) -> None:
            self.data = [b"ab", b"c", b""]

        def read(self, size: int) -> bytes:
            return self.data.pop(0)

        def close(self) -> None:
            self.closed = True

    handle = File()
    wrapper = FileWrapper(handle, 2)
    assert list(wrapper) == [b"ab", b"c"]
    wrapper.close()
    assert handle.closed


# -- the worker pool


def test_pool_runs_jobs_and_overlaps_blocking_ones() -> None:
    pool = WorkerPool(3)
    barrier = threading.Barrier(3, timeout=10)
    done: list[str] = []
    lock = threading.Lock()

    class Job:
        def __init__(self, name: str) -> None:
            self.name = name

        def execute(self, cond: threading.Condition) -> None:
            assert isinstance(cond, threading.Condition)
            barrier.wait()  # completes only if all three run at once
            with lock:
                done.append(self.name)

    pool.submit([Job("a"), Job("b"), Job("c")])
    pool.close()
    assert pool.join(10)
    assert sorted(done) == ["a", "b", "c"]
    assert pool.busy == 0
    assert len(pool.threads) == 3
    with pytest.raises(RuntimeError):
        pool.submit([Job("d")])


def test_pool_runs_a_backlog_larger_than_itself() -> None:
    pool = WorkerPool(8)
    results: list[int] = []
    finished = threading.Event()

    class Job:
        def __init__(self, i: int) -> None:
            self.i = i

        def execute(self, cond: threading.Condition) -> None:
            results.append(self.i)
            if len(results) == 50:
                finished.set()

    pool.submit([Job(i) for i in range(50)])
    assert finished.wait(10)
    pool.close()
    assert pool.join(10)
    assert sorted(results) == list(range(50))
    assert len(pool.threads) <= 8


# -- interface detection and the setting


def test_detect_interface() -> None:
    from tricorn.demo import app as asgi_demo
    from tricorn.demo import wsgi_app

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    assert detect_interface(wsgi_app) == "wsgi"
    assert detect_interface(wsgi) == "wsgi"
    assert detect_interface(validator(wsgi)) == "wsgi"  # def lint_app(*args, **kw)
    assert detect_interface(asgi_demo) == "asgi"


def test_threads_setting() -> None:
    assert Config().threads == 10
    assert Config(threads="4").threads == 4  # type: ignore[arg-type]
    with pytest.raises(Exception, match="threads: 0 is out of range"):
        Config(threads=0)
